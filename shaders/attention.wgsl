// attention: multi-head self-attention core, out = softmax(q k^T * scale) v for every head.
//
// Layout: qkv is the fused projection [B, seq, 3 * hidden]; token t's q, k and v are columns
// 0.., hidden.. and 2 * hidden.. of row t, and head h owns columns h * head_dim.. of each.
// out is [B, seq, hidden] with the heads concatenated the same way. scores holds the
// probabilities [B, heads, seq, seq] between passes.
// Three entry points, run in order:
//   scores:  S[b, h, i, j] = scale * q_i . k_j, a batched NT matrix multiply.
//   softmax: each row of S in place, max-subtracted so large scores cannot overflow exp.
//   context: out[b, i, h * head_dim + d] = sum_j S[b, h, i, j] v_j[d], a batched NN multiply.
// The multiplies tile like linear.wgsl: a 64x64 output tile per workgroup of 16x16
// invocations, each owning a 4x4 block spread 16 apart so neighbouring invocations touch
// neighbouring addresses; the reduction dimension goes in steps of 16 through workgroup
// memory, so head_dim and seq may be anything. Tiles (and softmax rows) are numbered along
// one linear index spread over x and y (`wid.x + wid.y * nwg.x`, see grid_1d), so any
// batch * heads * seq stays within the per-dimension workgroup limit.
// Keep `Params` in sync with `AttentionParams` in src/ops/attention.rs.

struct Params {
    batch: u32,
    seq: u32,
    heads: u32,
    head_dim: u32,
    // 1 / sqrt(head_dim)
    scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
// Each entry point's automatic bind-group layout holds only the bindings it uses, and the
// record function binds buffers 1.. in order, so every entry point uses a prefix of these.
@group(0) @binding(1) var<storage, read_write> s: array<f32>;    // [B, heads, seq, seq]
@group(0) @binding(2) var<storage, read> qkv: array<f32>;        // [B, seq, 3 * hidden] (scores, context)
@group(0) @binding(3) var<storage, read_write> out: array<f32>;  // [B, seq, hidden] (context)

const TILE: u32 = 64u;
const TK: u32 = 16u;
// Invocations per softmax row: enough to spread a 577-token row, few enough that the
// reductions take 6 barrier steps.
const ROW_WG: u32 = 64u;

var<workgroup> a_s: array<array<f32, 64>, 16>; // [TK][TILE]: left operand tile, transposed
var<workgroup> b_s: array<array<f32, 64>, 16>; // [TK][TILE]: right operand tile, transposed
var<workgroup> red: array<f32, 64>;            // [ROW_WG]: softmax partial max / sum

fn tiles(n: u32) -> u32 {
    return (n + TILE - 1u) / TILE;
}

// 16 steps of the 4x4 register block from the tiles in workgroup memory.
fn accumulate_tile(acc: ptr<function, array<array<f32, 4>, 4>>, lid: vec3<u32>) {
    for (var kk = 0u; kk < TK; kk++) {
        var a: array<f32, 4>;
        var b: array<f32, 4>;
        for (var i = 0u; i < 4u; i++) {
            a[i] = a_s[kk][lid.y + 16u * i];
            b[i] = b_s[kk][lid.x + 16u * i];
        }
        for (var i = 0u; i < 4u; i++) {
            for (var j = 0u; j < 4u; j++) {
                (*acc)[i][j] = fma(a[i], b[j], (*acc)[i][j]);
            }
        }
    }
}

@compute @workgroup_size(16, 16, 1)
fn scores(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let nt = tiles(p.seq);
    let g = wid.x + wid.y * nwg.x;
    if (g >= p.batch * p.heads * nt * nt) {
        return;
    }
    let bh = g / (nt * nt);
    let row0 = (g % (nt * nt)) / nt * TILE; // query i
    let col0 = (g % nt) * TILE;             // key j
    let b = bh / p.heads;
    let h = bh % p.heads;
    let hidden = p.heads * p.head_dim;
    let stride = 3u * hidden;
    let q0 = b * p.seq * stride + h * p.head_dim;
    let k0 = q0 + hidden;
    let t = lid.y * 16u + lid.x;
    var acc: array<array<f32, 4>, 4>;
    for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
            acc[i][j] = 0.0;
        }
    }
    for (var d0 = 0u; d0 < p.head_dim; d0 += TK) {
        // 64 tokens x 16 dims of q and of k, 4 per invocation, consecutive invocations along d.
        for (var l = 0u; l < 4u; l++) {
            let idx = t + l * 256u;
            let r = idx / TK;
            let dd = idx % TK;
            let d = d0 + dd;
            var qv = 0.0;
            if (row0 + r < p.seq && d < p.head_dim) {
                qv = qkv[q0 + (row0 + r) * stride + d];
            }
            var kv = 0.0;
            if (col0 + r < p.seq && d < p.head_dim) {
                kv = qkv[k0 + (col0 + r) * stride + d];
            }
            a_s[dd][r] = qv;
            b_s[dd][r] = kv;
        }
        workgroupBarrier();
        accumulate_tile(&acc, lid);
        workgroupBarrier();
    }
    let s0 = bh * p.seq * p.seq;
    for (var i = 0u; i < 4u; i++) {
        let gi = row0 + lid.y + 16u * i;
        if (gi >= p.seq) {
            continue;
        }
        for (var j = 0u; j < 4u; j++) {
            let gj = col0 + lid.x + 16u * j;
            if (gj < p.seq) {
                s[s0 + gi * p.seq + gj] = acc[i][j] * p.scale;
            }
        }
    }
}

