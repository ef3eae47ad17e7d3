// linear: y[m, n] = act(sum_k x[m * x_row_stride + k] * w[n, k] + bias[n]) + residual[m, n]
//
// Layout: x rows are `x_row_stride` apart (so the head can read only the CLS token of each
// image), w is PyTorch's [N, K], y and residual are dense [M, N].
// Tiling: a 128x128 output tile per workgroup; K goes in steps of 16 through workgroup memory,
// where both operand tiles sit k-major with 4 consecutive rows (or columns) per vec4. An
// invocation's block is spread over the tile in vec4 steps: rows 4 * (lid.y + i * wg_y) + 0..4,
// columns 4 * (lid.x + j * wg_x) + 0..4, so neighbouring invocations read neighbouring vec4s
// of the tile and write neighbouring columns of y.
// Three entry points with one tiling, picked by `record` in src/ops/linear.rs:
//   main:          any shape; scalar loads, each checked against K. 16x16 invocations, each
//                  owning an 8x8 block.
//   main_vec4:     K and x_row_stride multiples of 4 (every real shape): x and w read as vec4.
//                  Same blocks, for GPUs.
//   main_vec4_cpu: main_vec4's loads, 8x8 invocations each owning a 16x16 block, for CPU
//                  adapters. There an invocation is one lane of a SIMD batch and every
//                  workgroup-memory load is done lane by lane, so loads, not fmas, cost the
//                  time, and twice the block edge halves the loads per fma (~1.6x faster on
//                  lavapipe); on a GPU its 256 accumulators would overflow the registers.
// f16 weights: shaders/linear_f16.wgsl (packed u32) and linear_f16_native.wgsl (SHADER_F16)
// are appended to this file to make their modules; this one stays f32-only so that it needs
// nothing beyond core WGSL on any adapter.
// Accumulators are indexed with constants only (fmas and stores written out): lavapipe does
// not unroll loops, and one dynamic index anywhere keeps the whole array in memory.
// Keep `Params` in sync with `LinearParams` in src/ops/linear.rs.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    x_row_stride: u32,
    // bit 0: add bias, bit 1: exact GELU, bit 2: add residual (after the activation),
    // bit 3: the bias is per row (a 1x1 conv as a product), not per column
    flags: u32,
    // All variants: where y (and the residual) start in their buffers.
    y_offset: u32,
    // Texture variants: where each operand's block starts in its texture (rows, and columns
    // in texels), so that one texture holds many operands (a batched 1x1 conv's images,
    // attention's heads).
    x_row0: u32,
    x_col0: u32,
    w_row0: u32,
    w_col0: u32,
    y_row0: u32,
    y_col0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// main reads x and w as f32, the vec4 entry points through vec4 views of the same bindings
// (an entry point's bind-group layout holds only the variables it uses).
@group(0) @binding(1) var<storage, read> x: array<f32>;        // [M, x_row_stride]
@group(0) @binding(1) var<storage, read> x4: array<vec4<f32>>; // [M, x_row_stride / 4]
@group(0) @binding(2) var<storage, read> w: array<f32>;        // [N, K]
@group(0) @binding(2) var<storage, read> w4: array<vec4<f32>>; // [N, K / 4]
@group(0) @binding(3) var<storage, read> bias: array<f32>;     // [N] (unused without flag)
@group(0) @binding(4) var<storage, read> residual: array<f32>; // [M, N] (unused without flag)
@group(0) @binding(5) var<storage, read_write> y: array<f32>;  // [M, N]

const TILE: u32 = 128u;
const TK: u32 = 16u;
// Tiles are filled in quads of 4 rows (or columns) x 4 consecutive k: QUADS per operand.
const QUADS: u32 = 128u; // (TILE / 4) * (TK / 4)

var<workgroup> xs: array<array<vec4<f32>, 32>, 16>; // [TK][TILE / 4]: x tile, k-major
var<workgroup> ws: array<array<vec4<f32>, 32>, 16>; // [TK][TILE / 4]: w tile, k-major

// erf to ~1.2e-7 relative (Numerical Recipes' erfc Chebyshev fit), since WGSL has no erf.
fn erf_approx(x: f32) -> f32 {
    let z = abs(x);
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
        t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
        t * (-0.82215223 + t * 0.17087277)))))))));
    return select(r - 1.0, 1.0 - r, x >= 0.0);
}

