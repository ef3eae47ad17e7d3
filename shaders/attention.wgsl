// attention: multi-head self-attention core, out = softmax(q k^T * scale) v for every head.
//
// Layout: qkv is the fused projection [B, seq, 3 * hidden]; token t's q, k and v are columns
// 0.., hidden.. and 2 * hidden.. of row t, and head h owns columns h * head_dim.. of each.
// out is [B, seq, hidden] with the heads concatenated the same way. s (the caller's scratch)
// holds the scores, then the probabilities, [B, heads, seq, seq] between passes.
// Three entry points, run in order:
//   scores:  S[b, h, i, j] = scale * q_i . k_j, a batched NT matrix multiply.
//   softmax: each row of S in place, max-subtracted so large scores cannot overflow exp.
//   context: out[b, i, h * head_dim + d] = sum_j S[b, h, i, j] v_j[d], a batched NN multiply.
// The multiplies share one tiling: a 64x64 output tile per workgroup of 8x8 invocations,
// each owning an 8x8 block (rows 8 * lid.y.., columns 8 * lid.x..); the reduction dimension
// (head_dim, or seq for context) goes in steps of 16 through workgroup memory and is bounds-
// checked, so head_dim and seq may be anything, and head_dim past 64 takes more column tiles.
// Tiles (and softmax rows) are numbered along one linear index spread over x and y
// (`wid.x + wid.y * nwg.x`, see grid_1d), so any batch * heads * seq fits the per-dimension
// workgroup limit.
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

// Tiles hold 4 consecutive rows (or columns) per vec4, so an invocation fetches its 8 rows
// and 8 columns of a step with four loads (with the unrolled fmas below, ~3x faster on
// lavapipe than linear.wgsl's scalar 16x16 x 4x4 scheme).
var<workgroup> a_s: array<array<vec4<f32>, 16>, 16>; // [TK][TILE / 4]: left operand tile, transposed
var<workgroup> b_s: array<array<vec4<f32>, 16>, 16>; // [TK][TILE / 4]: right operand tile, transposed
var<workgroup> red: array<f32, 64>;                  // [ROW_WG]: softmax partial max / sum

fn tiles(n: u32) -> u32 {
    return (n + TILE - 1u) / TILE;
}

// TK steps of the invocation's 8x8 block: row i of the block is acc[2 * i] (columns 0..4)
// and acc[2 * i + 1] (columns 4..8). Everything touching acc uses constant indices (the 16
// fmas written out, the epilogues row by row): only then does lavapipe keep acc in registers;
// with loops indexing it the multiplies ran ~1.7x slower.
fn accumulate_tile(acc: ptr<function, array<vec4<f32>, 16>>, lid: vec3<u32>) {
    for (var kk = 0u; kk < TK; kk++) {
        let a0 = a_s[kk][2u * lid.y];
        let a1 = a_s[kk][2u * lid.y + 1u];
        let b0 = b_s[kk][2u * lid.x];
        let b1 = b_s[kk][2u * lid.x + 1u];
        (*acc)[0] = fma(vec4<f32>(a0.x), b0, (*acc)[0]);
        (*acc)[1] = fma(vec4<f32>(a0.x), b1, (*acc)[1]);
        (*acc)[2] = fma(vec4<f32>(a0.y), b0, (*acc)[2]);
        (*acc)[3] = fma(vec4<f32>(a0.y), b1, (*acc)[3]);
        (*acc)[4] = fma(vec4<f32>(a0.z), b0, (*acc)[4]);
        (*acc)[5] = fma(vec4<f32>(a0.z), b1, (*acc)[5]);
        (*acc)[6] = fma(vec4<f32>(a0.w), b0, (*acc)[6]);
        (*acc)[7] = fma(vec4<f32>(a0.w), b1, (*acc)[7]);
        (*acc)[8] = fma(vec4<f32>(a1.x), b0, (*acc)[8]);
        (*acc)[9] = fma(vec4<f32>(a1.x), b1, (*acc)[9]);
        (*acc)[10] = fma(vec4<f32>(a1.y), b0, (*acc)[10]);
        (*acc)[11] = fma(vec4<f32>(a1.y), b1, (*acc)[11]);
        (*acc)[12] = fma(vec4<f32>(a1.z), b0, (*acc)[12]);
        (*acc)[13] = fma(vec4<f32>(a1.z), b1, (*acc)[13]);
        (*acc)[14] = fma(vec4<f32>(a1.w), b0, (*acc)[14]);
        (*acc)[15] = fma(vec4<f32>(a1.w), b1, (*acc)[15]);
    }
}

