// attention_fused: softmax(q k^T * scale) v for every head of a batch in one dispatch, for CPU
// adapters with subgroups (src/ops/attention.rs, `TextureVariant::Fused`). It replaces the
// scores product, softmax_texture and the context product of attention.wgsl's texture path:
// no score or probability texture is written and read back, and exp runs once per score.
//
// Layout: q, k and v are read from the QKV linear's matrix texture (row b * seq + t; texels
// [0, hidden/4) queries, [hidden/4, 2 hidden/4) keys, [2 hidden/4, 3 hidden/4) values, head h
// from texel h * head_dim / 4 of each), and the context is stored into a [B * seq, hidden]
// matrix texture, head h from texel h * head_dim / 4.
//
// A workgroup is one 8-lane subgroup owning TEX_ROWS queries (workgroup_id.x) of one head of
// one image. Keys go in blocks of 32, 4 per lane, with the running max and sum of
// each row kept as in online softmax (Milakov and Gimelshein, 2018):
//   s = q k^T * scale over the block (lane: its 4 keys, q rows shared through subgroupBroadcast
//       as in linear_subgroup.wgsl);
//   m' = max(m, subgroupMax(s)); e = exp(s - m'); l = l exp(m - m') + e (a lane sums its keys,
//       subgroupAdd at the end); o = o exp(m - m');
//   o += e v, the block's 32 keys handed from lane to lane with subgroupShuffle, each lane
//       owning DIM_QUADS quads of the head's dims, 8 lanes apart.
// Finally o / l. On lavapipe a storage-texture load is inline where a buffer load is a loop
// over the lanes (../shared/notes/lavapipe.md), hence textures; the rows and quads are
// written out by src/shader_template.rs (lavapipe does not unroll loops), and the ones past
// TEX_ROWS and DIM_QUADS are constant-false branches the compiler drops with their loads.
// Keep `FusedParams` in sync with src/ops/attention.rs.

struct FusedParams {
    seq: u32,
    heads: u32,
    // batch * heads: the (image, head) pairs, folded over workgroup_id y and z past 65535.
    pairs: u32,
    // head_dim / 4 and hidden / 4: texels per head and per q, k or v part of a row.
    head_texels: u32,
    hidden_texels: u32,
    scale: f32,
}

@group(0) @binding(0) var<uniform> p: FusedParams;
@group(0) @binding(1) var qkv: texture_storage_2d<rgba32float, read>;
@group(0) @binding(2) var out: texture_storage_2d<rgba32float, write>;

// #let TR = 24
// #let DQ = 4
// Queries per workgroup: 8, 16 or 24 (src/ops/linear.rs `texture_rows`).
override TEX_ROWS: u32 = {TR}u;
// Quads of the head's dims per lane: ceil(head_dim / 32), at most {DQ}.
override DIM_QUADS: u32 = 2u;

const KEYS: u32 = 32u; // per block: 4 per lane
const LOWEST: f32 = -3.4028234e38;

@compute @workgroup_size(8, 1, 1)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let pair = wid.y + wid.z * nwg.y;
    if (pair >= p.pairs) {
        return;
    }
    let row0 = wid.x * TEX_ROWS;
    let image = pair / p.heads * p.seq;
    let qc = i32(pair % p.heads * p.head_texels);
    let kc = qc + i32(p.hidden_texels);
    let vc = kc + i32(p.hidden_texels) + i32(lane);
    let qr = i32(image + row0 + lane);
    let dims = i32(p.head_texels);
// #for r in 0..TR
    var m{r} = LOWEST;
    var l{r} = 0.0;
    var s{r} = vec4<f32>(0.0);
// #for q in 0..DQ
    var o{r}_{q} = vec4<f32>(0.0);
// #end
// #end
    for (var kb = 0u; kb < p.seq; kb += KEYS) {
        let key = kb + 4u * lane;
        let kr = i32(image + key);
// #for r in 0..TR
        s{r} = vec4<f32>(0.0);
// #end
        for (var dq = 0; dq < dims; dq++) {
// #for g in 0..TR / 8
            var ql{g} = vec4<f32>(0.0);
            if (TEX_ROWS > {8 * g}u) {
                ql{g} = textureLoad(qkv, vec2<i32>(qc + dq, qr + {8 * g}));
            }
// #end
// #for c in 0..4
            let k{c} = textureLoad(qkv, vec2<i32>(kc + dq, kr + {c}));
// #end
// #for r in 0..TR
            if (TEX_ROWS > {r}u) {
                let x = subgroupBroadcast(ql{r / 8}, {r % 8}u);
                s{r} += vec4<f32>(dot(x, k0), dot(x, k1), dot(x, k2), dot(x, k3));
            }
// #end
        }
        // Keys past seq weigh nothing (their rows hold the next image's tokens or padding).
        let live = vec4<u32>(key) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(p.seq);
// #for r in 0..TR
        if (TEX_ROWS > {r}u) {
            let sv = select(vec4<f32>(LOWEST), s{r} * p.scale, live);
            let mx = max(m{r}, subgroupMax(max(max(sv.x, sv.y), max(sv.z, sv.w))));
            let alpha = exp(m{r} - mx);
            let e = exp(sv - vec4<f32>(mx));
            m{r} = mx;
            l{r} = l{r} * alpha + ((e.x + e.y) + (e.z + e.w));
            s{r} = e;
// #for q in 0..DQ
            if (DIM_QUADS > {q}u) {
                o{r}_{q} *= alpha;
            }
// #end
        }
// #end
        // Lanes whose keys all lie past seq add nothing: the last block of 577 keys has one
        // key, so it hands over one lane's instead of eight.
        let lanes = min(8u, (p.seq - kb + 3u) / 4u);
        for (var src_lane = 0u; src_lane < lanes; src_lane++) {
            // Lane `src_lane`'s 4 keys: their rows of v, zero past seq (0 x inf would be NaN).
            let vk = kb + 4u * src_lane;
            let vr = i32(image + vk);
// #for c in 0..4
// #for q in 0..DQ
            var v{q}_{c} = vec4<f32>(0.0);
            if (DIM_QUADS > {q}u) {
                let v = textureLoad(qkv, vec2<i32>(vc + {8 * q}, vr + {c}));
                v{q}_{c} = select(vec4<f32>(0.0), v, vk + {c}u < p.seq);
            }
// #end
// #end
// #for r in 0..TR
            if (TEX_ROWS > {r}u) {
                let e = subgroupShuffle(s{r}, src_lane);
// #for q in 0..DQ
                if (DIM_QUADS > {q}u) {
                    o{r}_{q} += e.x * v{q}_0 + e.y * v{q}_1 + e.z * v{q}_2 + e.w * v{q}_3;
                }
// #end
            }
// #end
        }
    }
// #for r in 0..TR
    if (TEX_ROWS > {r}u) {
        let inv = 1.0 / subgroupAdd(l{r});
// #for q in 0..DQ
        if (DIM_QUADS > {q}u && row0 + {r}u < p.seq && lane + {8 * q}u < p.head_texels) {
            textureStore(out, vec2<i32>(qc + i32(lane) + {8 * q}, i32(image + row0) + {r}), o{r}_{q} * inv);
        }
// #end
    }
// #end
}