fn gelu(x: f32) -> f32 {
    return 0.5 * x * (1.0 + erf_approx(x * 0.70710678118654752));
}

// Stores quad (g, q), given as its four rows (tile rows 4g.., k steps 4q..), as four k-major
// vec4s. Transposing in registers lets both the global reads (along a row) and the
// workgroup-memory writes be whole vec4s.
fn put_x(g: u32, q: u32, rows: mat4x4<f32>) {
    let t = transpose(rows);
    xs[4u * q][g] = t[0];
    xs[4u * q + 1u][g] = t[1];
    xs[4u * q + 2u][g] = t[2];
    xs[4u * q + 3u][g] = t[3];
}

fn put_w(g: u32, q: u32, cols: mat4x4<f32>) {
    let t = transpose(cols);
    ws[4u * q][g] = t[0];
    ws[4u * q + 1u][g] = t[1];
    ws[4u * q + 2u][g] = t[2];
    ws[4u * q + 3u][g] = t[3];
}

// x[r, k..k+4] and w[c, k..k+4], zero past M, N or K; k is a multiple of 4 and so is K.
fn x_vec4(r: u32, k: u32) -> vec4<f32> {
    if (r < p.m && k < p.k) {
        return x4[(r * p.x_row_stride + k) / 4u];
    }
    return vec4<f32>(0.0);
}

fn w_vec4(c: u32, k: u32) -> vec4<f32> {
    if (c < p.n && k < p.k) {
        return w4[(c * p.k + k) / 4u];
    }
    return vec4<f32>(0.0);
}

// The same for any K and row stride, element by element.
fn x_scalar(r: u32, k: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    if (r < p.m) {
        let i = r * p.x_row_stride + k;
        if (k < p.k) { v.x = x[i]; }
        if (k + 1u < p.k) { v.y = x[i + 1u]; }
        if (k + 2u < p.k) { v.z = x[i + 2u]; }
        if (k + 3u < p.k) { v.w = x[i + 3u]; }
    }
    return v;
}

fn w_scalar(c: u32, k: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    if (c < p.n) {
        let i = c * p.k + k;
        if (k < p.k) { v.x = w[i]; }
        if (k + 1u < p.k) { v.y = w[i + 1u]; }
        if (k + 2u < p.k) { v.z = w[i + 2u]; }
        if (k + 3u < p.k) { v.w = w[i + 3u]; }
    }
    return v;
}

// Fills both tiles for k0..k0+TK; invocation t of nt takes quads t, t + nt, ... (x's, then
// w's). Consecutive invocations take consecutive k quads of the same rows, so a row's 64
// bytes are read together.
fn load_tiles_vec4(t: u32, nt: u32, row0: u32, col0: u32, k0: u32) {
    for (var i = t; i < 2u * QUADS; i += nt) {
        let g = (i % QUADS) / (TK / 4u);
        let q = i % (TK / 4u);
        let k = k0 + 4u * q;
        if (i < QUADS) {
            let r = row0 + 4u * g;
            put_x(g, q, mat4x4<f32>(x_vec4(r, k), x_vec4(r + 1u, k), x_vec4(r + 2u, k), x_vec4(r + 3u, k)));
        } else {
            let c = col0 + 4u * g;
            put_w(g, q, mat4x4<f32>(w_vec4(c, k), w_vec4(c + 1u, k), w_vec4(c + 2u, k), w_vec4(c + 3u, k)));
        }
    }
}

fn load_tiles_scalar(t: u32, nt: u32, row0: u32, col0: u32, k0: u32) {
    for (var i = t; i < 2u * QUADS; i += nt) {
        let g = (i % QUADS) / (TK / 4u);
        let q = i % (TK / 4u);
        let k = k0 + 4u * q;
        if (i < QUADS) {
            let r = row0 + 4u * g;
            put_x(g, q, mat4x4<f32>(x_scalar(r, k), x_scalar(r + 1u, k), x_scalar(r + 2u, k), x_scalar(r + 3u, k)));
        } else {
            let c = col0 + 4u * g;
            put_w(g, q, mat4x4<f32>(w_scalar(c, k), w_scalar(c + 1u, k), w_scalar(c + 2u, k), w_scalar(c + 3u, k)));
        }
    }
}