// Row i of the block, columns j..j+8, of one head's scores S[i, j] (i, j < seq).
fn write_scores_row(s0: u32, i: u32, j: u32, lo: vec4<f32>, hi: vec4<f32>) {
    if (i >= p.seq) {
        return;
    }
    for (var c = 0u; c < 8u; c++) {
        if (j + c < p.seq) {
            s[s0 + i * p.seq + j + c] = p.scale * select(lo[c % 4u], hi[c % 4u], c >= 4u);
        }
    }
}

// Row i of the block, dims d..d+8, of one head's context (i < seq, d < head_dim).
fn write_out_row(o0: u32, i: u32, d: u32, lo: vec4<f32>, hi: vec4<f32>) {
    if (i >= p.seq) {
        return;
    }
    for (var c = 0u; c < 8u; c++) {
        if (d + c < p.head_dim) {
            out[o0 + i * p.heads * p.head_dim + d + c] = select(lo[c % 4u], hi[c % 4u], c >= 4u);
        }
    }
}

@compute @workgroup_size(8, 8, 1)
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
    let t = lid.y * 8u + lid.x;
    var acc: array<vec4<f32>, 16>;
    for (var d0 = 0u; d0 < p.head_dim; d0 += TK) {
        // 64 tokens x 16 dims of q and of k, consecutive invocations along d.
        for (var idx = t; idx < TILE * TK; idx += 64u) {
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
            a_s[dd][r / 4u][r % 4u] = qv;
            b_s[dd][r / 4u][r % 4u] = kv;
        }
        workgroupBarrier();
        accumulate_tile(&acc, lid);
        workgroupBarrier();
    }
    let s0 = bh * p.seq * p.seq;
    write_scores_row(s0, row0 + 8u * lid.y + 0u, col0 + 8u * lid.x, acc[0], acc[1]);
    write_scores_row(s0, row0 + 8u * lid.y + 1u, col0 + 8u * lid.x, acc[2], acc[3]);
    write_scores_row(s0, row0 + 8u * lid.y + 2u, col0 + 8u * lid.x, acc[4], acc[5]);
    write_scores_row(s0, row0 + 8u * lid.y + 3u, col0 + 8u * lid.x, acc[6], acc[7]);
    write_scores_row(s0, row0 + 8u * lid.y + 4u, col0 + 8u * lid.x, acc[8], acc[9]);
    write_scores_row(s0, row0 + 8u * lid.y + 5u, col0 + 8u * lid.x, acc[10], acc[11]);
    write_scores_row(s0, row0 + 8u * lid.y + 6u, col0 + 8u * lid.x, acc[12], acc[13]);
    write_scores_row(s0, row0 + 8u * lid.y + 7u, col0 + 8u * lid.x, acc[14], acc[15]);
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

@compute @workgroup_size(8, 8, 1)
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
    let t = lid.y * 8u + lid.x;
    var acc: array<vec4<f32>, 16>;
    for (var j0 = 0u; j0 < p.seq; j0 += TK) {
        for (var idx = t; idx < TILE * TK; idx += 64u) {
            // 64 queries x 16 keys of probabilities, consecutive invocations along the key.
            let r = idx / TK;
            let jj = idx % TK;
            var pv = 0.0;
            if (row0 + r < p.seq && j0 + jj < p.seq) {
                pv = s[s0 + (row0 + r) * p.seq + j0 + jj];
            }
            a_s[jj][r / 4u][r % 4u] = pv;
            // 16 keys x 64 dims of v, consecutive invocations along the dim.
            let vj = idx / TILE;
            let vd = idx % TILE;
            var vv = 0.0;
            if (j0 + vj < p.seq && col0 + vd < p.head_dim) {
                vv = qkv[v0 + (j0 + vj) * stride + col0 + vd];
            }
            b_s[vj][vd / 4u][vd % 4u] = vv;
        }
        workgroupBarrier();
        accumulate_tile(&acc, lid);
        workgroupBarrier();
    }
    let o0 = b * p.seq * hidden + h * p.head_dim;
    write_out_row(o0, row0 + 8u * lid.y + 0u, col0 + 8u * lid.x, acc[0], acc[1]);
    write_out_row(o0, row0 + 8u * lid.y + 1u, col0 + 8u * lid.x, acc[2], acc[3]);
    write_out_row(o0, row0 + 8u * lid.y + 2u, col0 + 8u * lid.x, acc[4], acc[5]);
    write_out_row(o0, row0 + 8u * lid.y + 3u, col0 + 8u * lid.x, acc[6], acc[7]);
    write_out_row(o0, row0 + 8u * lid.y + 4u, col0 + 8u * lid.x, acc[8], acc[9]);
    write_out_row(o0, row0 + 8u * lid.y + 5u, col0 + 8u * lid.x, acc[10], acc[11]);
    write_out_row(o0, row0 + 8u * lid.y + 6u, col0 + 8u * lid.x, acc[12], acc[13]);
    write_out_row(o0, row0 + 8u * lid.y + 7u, col0 + 8u * lid.x, acc[14], acc[15]);
}
