// attention: multi-head self-attention core, out = softmax(q k^T * scale) v for every head.
//
// Layout: qkv is the fused projection [B, seq, 3 * hidden]; token t's q, k and v are columns
// 0.., hidden.. and 2 * hidden.. of row t, and head h owns columns h * head_dim.. of each.
// out is [B, seq, hidden] with the heads concatenated the same way. s (the caller's scratch)
// holds the scores, then the probabilities, [B, heads, seq, s_stride] between passes: rows are
// padded to s_stride (seq rounded up to 4) so the CPU entry points can move them as vec4s, and
// softmax leaves 0 in the padding.
// Three passes, run in order:
//   scores:  S[b, h, i, j] = scale * q_i . k_j, a batched NT matrix multiply.
//   softmax: each row of S in place, max-subtracted so large scores cannot overflow exp.
//   context: out[b, i, h * head_dim + d] = sum_j S[b, h, i, j] v_j[d], a batched NN multiply.
// Two sets of entry points, picked by `record` in src/ops/attention.rs:
//   scores, softmax, context: any shape; for GPUs. The multiplies share one tiling: a 64x64
//     output tile per workgroup of 8x8 invocations, each owning an 8x8 block; the reduction
//     (head_dim, or seq for context) goes in steps of 16 through workgroup memory, checked
//     element by element. softmax spreads a row over a workgroup.
//   scores_cpu, softmax_cpu, context_cpu: head_dim a multiple of 4; for CPU adapters. There an
//     invocation is one lane of an 8-wide SIMD batch of consecutive x ids (so workgroups are 8
//     wide in x: narrower ones left lanes idle and ran 1.3-2.5x slower), every load is done
//     lane by lane whether from a buffer or from workgroup memory, and a barrier switches
//     coroutines. So the multiplies read their operands straight from the buffers as vec4s
//     into 16x8 register blocks, with no workgroup memory and no barriers (on lavapipe ~2.9x
//     faster than the tiled entry points, ~1.15x faster than linear.wgsl-style 128x128
//     workgroup tiles with 16x16 blocks; bigger blocks spill and run slower), and softmax_cpu
//     gives each invocation a whole row (~4.5x faster than the workgroup-wide reductions).
// Workgroups are numbered along one linear index spread over x and y (`wid.x + wid.y * nwg.x`,
// see grid_1d), so any batch * heads * seq fits the per-dimension workgroup limit.
// Keep `Params` in sync with `AttentionParams` in src/ops/attention.rs.