// TK steps of an 8x8 block on 16x16 invocations: acc[2 * i + j] holds row i of the block
// (tile row 4 * lid.y + 64 * (i / 4) + i % 4), tile columns 4 * lid.x + 64 * j + 0..4.
fn step_8x8(acc: ptr<function, array<vec4<f32>, 16>>, lid: vec3<u32>) {
    for (var kk = 0u; kk < TK; kk++) {
        let a0 = xs[kk][lid.y];
        let a1 = xs[kk][lid.y + 16u];
        let b0 = ws[kk][lid.x];
        let b1 = ws[kk][lid.x + 16u];
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

// TK steps of a 16x16 block on 8x8 invocations: acc[4 * i + j] holds row i of the block
// (tile row 4 * lid.y + 32 * (i / 4) + i % 4), tile columns 4 * lid.x + 32 * j + 0..4.
fn step_16x16(acc: ptr<function, array<vec4<f32>, 64>>, lid: vec3<u32>) {
    for (var kk = 0u; kk < TK; kk++) {
        let a0 = xs[kk][lid.y];
        let a1 = xs[kk][lid.y + 8u];
        let a2 = xs[kk][lid.y + 16u];
        let a3 = xs[kk][lid.y + 24u];
        let b0 = ws[kk][lid.x];
        let b1 = ws[kk][lid.x + 8u];
        let b2 = ws[kk][lid.x + 16u];
        let b3 = ws[kk][lid.x + 24u];
        (*acc)[0] = fma(vec4<f32>(a0.x), b0, (*acc)[0]);
        (*acc)[1] = fma(vec4<f32>(a0.x), b1, (*acc)[1]);
        (*acc)[2] = fma(vec4<f32>(a0.x), b2, (*acc)[2]);
        (*acc)[3] = fma(vec4<f32>(a0.x), b3, (*acc)[3]);
        (*acc)[4] = fma(vec4<f32>(a0.y), b0, (*acc)[4]);
        (*acc)[5] = fma(vec4<f32>(a0.y), b1, (*acc)[5]);
        (*acc)[6] = fma(vec4<f32>(a0.y), b2, (*acc)[6]);
        (*acc)[7] = fma(vec4<f32>(a0.y), b3, (*acc)[7]);
        (*acc)[8] = fma(vec4<f32>(a0.z), b0, (*acc)[8]);
        (*acc)[9] = fma(vec4<f32>(a0.z), b1, (*acc)[9]);
        (*acc)[10] = fma(vec4<f32>(a0.z), b2, (*acc)[10]);
        (*acc)[11] = fma(vec4<f32>(a0.z), b3, (*acc)[11]);
        (*acc)[12] = fma(vec4<f32>(a0.w), b0, (*acc)[12]);
        (*acc)[13] = fma(vec4<f32>(a0.w), b1, (*acc)[13]);
        (*acc)[14] = fma(vec4<f32>(a0.w), b2, (*acc)[14]);
        (*acc)[15] = fma(vec4<f32>(a0.w), b3, (*acc)[15]);
        (*acc)[16] = fma(vec4<f32>(a1.x), b0, (*acc)[16]);
        (*acc)[17] = fma(vec4<f32>(a1.x), b1, (*acc)[17]);
        (*acc)[18] = fma(vec4<f32>(a1.x), b2, (*acc)[18]);
        (*acc)[19] = fma(vec4<f32>(a1.x), b3, (*acc)[19]);
        (*acc)[20] = fma(vec4<f32>(a1.y), b0, (*acc)[20]);
        (*acc)[21] = fma(vec4<f32>(a1.y), b1, (*acc)[21]);
        (*acc)[22] = fma(vec4<f32>(a1.y), b2, (*acc)[22]);
        (*acc)[23] = fma(vec4<f32>(a1.y), b3, (*acc)[23]);
        (*acc)[24] = fma(vec4<f32>(a1.z), b0, (*acc)[24]);
        (*acc)[25] = fma(vec4<f32>(a1.z), b1, (*acc)[25]);
        (*acc)[26] = fma(vec4<f32>(a1.z), b2, (*acc)[26]);
        (*acc)[27] = fma(vec4<f32>(a1.z), b3, (*acc)[27]);
        (*acc)[28] = fma(vec4<f32>(a1.w), b0, (*acc)[28]);
        (*acc)[29] = fma(vec4<f32>(a1.w), b1, (*acc)[29]);
        (*acc)[30] = fma(vec4<f32>(a1.w), b2, (*acc)[30]);
        (*acc)[31] = fma(vec4<f32>(a1.w), b3, (*acc)[31]);
        (*acc)[32] = fma(vec4<f32>(a2.x), b0, (*acc)[32]);
        (*acc)[33] = fma(vec4<f32>(a2.x), b1, (*acc)[33]);
        (*acc)[34] = fma(vec4<f32>(a2.x), b2, (*acc)[34]);
        (*acc)[35] = fma(vec4<f32>(a2.x), b3, (*acc)[35]);
        (*acc)[36] = fma(vec4<f32>(a2.y), b0, (*acc)[36]);
        (*acc)[37] = fma(vec4<f32>(a2.y), b1, (*acc)[37]);
        (*acc)[38] = fma(vec4<f32>(a2.y), b2, (*acc)[38]);
        (*acc)[39] = fma(vec4<f32>(a2.y), b3, (*acc)[39]);
        (*acc)[40] = fma(vec4<f32>(a2.z), b0, (*acc)[40]);
        (*acc)[41] = fma(vec4<f32>(a2.z), b1, (*acc)[41]);
        (*acc)[42] = fma(vec4<f32>(a2.z), b2, (*acc)[42]);
        (*acc)[43] = fma(vec4<f32>(a2.z), b3, (*acc)[43]);
        (*acc)[44] = fma(vec4<f32>(a2.w), b0, (*acc)[44]);
        (*acc)[45] = fma(vec4<f32>(a2.w), b1, (*acc)[45]);
        (*acc)[46] = fma(vec4<f32>(a2.w), b2, (*acc)[46]);
        (*acc)[47] = fma(vec4<f32>(a2.w), b3, (*acc)[47]);
        (*acc)[48] = fma(vec4<f32>(a3.x), b0, (*acc)[48]);
        (*acc)[49] = fma(vec4<f32>(a3.x), b1, (*acc)[49]);
        (*acc)[50] = fma(vec4<f32>(a3.x), b2, (*acc)[50]);
        (*acc)[51] = fma(vec4<f32>(a3.x), b3, (*acc)[51]);
        (*acc)[52] = fma(vec4<f32>(a3.y), b0, (*acc)[52]);
        (*acc)[53] = fma(vec4<f32>(a3.y), b1, (*acc)[53]);
        (*acc)[54] = fma(vec4<f32>(a3.y), b2, (*acc)[54]);
        (*acc)[55] = fma(vec4<f32>(a3.y), b3, (*acc)[55]);
        (*acc)[56] = fma(vec4<f32>(a3.z), b0, (*acc)[56]);
        (*acc)[57] = fma(vec4<f32>(a3.z), b1, (*acc)[57]);
        (*acc)[58] = fma(vec4<f32>(a3.z), b2, (*acc)[58]);
        (*acc)[59] = fma(vec4<f32>(a3.z), b3, (*acc)[59]);
        (*acc)[60] = fma(vec4<f32>(a3.w), b0, (*acc)[60]);
        (*acc)[61] = fma(vec4<f32>(a3.w), b1, (*acc)[61]);
        (*acc)[62] = fma(vec4<f32>(a3.w), b2, (*acc)[62]);
        (*acc)[63] = fma(vec4<f32>(a3.w), b3, (*acc)[63]);
    }
}

// Bias, activation and residual for y[r, c..c+4], each checked against M and N.
fn finish(r: u32, c: u32, v: vec4<f32>) {
    if (r >= p.m) {
        return;
    }
    for (var e = 0u; e < 4u; e++) {
        let n = c + e;
        if (n >= p.n) {
            return;
        }
        var o = v[e];
        if ((p.flags & 1u) != 0u) {
            o += bias[select(n, r, (p.flags & 8u) != 0u)];
        }
        if ((p.flags & 2u) != 0u) {
            o = gelu(o);
        }
        let at = p.y_offset + r * p.n + n;
        if ((p.flags & 4u) != 0u) {
            o += residual[at];
        }
        y[at] = o;
    }
}

fn finish_8x8(acc: ptr<function, array<vec4<f32>, 16>>, r0: u32, c0: u32) {
    finish(r0, c0, (*acc)[0]); finish(r0, c0 + 64u, (*acc)[1]);
    finish(r0 + 1u, c0, (*acc)[2]); finish(r0 + 1u, c0 + 64u, (*acc)[3]);
    finish(r0 + 2u, c0, (*acc)[4]); finish(r0 + 2u, c0 + 64u, (*acc)[5]);
    finish(r0 + 3u, c0, (*acc)[6]); finish(r0 + 3u, c0 + 64u, (*acc)[7]);
    finish(r0 + 64u, c0, (*acc)[8]); finish(r0 + 64u, c0 + 64u, (*acc)[9]);
    finish(r0 + 65u, c0, (*acc)[10]); finish(r0 + 65u, c0 + 64u, (*acc)[11]);
    finish(r0 + 66u, c0, (*acc)[12]); finish(r0 + 66u, c0 + 64u, (*acc)[13]);
    finish(r0 + 67u, c0, (*acc)[14]); finish(r0 + 67u, c0 + 64u, (*acc)[15]);
}

fn finish_16x16(acc: ptr<function, array<vec4<f32>, 64>>, r0: u32, c0: u32) {
    finish(r0, c0, (*acc)[0]); finish(r0, c0 + 32u, (*acc)[1]); finish(r0, c0 + 64u, (*acc)[2]); finish(r0, c0 + 96u, (*acc)[3]);
    finish(r0 + 1u, c0, (*acc)[4]); finish(r0 + 1u, c0 + 32u, (*acc)[5]); finish(r0 + 1u, c0 + 64u, (*acc)[6]); finish(r0 + 1u, c0 + 96u, (*acc)[7]);
    finish(r0 + 2u, c0, (*acc)[8]); finish(r0 + 2u, c0 + 32u, (*acc)[9]); finish(r0 + 2u, c0 + 64u, (*acc)[10]); finish(r0 + 2u, c0 + 96u, (*acc)[11]);
    finish(r0 + 3u, c0, (*acc)[12]); finish(r0 + 3u, c0 + 32u, (*acc)[13]); finish(r0 + 3u, c0 + 64u, (*acc)[14]); finish(r0 + 3u, c0 + 96u, (*acc)[15]);
    finish(r0 + 32u, c0, (*acc)[16]); finish(r0 + 32u, c0 + 32u, (*acc)[17]); finish(r0 + 32u, c0 + 64u, (*acc)[18]); finish(r0 + 32u, c0 + 96u, (*acc)[19]);
    finish(r0 + 33u, c0, (*acc)[20]); finish(r0 + 33u, c0 + 32u, (*acc)[21]); finish(r0 + 33u, c0 + 64u, (*acc)[22]); finish(r0 + 33u, c0 + 96u, (*acc)[23]);
    finish(r0 + 34u, c0, (*acc)[24]); finish(r0 + 34u, c0 + 32u, (*acc)[25]); finish(r0 + 34u, c0 + 64u, (*acc)[26]); finish(r0 + 34u, c0 + 96u, (*acc)[27]);
    finish(r0 + 35u, c0, (*acc)[28]); finish(r0 + 35u, c0 + 32u, (*acc)[29]); finish(r0 + 35u, c0 + 64u, (*acc)[30]); finish(r0 + 35u, c0 + 96u, (*acc)[31]);
    finish(r0 + 64u, c0, (*acc)[32]); finish(r0 + 64u, c0 + 32u, (*acc)[33]); finish(r0 + 64u, c0 + 64u, (*acc)[34]); finish(r0 + 64u, c0 + 96u, (*acc)[35]);
    finish(r0 + 65u, c0, (*acc)[36]); finish(r0 + 65u, c0 + 32u, (*acc)[37]); finish(r0 + 65u, c0 + 64u, (*acc)[38]); finish(r0 + 65u, c0 + 96u, (*acc)[39]);
    finish(r0 + 66u, c0, (*acc)[40]); finish(r0 + 66u, c0 + 32u, (*acc)[41]); finish(r0 + 66u, c0 + 64u, (*acc)[42]); finish(r0 + 66u, c0 + 96u, (*acc)[43]);
    finish(r0 + 67u, c0, (*acc)[44]); finish(r0 + 67u, c0 + 32u, (*acc)[45]); finish(r0 + 67u, c0 + 64u, (*acc)[46]); finish(r0 + 67u, c0 + 96u, (*acc)[47]);
    finish(r0 + 96u, c0, (*acc)[48]); finish(r0 + 96u, c0 + 32u, (*acc)[49]); finish(r0 + 96u, c0 + 64u, (*acc)[50]); finish(r0 + 96u, c0 + 96u, (*acc)[51]);
    finish(r0 + 97u, c0, (*acc)[52]); finish(r0 + 97u, c0 + 32u, (*acc)[53]); finish(r0 + 97u, c0 + 64u, (*acc)[54]); finish(r0 + 97u, c0 + 96u, (*acc)[55]);
    finish(r0 + 98u, c0, (*acc)[56]); finish(r0 + 98u, c0 + 32u, (*acc)[57]); finish(r0 + 98u, c0 + 64u, (*acc)[58]); finish(r0 + 98u, c0 + 96u, (*acc)[59]);
    finish(r0 + 99u, c0, (*acc)[60]); finish(r0 + 99u, c0 + 32u, (*acc)[61]); finish(r0 + 99u, c0 + 64u, (*acc)[62]); finish(r0 + 99u, c0 + 96u, (*acc)[63]);
}

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wid.y * TILE;
    let col0 = wid.x * TILE;
    var acc: array<vec4<f32>, 16>;
    for (var k0 = 0u; k0 < p.k; k0 += TK) {
        load_tiles_scalar(lid.y * 16u + lid.x, 256u, row0, col0, k0);
        workgroupBarrier();
        step_8x8(&acc, lid);
        workgroupBarrier();
    }
    finish_8x8(&acc, row0 + 4u * lid.y, col0 + 4u * lid.x);
}

@compute @workgroup_size(16, 16, 1)
fn main_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wid.y * TILE;
    let col0 = wid.x * TILE;
    var acc: array<vec4<f32>, 16>;
    for (var k0 = 0u; k0 < p.k; k0 += TK) {
        load_tiles_vec4(lid.y * 16u + lid.x, 256u, row0, col0, k0);
        workgroupBarrier();
        step_8x8(&acc, lid);
        workgroupBarrier();
    }
    finish_8x8(&acc, row0 + 4u * lid.y, col0 + 4u * lid.x);
}