// Tree reduction over `red`; `op` 0 takes the max, 1 the sum. Leaves the result in red[0].
fn reduce(lid: u32, op: u32) {
    for (var w = ROW_WG / 2u; w > 0u; w /= 2u) {
        workgroupBarrier();
        if (lid < w) {
            let x = red[lid];
            let y = red[lid + w];
            red[lid] = select(x + y, max(x, y), op == 0u);
        }
    }
    workgroupBarrier();
}

@compute @workgroup_size(64, 1, 1)
fn softmax(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid3: vec3<u32>,
) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.batch * p.heads * p.seq) {
        return;
    }
    let lid = lid3.x;
    let base = row * p.seq;
    var m = -3.4028235e38;
    for (var j = lid; j < p.seq; j += ROW_WG) {
        m = max(m, s[base + j]);
    }
    red[lid] = m;
    reduce(lid, 0u);
    m = red[0];
    // Everyone has read the max before the sum reuses `red`.
    workgroupBarrier();
    var sum = 0.0;
    for (var j = lid; j < p.seq; j += ROW_WG) {
        let e = exp(s[base + j] - m);
        s[base + j] = e;
        sum += e;
    }
    red[lid] = sum;
    reduce(lid, 1u);
    let inv = 1.0 / red[0];
    // Each invocation rescales only the entries it wrote itself, so no barrier is needed.
    for (var j = lid; j < p.seq; j += ROW_WG) {
        s[base + j] *= inv;
    }
}

@compute @workgroup_size(16, 16, 1)
fn context(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let nt = tiles(p.seq);
    let nd = tiles(p.head_dim);
    let g = wid.x + wid.y * nwg.x;
    if (g >= p.batch * p.heads * nt * nd) {
        return;
    }
    let bh = g / (nt * nd);
    let row0 = (g % (nt * nd)) / nd * TILE; // query i
    let col0 = (g % nd) * TILE;             // dim d
    let b = bh / p.heads;
    let h = bh % p.heads;
    let hidden = p.heads * p.head_dim;
    let stride = 3u * hidden;
    let v0 = b * p.seq * stride + 2u * hidden + h * p.head_dim;
    let s0 = bh * p.seq * p.seq;
    let t = lid.y * 16u + lid.x;
    var acc: array<array<f32, 4>, 4>;
    for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
            acc[i][j] = 0.0;
        }
    }
    for (var j0 = 0u; j0 < p.seq; j0 += TK) {
        for (var l = 0u; l < 4u; l++) {
            let idx = t + l * 256u;
            // 64 queries x 16 keys of probabilities, consecutive invocations along the key.
            let r = idx / TK;
            let jj = idx % TK;
            var pv = 0.0;
            if (row0 + r < p.seq && j0 + jj < p.seq) {
                pv = s[s0 + (row0 + r) * p.seq + j0 + jj];
            }
            a_s[jj][r] = pv;
            // 16 keys x 64 dims of v, consecutive invocations along the dim.
            let vj = idx / TILE;
            let vd = idx % TILE;
            var vv = 0.0;
            if (j0 + vj < p.seq && col0 + vd < p.head_dim) {
                vv = qkv[v0 + (j0 + vj) * stride + col0 + vd];
            }
            b_s[vj][vd] = vv;
        }
        workgroupBarrier();
        accumulate_tile(&acc, lid);
        workgroupBarrier();
    }
    let o0 = b * p.seq * hidden + h * p.head_dim;
    for (var i = 0u; i < 4u; i++) {
        let gi = row0 + lid.y + 16u * i;
        if (gi >= p.seq) {
            continue;
        }
        for (var j = 0u; j < 4u; j++) {
            let gd = col0 + lid.x + 16u * j;
            if (gd < p.head_dim) {
                out[o0 + gi * hidden + gd] = acc[i][j];
            }
        }
    }
}