struct Params {
    batch: u32,
    seq: u32,
    heads: u32,
    head_dim: u32,
    // 1 / sqrt(head_dim)
    scale: f32,
    // Row stride of s: seq rounded up to a multiple of 4.
    s_stride: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// Each entry point's automatic bind-group layout holds only the bindings it uses, and the
// record function binds buffers 1.. in order, so every entry point uses a prefix of these. The
// CPU entry points read and write through vec4 views of the same bindings.
@group(0) @binding(1) var<storage, read_write> s: array<f32>;          // [B, heads, seq, s_stride]
@group(0) @binding(1) var<storage, read_write> s4: array<vec4<f32>>;   // [B, heads, seq, s_stride / 4]
@group(0) @binding(2) var<storage, read> qkv: array<f32>;              // [B, seq, 3 * hidden]
@group(0) @binding(2) var<storage, read> qkv4: array<vec4<f32>>;       // [B, seq, 3 * hidden / 4]
@group(0) @binding(3) var<storage, read_write> out: array<f32>;        // [B, seq, hidden]
@group(0) @binding(3) var<storage, read_write> out4: array<vec4<f32>>; // [B, seq, hidden / 4]

const TILE: u32 = 64u;
const TK: u32 = 16u;
// Invocations per softmax row: enough to spread a 577-token row, few enough that the
// reductions take 6 barrier steps.
const ROW_WG: u32 = 64u;
// Queries per workgroup of the CPU multiplies (8 rows of invocations, 16 queries each), keys
// (scores_cpu) or dims (context_cpu) per workgroup (8 lanes, 2 x 4 columns each, 32 apart).
const CPU_ROWS: u32 = 128u;
const CPU_COLS: u32 = 64u;
// Rows per softmax_cpu workgroup, one per invocation.
const CPU_SOFTMAX_ROWS: u32 = 64u;

// Tiles hold 4 consecutive rows (or columns) per vec4, so an invocation fetches its 8 rows
// and 8 columns of a step with four loads (with the unrolled fmas below, ~3x faster on
// lavapipe than linear.wgsl's first scalar 16x16 x 4x4 scheme).
var<workgroup> a_s: array<array<vec4<f32>, 16>, 16>; // [TK][TILE / 4]: left operand tile, transposed
var<workgroup> b_s: array<array<vec4<f32>, 16>, 16>; // [TK][TILE / 4]: right operand tile, transposed
var<workgroup> red: array<f32, 64>;                  // [ROW_WG]: softmax partial max / sum

// TK steps of the invocation's 8x8 block: row i of the block is acc[2 * i] (columns 0..4)
// and acc[2 * i + 1] (columns 4..8). Everything touching acc uses constant indices (the 16
// fmas and the epilogues' rows written out by `#for`, src/shader_template.rs): only then does
// lavapipe keep acc in registers; with loops indexing it the multiplies ran ~1.7x slower.
fn accumulate_tile(acc: ptr<function, array<vec4<f32>, 16>>, lid: vec3<u32>) {
    for (var kk = 0u; kk < TK; kk++) {
// #for i in 0..2
        let a{i} = a_s[kk][2u * lid.y + {i}u];
        let b{i} = b_s[kk][2u * lid.x + {i}u];
// #end
// #for i in 0..2
// #for (C, e) in (x, 0) (y, 1) (z, 2) (w, 3)
// #for j in 0..2
        (*acc)[{8 * i + 2 * e + j}] = fma(vec4<f32>(a{i}.{C}), b{j}, (*acc)[{8 * i + 2 * e + j}]);
// #end
// #end
// #end
    }
}

// Row i of the block, columns j..j+8, of one head's scores S[i, j] (i, j < seq).
fn write_scores_row(s0: u32, i: u32, j: u32, lo: vec4<f32>, hi: vec4<f32>) {
    if (i >= p.seq) {
        return;
    }
    for (var c = 0u; c < 8u; c++) {
        if (j + c < p.seq) {
            s[s0 + i * p.s_stride + j + c] = p.scale * select(lo[c % 4u], hi[c % 4u], c >= 4u);
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

// Workgroup g (of a 2D grid) of a product over every head: the tile_rows x tile_cols tile of
// head bh's output (seq rows, `cols` columns: keys or dims) from row0, col0. Not live past the
// last tile.
struct TileAt {
    bh: u32,
    row0: u32,
    col0: u32,
    live: bool,
}

fn tile_at(wid: vec3<u32>, nwg: vec3<u32>, tile_rows: u32, tile_cols: u32, cols: u32) -> TileAt {
    let nr = (p.seq + tile_rows - 1u) / tile_rows;
    let nc = (cols + tile_cols - 1u) / tile_cols;
    let g = wid.x + wid.y * nwg.x;
    return TileAt(
        g / (nr * nc),
        (g % (nr * nc)) / nc * tile_rows,
        (g % nc) * tile_cols,
        g < p.batch * p.heads * nr * nc,
    );
}

@compute @workgroup_size(8, 8, 1)
fn scores(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let tile = tile_at(wid, nwg, TILE, TILE, p.seq);
    if (!tile.live) {
        return;
    }
    let bh = tile.bh;
    let row0 = tile.row0; // query i
    let col0 = tile.col0; // key j
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
    let s0 = bh * p.seq * p.s_stride;
// #for i in 0..8
    write_scores_row(s0, row0 + 8u * lid.y + {i}u, col0 + 8u * lid.x, acc[{2 * i}], acc[{2 * i + 1}]);
// #end
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
    let base = row * p.s_stride;
    // -FLT_MAX, written below it: Tint (Chrome) refuses 3.4028235e38, which only rounds to it.
    var m = -3.4028234e38;
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
    for (var j = lid; j < p.s_stride; j += ROW_WG) {
        s[base + j] = select(0.0, s[base + j] * inv, j < p.seq);
    }
}

@compute @workgroup_size(8, 8, 1)
fn context(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let tile = tile_at(wid, nwg, TILE, TILE, p.head_dim);
    if (!tile.live) {
        return;
    }
    let bh = tile.bh;
    let row0 = tile.row0; // query i
    let col0 = tile.col0; // dim d
    let b = bh / p.heads;
    let h = bh % p.heads;
    let hidden = p.heads * p.head_dim;
    let stride = 3u * hidden;
    let v0 = b * p.seq * stride + 2u * hidden + h * p.head_dim;
    let s0 = bh * p.seq * p.s_stride;
    let t = lid.y * 8u + lid.x;
    var acc: array<vec4<f32>, 16>;
    for (var j0 = 0u; j0 < p.seq; j0 += TK) {
        for (var idx = t; idx < TILE * TK; idx += 64u) {
            // 64 queries x 16 keys of probabilities, consecutive invocations along the key.
            let r = idx / TK;
            let jj = idx % TK;
            var pv = 0.0;
            if (row0 + r < p.seq && j0 + jj < p.seq) {
                pv = s[s0 + (row0 + r) * p.s_stride + j0 + jj];
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
// #for i in 0..8
    write_out_row(o0, row0 + 8u * lid.y + {i}u, col0 + 8u * lid.x, acc[{2 * i}], acc[{2 * i + 1}]);
// #end
}

// ---- CPU entry points -------------------------------------------------------------------
//
// An invocation owns 16 consecutive queries (rows r0 + 4 i + e, i and e in 0..4) and 8 columns
// in two runs of 4, 32 apart (c0 + 32 j + 0..4): the 8 lanes of a SIMD batch share their rows
// and cover 64 columns. acc[2 i + j] is the 4x4 block of rows r0 + 4 i.., columns c0 + 32 j..,
// with acc[2 i + j][e] holding row r0 + 4 i + e. Operand blocks are mat4x4s of 4 rows of the
// source (4 vec4 loads each), so the block updates are plain matrix products, and acc is only
// ever indexed by constants (see accumulate_tile).
// Invocations whose first row is past seq run no steps (a whole SIMD batch shares its rows, so
// this skips the idle part of the last row tile); invocations with some rows past seq read
// clamped or out-of-range rows for those and never store them (WGSL keeps out-of-range reads
// in bounds).

// Four rows of a vec4 array as the columns of a matrix: element `at` and the next three
// rows, `rows` vec4s apart.
fn qkv_rows(at: u32, rows: u32) -> mat4x4<f32> {
    return mat4x4<f32>(qkv4[at], qkv4[at + rows], qkv4[at + 2u * rows], qkv4[at + 3u * rows]);
}

fn s_rows(at: u32, rows: u32) -> mat4x4<f32> {
    return mat4x4<f32>(s4[at], s4[at + rows], s4[at + 2u * rows], s4[at + 3u * rows]);
}

// Rows r..r+4, columns c..c+4 of one head's scores; columns up to s_stride are written (the
// padding gets values from clamped keys, which softmax_cpu overwrites with 0).
fn put_scores(s0: u32, r: u32, c: u32, m: mat4x4<f32>) {
    if (c >= p.s_stride) {
        return;
    }
    let at = (s0 + r * p.s_stride + c) / 4u;
    let rows = p.s_stride / 4u;
    if (r < p.seq) { s4[at] = p.scale * m[0]; }
    if (r + 1u < p.seq) { s4[at + rows] = p.scale * m[1]; }
    if (r + 2u < p.seq) { s4[at + 2u * rows] = p.scale * m[2]; }
    if (r + 3u < p.seq) { s4[at + 3u * rows] = p.scale * m[3]; }
}

// Rows r..r+4, dims d..d+4 of one head's context (head_dim is a multiple of 4).
fn put_context(o0: u32, r: u32, d: u32, m: mat4x4<f32>) {
    if (d >= p.head_dim) {
        return;
    }
    let hidden = p.heads * p.head_dim;
    let at = (o0 + r * hidden + d) / 4u;
    let rows = hidden / 4u;
    if (r < p.seq) { out4[at] = m[0]; }
    if (r + 1u < p.seq) { out4[at + rows] = m[1]; }
    if (r + 2u < p.seq) { out4[at + 2u * rows] = m[2]; }
    if (r + 3u < p.seq) { out4[at + 3u * rows] = m[3]; }
}

// 128 queries x 64 keys per workgroup; head_dim in steps of 4.
@compute @workgroup_size(8, 8, 1)
fn scores_cpu(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let tile = tile_at(wid, nwg, CPU_ROWS, CPU_COLS, p.seq);
    if (!tile.live) {
        return;
    }
    let bh = tile.bh;
    let r0 = tile.row0 + 16u * lid.y; // query i
    let c0 = tile.col0 + 4u * lid.x;  // key j
    let b = bh / p.heads;
    let h = bh % p.heads;
    let hidden = p.heads * p.head_dim;
    let rows = 3u * hidden / 4u; // qkv row stride in vec4s
    let q0 = (b * p.seq * 3u * hidden + h * p.head_dim) / 4u + min(r0, p.seq - 1u) * rows;
    let k0 = (b * p.seq * 3u * hidden + hidden + h * p.head_dim) / 4u + min(c0, p.seq - 1u) * rows;
    let steps = select(0u, p.head_dim / 4u, r0 < p.seq);
    var acc: array<mat4x4<f32>, 8>;
    for (var d = 0u; d < steps; d++) {
        // Columns of q0m.. are query rows over 4 dims, rows of k0m, k1m are keys, so
        // (km * qm)[e] is query e against 4 keys.
// #for i in 0..4
        let q{i}m = qkv_rows(q0 + {4 * i}u * rows + d, rows);
// #end
// #for j in 0..2
        let k{j}m = transpose(qkv_rows(k0 + {32 * j}u * rows + d, rows));
// #end
// #for i in 0..4
// #for j in 0..2
        acc[{2 * i + j}] += k{j}m * q{i}m;
// #end
// #end
    }
    let s0 = bh * p.seq * p.s_stride;
// #for i in 0..4
// #for j in 0..2
    put_scores(s0, r0 + {4 * i}u, c0 + {32 * j}u, acc[{2 * i + j}]);
// #end
// #end
}

// One invocation per row, no barriers: a first pass keeps a running max and a sum rescaled
// whenever the max grows, a second writes the probabilities and zeroes the padding.
@compute @workgroup_size(64, 1, 1)
fn softmax_cpu(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let row = (wid.x + wid.y * nwg.x) * CPU_SOFTMAX_ROWS + lid.x;
    if (row >= p.batch * p.heads * p.seq) {
        return;
    }
    let base = row * p.s_stride / 4u;
    let quads = p.s_stride / 4u;
    var m = -3.4028234e38;
    var sum = 0.0;
    for (var j = 0u; j < quads; j++) {
        let live = vec4<u32>(4u * j) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(p.seq);
        let x = select(vec4<f32>(-3.4028234e38), s4[base + j], live);
        let mj = max(m, max(max(x.x, x.y), max(x.z, x.w)));
        let e = exp(x - mj);
        sum = sum * exp(m - mj) + (e.x + e.y) + (e.z + e.w);
        m = mj;
    }
    let inv = 1.0 / sum;
    for (var j = 0u; j < quads; j++) {
        let live = vec4<u32>(4u * j) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(p.seq);
        s4[base + j] = select(vec4<f32>(0.0), exp(s4[base + j] - m) * inv, live);
    }
}

// 128 queries x 64 dims per workgroup; keys in steps of 4 (the last step's padding keys have
// probability 0 and read the last key's v).
@compute @workgroup_size(8, 8, 1)
fn context_cpu(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let tile = tile_at(wid, nwg, CPU_ROWS, CPU_COLS, p.head_dim);
    if (!tile.live) {
        return;
    }
    let bh = tile.bh;
    let r0 = tile.row0 + 16u * lid.y; // query i
    let c0 = tile.col0 + 4u * lid.x;  // dim d
    let b = bh / p.heads;
    let h = bh % p.heads;
    let hidden = p.heads * p.head_dim;
    let rows = 3u * hidden / 4u;     // qkv row stride in vec4s
    let s_rows4 = p.s_stride / 4u; // s row stride in vec4s
    let p0 = (bh * p.seq + min(r0, p.seq - 1u)) * s_rows4;
    let v0 = (b * p.seq * 3u * hidden + 2u * hidden + h * p.head_dim + min(c0, p.head_dim - 4u)) / 4u;
    let steps = select(0u, s_rows4, r0 < p.seq);
    var acc: array<mat4x4<f32>, 8>;
    for (var k = 0u; k < steps; k++) {
        // Columns of p0m.. are query rows over 4 keys, columns of v0m, v1m are keys over 4
        // dims, so (vm * pm)[e] is query e's 4 dims.
// #for i in 0..4
        let p{i}m = s_rows(p0 + {4 * i}u * s_rows4 + k, s_rows4);
// #end
        let last = p.seq - 1u;
// #for e in 0..4
        let v_{e} = v0 + min(4u * k + {e}u, last) * rows;
// #end
// #for j in 0..2
        let v{j}m = mat4x4<f32>(qkv4[v_0 + {8 * j}u], qkv4[v_1 + {8 * j}u], qkv4[v_2 + {8 * j}u], qkv4[v_3 + {8 * j}u]);
// #end
// #for i in 0..4
// #for j in 0..2
        acc[{2 * i + j}] += v{j}m * p{i}m;
// #end
// #end
    }
    let o0 = b * p.seq * hidden + h * p.head_dim;
// #for i in 0..4
// #for j in 0..2
    put_context(o0, r0 + {4 * i}u, c0 + {32 * j}u, acc[{2 * i + j}]);
// #end
// #end
}

// ---- CPU adapters: attention as texture products (src/ops/attention.rs, record_textures) ----
// The scores and the context are linear.wgsl's texture products (one per head); between
// them softmax_texture turns each row of one image's scores [heads * s_stride rows, seq
// columns] into probabilities, one row per invocation, scaled, max-subtracted, and zero in
// the padding columns (the context product reads whole texels) and padding rows.
@group(0) @binding(1) var scores_tex: texture_storage_2d<rgba32float, read>;
@group(0) @binding(2) var probs_tex: texture_storage_2d<rgba32float, write>;
// 1 / each row's sum: the context product scales its rows by it (linear.wgsl's ROW_SCALE),
// so the probabilities are stored unnormalised and exp runs once per score, not twice.
@group(0) @binding(3) var<storage, read_write> inv_sums: array<f32>; // [heads * s_stride]

@compute @workgroup_size(64, 1, 1)
fn softmax_texture(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = (wid.x + wid.y * nwg.x) * 64u + lid;
    if (row >= p.heads * p.s_stride || row % p.s_stride >= p.seq) {
        return;
    }
    let q = (p.seq + 3u) / 4u;
    // Columns past seq in the last texel are masked out of the max and the sum.
    let tail = p.seq - 4u * (q - 1u);
    let keep = vec4<bool>(true, tail > 1u, tail > 2u, tail > 3u);
    var m = vec4<f32>(-3.0e38);
    for (var c = 0u; c < q; c++) {
        let v = textureLoad(scores_tex, vec2<u32>(c, row));
        m = max(m, select(vec4<f32>(-3.0e38), v, keep | vec4<bool>(c + 1u < q)));
    }
    let mx = max(max(m.x, m.y), max(m.z, m.w));
    var s = vec4<f32>(0.0);
    for (var c = 0u; c < q; c++) {
        let e = exp((textureLoad(scores_tex, vec2<u32>(c, row)) - mx) * p.scale);
        let kept = select(vec4<f32>(0.0), e, keep | vec4<bool>(c + 1u < q));
        s += kept;
        textureStore(probs_tex, vec2<u32>(c, row), kept);
    }
    inv_sums[row] = 1.0 / (s.x + s.y + s.z + s.w);
}