@compute @workgroup_size(8, 8, 1)
fn main_vec4_cpu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wid.y * TILE;
    let col0 = wid.x * TILE;
    var acc: array<vec4<f32>, 64>;
    for (var k0 = 0u; k0 < p.k; k0 += TK) {
        load_tiles_vec4(lid.y * 8u + lid.x, 64u, row0, col0, k0);
        workgroupBarrier();
        step_16x16(&acc, lid);
        workgroupBarrier();
    }
    finish_16x16(&acc, row0 + 4u * lid.y, col0 + 4u * lid.x);
}

// ---- CPU adapters: both operands in read-only storage textures ----
// x as a matrix texture [K/4 texels, M rows padded to 16] and w as [K/4, N padded to 96]
// (src/ops/matrix_texture.rs: texel (c, r) = columns 4c..4c+4 of row r, zero padding), so the
// product is sum over texels of dot(x texel, w texel) and nothing in the k-loop checks bounds.
// On lavapipe a storage-texture load is one inline 128-bit load per lane, where a buffer or
// workgroup-memory load is a loop over the 8 lanes (../shared/notes/lavapipe.md): 3x faster.
// A workgroup is one 8-lane batch with no workgroup memory and no barrier; a lane owns 16 rows
// x 3 quads of 4 columns, the quads 8 lanes apart so a batch's stores are contiguous:
// 16 + 12 texel loads per 768 multiply-adds. w is f32 (main_texture_f32*) or f16
// (main_texture_f16*, an rgba16float texture read as f32: half the bytes per load).
// *_to_texture entry points store y as a matrix texture for the next product instead
// ([N/4, M padded to 16]; columns past N are zero).
// Unrolled by src/shader_template.rs: lavapipe does not unroll loops, and a dynamic index
// into the accumulators would keep them in memory.

@group(0) @binding(1) var xt: texture_storage_2d<rgba32float, read>;     // [K/4, M_pad]
@group(0) @binding(2) var wt_f32: texture_storage_2d<rgba32float, read>; // [K/4, N_pad]
@group(0) @binding(2) var wt_f16: texture_storage_2d<rgba16float, read>; // [K/4, N_pad]
@group(0) @binding(5) var yt: texture_storage_2d<rgba32float, write>;    // [N/4, M_pad]
// *_to_buffer4 (N, y_offset and a row bias's length multiples of 4): the epilogue moves whole
// vec4s, a quarter of the lane-by-lane buffer accesses of finish().
@group(0) @binding(3) var<storage, read> bias4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> residual4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> y4: array<vec4<f32>>;

// Rows per lane, quads per lane, lanes per workgroup: a workgroup covers 16 rows x 96 columns.
// #let TR = 16
// #let TQ = 3
const TEX_ROWS: u32 = {TR}u;
const TEX_QUADS: u32 = {TQ}u;
const TEX_LANES: u32 = 8u;

// Bias, GELU and residual for columns 4 * quad.. of row r; zero past N.
fn texture_epilogue(r: u32, quad: u32, v: vec4<f32>) -> vec4<f32> {
    var o = vec4<f32>(0.0);
    for (var e = 0u; e < 4u; e++) {
        let n = 4u * quad + e;
        if (n < p.n) {
            var s = v[e];
            if ((p.flags & 1u) != 0u) {
                s += bias[select(n, r, (p.flags & 8u) != 0u)];
            }
            if ((p.flags & 2u) != 0u) {
                s = gelu(s);
            }
            if ((p.flags & 4u) != 0u) {
                s += residual[p.y_offset + r * p.n + n];
            }
            o[e] = s;
        }
    }
    return o;
}

// #for W in f32 f16
// #for OUT in buffer buffer4 texture
@compute @workgroup_size(8, 1, 1)
fn main_texture_{W}_to_{OUT}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wid.y * TEX_ROWS;
    let quad0 = wid.x * TEX_QUADS * TEX_LANES + lid.x;
    let r0 = i32(row0);
    let c0 = 4 * i32(quad0);
// #for r in 0..TR
// #for q in 0..TQ
    var a{r}_{q} = vec4<f32>(0.0);
// #end
// #end
    let k4 = i32((p.k + 3u) / 4u);
    let xr = r0 + i32(p.x_row0);
    let xc = i32(p.x_col0);
    let wr = i32(p.w_row0);
    let wc = i32(quad0 + p.w_col0);
    for (var kq = 0; kq < k4; kq++) {
// #for r in 0..TR
        let x{r} = textureLoad(xt, vec2<i32>(xc + kq, xr + {r}));
// #end
// #for c in 0..4
// #for q in 0..TQ
        let w{q}_{c} = textureLoad(wt_{W}, vec2<i32>(wc + {8 * q}, wr + 4 * kq + {c}));
// #end
// #end
// #for r in 0..TR
// #for q in 0..TQ
        a{r}_{q} += x{r}.x * w{q}_0 + x{r}.y * w{q}_1 + x{r}.z * w{q}_2 + x{r}.w * w{q}_3;
// #end
// #end
    }
// #for r in 0..TR
// #for q in 0..TQ
    store_{OUT}(row0 + {r}u, quad0 + {8 * q}u, a{r}_{q});
// #end
// #end
}
// #end
// #end

fn store_buffer(r: u32, quad: u32, v: vec4<f32>) {
    finish(r, 4u * quad, v);
}

fn store_buffer4(r: u32, quad: u32, v: vec4<f32>) {
    if (r >= p.m || quad >= p.n / 4u) {
        return;
    }
    var o = v;
    if ((p.flags & 1u) != 0u) {
        if ((p.flags & 8u) != 0u) {
            o += vec4<f32>(bias4[r / 4u][r % 4u]);
        } else {
            o += bias4[quad];
        }
    }
    if ((p.flags & 2u) != 0u) {
        o = vec4<f32>(gelu(o.x), gelu(o.y), gelu(o.z), gelu(o.w));
    }
    let at = (p.y_offset + r * p.n) / 4u + quad;
    if ((p.flags & 4u) != 0u) {
        o += residual4[at];
    }
    y4[at] = o;
}

fn store_texture(r: u32, quad: u32, v: vec4<f32>) {
    if (r < p.m && quad < (p.n + 3u) / 4u) {
        textureStore(yt, vec2<u32>(p.y_col0 + quad, p.y_row0 + r), texture_epilogue(r, quad, v));
    }
}
