// conv2d: y[b, co, oy, ox] = bias[co]
//     + sum_{ci, ky, kx} w[co, ci, ky, kx] * x[b, ci, oy*s + ky - pad_top, ox*s + kx - pad_left]
//
// Layout: x [B, cin, h, w], w [cout, cin, kh, kw] (PyTorch), y [B, cout, oh, ow]; positions
// outside x read as zero (the bottom/right pad is implied by oh/ow).
// Implicit GEMM: out[co, q] = sum_k W[co, k] * col[k, q] with k = (ci, ky, kx) flattened like the
// weight rows (K = cin*kh*kw) and q = b*oh*ow + oy*ow + ox, the batch folded into the pixel
// axis so that small late-stage images still fill whole tiles. col is never stored: each element
// is gathered from x when its K step is loaded.
// Tiling as in linear.wgsl (rows = couts, columns = pixels): a 128-pixel output tile per
// workgroup, 128 couts tall (64 for the narrow CPU tile); K goes in steps of 16 through
// workgroup memory, where both operand tiles sit k-major with 4 consecutive couts (or pixels)
// per vec4. An invocation's block is spread over the tile in vec4 steps: couts
// 4 * (lid.y + i * wg_y) + 0..4, pixels 4 * (lid.x + j * wg_x) + 0..4, so neighbouring
// invocations read neighbouring vec4s of the tile and write neighbouring pixels.
// Entry points, picked by `record` in src/ops/conv2d.rs. Three ways to fill the col tile:
//   main:        any shape. col gathered element by element, weights read as f32, y written
//                element by element.
//   main_gather: K and oh*ow multiples of 4 (every real 3x3 and strided conv): col gathered,
//                weights read as vec4, y written as vec4 (4 pixels of one image).
//   main_1x1:    1x1, stride 1, no padding, K and oh*ow multiples of 4: col[k, q] is
//                x[b, k, q], read as vec4 along the pixels, with no gather at all.
// each with three block shapes:
//   (none):      16x16 invocations, each owning 8 couts x 8 pixels, for GPUs.
//   _cpu:        8x4 invocations owning 32x16, for CPU adapters. There an invocation is one
//                lane of a SIMD batch and every workgroup-memory load is done lane by lane, so
//                loads, not fmas, cost the time: 12 vec4 loads per 128 vec4 fmas, against 8 per
//                64 for 16x16 blocks (~10% faster on lavapipe) and 4 per 16 for 8x8 ones. On a
//                GPU its 512 accumulators would overflow the registers.
//   _cpu64:      8x2 invocations owning 32x16: a 64-cout tile for convs with 64 or fewer couts,
//                which leave half of a 128-cout tile idle (~1.5x faster on those).
// Accumulators are touched with constant indices only (fmas and stores written out): only
// then do CPU drivers keep them out of memory that every step reloads.
// Grid: x/y hold the pixel tile (spread by grid_1d past 65535), z the cout tile.
// Keep `Params` in sync with `Conv2dParams` in src/ops/conv2d.rs.

struct Params {
    batch: u32,
    cin: u32,
    h: u32,
    w: u32,
    cout: u32,
    kh: u32,
    kw: u32,
    stride: u32,
    pad_top: u32,
    pad_left: u32,
    oh: u32,
    ow: u32,
    // bit 0: add bias
    flags: u32,
    // 1 / (kh * kw) and 1 / kw rounded to f32: k splits into (ci, ky, kx) by multiplying,
    // exact for K < 2^22 (checked by `record`), where an integer division would be done lane
    // by lane on CPU adapters.
    inv_khw: f32,
    inv_kw: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
// Each entry point reads a binding through one view only, f32 or vec4 (an entry point's
// bind-group layout holds only the variables it uses).
@group(0) @binding(1) var<storage, read> x: array<f32>;              // [B, cin, h, w]
@group(0) @binding(1) var<storage, read> x4: array<vec4<f32>>;       // [B, cin, h * w / 4]
@group(0) @binding(2) var<storage, read> weight: array<f32>;         // [cout, K]
@group(0) @binding(2) var<storage, read> w4: array<vec4<f32>>;       // [cout, K / 4]
@group(0) @binding(3) var<storage, read> bias: array<f32>;           // [cout] (unused without flag)
@group(0) @binding(4) var<storage, read_write> y: array<f32>;        // [B, cout, oh, ow]
@group(0) @binding(4) var<storage, read_write> y4: array<vec4<f32>>; // [B, cout, oh * ow / 4]

const TILE: u32 = 128u;
const TK: u32 = 16u;
// Loads move quads: 4 couts (or pixels) x 4 consecutive k; QUADS per 128-wide tile per K step.
const QUADS: u32 = 128u; // (TILE / 4) * (TK / 4)
// Marks a pixel past the last one.
const NONE: u32 = 0xffffffffu;

var<workgroup> ws: array<array<vec4<f32>, 32>, 16>; // [TK][TILE / 4]: weight tile, k-major
var<workgroup> cs: array<array<vec4<f32>, 32>, 16>; // [TK][TILE / 4]: col tile, k-major

fn k_total() -> u32 {
    return p.cin * p.kh * p.kw;
}

fn pixels() -> u32 {
    return p.batch * p.oh * p.ow;
}

// ---- weight tile ----

// Quad g (couts 4g..4g+4) of k steps 4qk..4qk+4, given as its four rows: stored transposed,
// one vec4 per k (the transpose costs nothing on the load side, which reads whole rows).
fn put_w(g: u32, qk: u32, rows: mat4x4<f32>) {
    let t = transpose(rows);
    ws[4u * qk][g] = t[0];
    ws[4u * qk + 1u][g] = t[1];
    ws[4u * qk + 2u][g] = t[2];
    ws[4u * qk + 3u][g] = t[3];
}

// w[co, k..k+4], zero past cout or K; k is a multiple of 4 and so is K.
fn w_vec4(co: u32, k: u32) -> vec4<f32> {
    if (co < p.cout && k < k_total()) {
        return w4[(co * k_total() + k) / 4u];
    }
    return vec4<f32>(0.0);
}

// The same for any K, element by element.
fn w_scalar(co: u32, k: u32) -> vec4<f32> {
    let kt = k_total();
    var v = vec4<f32>(0.0);
    if (co < p.cout) {
        let i = co * kt + k;
        if (k < kt) { v.x = weight[i]; }
        if (k + 1u < kt) { v.y = weight[i + 1u]; }
        if (k + 2u < kt) { v.z = weight[i + 2u]; }
        if (k + 3u < kt) { v.w = weight[i + 3u]; }
    }
    return v;
}

// The first `rows` couts of the tile (TILE, or 64 for narrow tiles). Invocation t of nt fills
// quads t, t + nt, ...; consecutive invocations take consecutive k quads of the same rows, so a
// row's 64 bytes are read together.
fn load_w_vec4(t: u32, nt: u32, rows: u32, co0: u32, k0: u32) {
    for (var i = t; i < (rows / 4u) * (TK / 4u); i += nt) {
        let g = i / (TK / 4u);
        let qk = i % (TK / 4u);
        let k = k0 + 4u * qk;
        let c = co0 + 4u * g;
        put_w(g, qk, mat4x4<f32>(w_vec4(c, k), w_vec4(c + 1u, k), w_vec4(c + 2u, k), w_vec4(c + 3u, k)));
    }
}

fn load_w_scalar(t: u32, nt: u32, rows: u32, co0: u32, k0: u32) {
    for (var i = t; i < (rows / 4u) * (TK / 4u); i += nt) {
        let g = i / (TK / 4u);
        let qk = i % (TK / 4u);
        let k = k0 + 4u * qk;
        let c = co0 + 4u * g;
        put_w(g, qk, mat4x4<f32>(w_scalar(c, k), w_scalar(c + 1u, k), w_scalar(c + 2u, k), w_scalar(c + 3u, k)));
    }
}

// ---- col tile ----
// A call fills quads first, first + step, ...: pixel quad g = i % 32, k quad i / 32. step is a
// multiple of 32, so a call keeps to pixel quad first % 32 for the whole K loop, and where its
// pixels read x is worked out once, before the loop.

// 1x1, stride 1, no padding, oh*ow a multiple of 4: pixel quad q..q+4 lies in one image, and
// col[k, q..q+4] is the vec4 x4[xq + k * oh*ow/4]. xq is NONE past the last pixel.
fn col_1x1_start(q: u32) -> u32 {
    let ohw = p.oh * p.ow;
    if (q >= pixels()) {
        return NONE;
    }
    let b = q / ohw;
    return (b * p.cin * ohw + q - b * ohw) / 4u;
}

fn load_col_1x1(first: u32, step: u32, xq: u32, k0: u32) {
    let hw4 = p.oh * p.ow / 4u;
    for (var i = first; i < QUADS; i += step) {
        let g = i % 32u;
        let qk = i / 32u;
        let k = k0 + 4u * qk;
        var v0 = vec4<f32>(0.0);
        var v1 = vec4<f32>(0.0);
        var v2 = vec4<f32>(0.0);
        var v3 = vec4<f32>(0.0);
        // K is a multiple of 4: one check covers the quad.
        if (xq != NONE && k < p.cin) {
            let a = xq + k * hw4;
            v0 = x4[a];
            v1 = x4[a + hw4];
            v2 = x4[a + 2u * hw4];
            v3 = x4[a + 3u * hw4];
        }
        cs[4u * qk][g] = v0;
        cs[4u * qk + 1u][g] = v1;
        cs[4u * qk + 2u][g] = v2;
        cs[4u * qk + 3u][g] = v3;
    }
}

// Pixels q..q+4 (any shape): where tap (ci, ky, kx) = (0, 0, 0) reads x (base, may lie in the
// padding or before x) and the input row and column of that tap; iy0 is far below zero past
// the last pixel so that every tap of it reads as padding.
struct Taps {
    base: vec4<i32>,
    iy0: vec4<i32>,
    ix0: vec4<i32>,
}

fn taps(q: u32) -> Taps {
    let ohw = p.oh * p.ow;
    var t = Taps(vec4<i32>(0), vec4<i32>(-0x40000000), vec4<i32>(0));
    for (var e = 0u; e < 4u; e++) {
        let qe = q + e;
        if (qe < pixels()) {
            let b = qe / ohw;
            let pix = qe - b * ohw;
            let oy = pix / p.ow;
            let iy0 = i32(oy * p.stride) - i32(p.pad_top);
            let ix0 = i32((pix - oy * p.ow) * p.stride) - i32(p.pad_left);
            t.iy0[e] = iy0;
            t.ix0[e] = ix0;
            t.base[e] = i32(b * p.cin * p.h * p.w) + iy0 * i32(p.w) + ix0;
        }
    }
    return t;
}

// col[k, q..q+4]: zero in the padding and past K.
fn gather(t: Taps, k: u32) -> vec4<f32> {
    let ci = u32((f32(k) + 0.5) * p.inv_khw);
    let r = k - ci * p.kh * p.kw;
    let ky = u32((f32(r) + 0.5) * p.inv_kw);
    let kx = r - ky * p.kw;
    let iy = t.iy0 + i32(ky);
    let ix = t.ix0 + i32(kx);
    let ok = (iy >= vec4<i32>(0)) & (iy < vec4<i32>(i32(p.h))) & (ix >= vec4<i32>(0))
        & (ix < vec4<i32>(i32(p.w))) & vec4<bool>(k < k_total());
    // Index 0 stands in where the tap is padding, so that no read leaves x.
    let i = vec4<u32>(select(vec4<i32>(0), t.base + i32(ci * p.h * p.w + ky * p.w + kx), ok));
    return select(vec4<f32>(0.0), vec4<f32>(x[i.x], x[i.y], x[i.z], x[i.w]), ok);
}

fn load_col_gather(first: u32, step: u32, t: Taps, k0: u32) {
    for (var i = first; i < QUADS; i += step) {
        let g = i % 32u;
        let qk = i / 32u;
        let k = k0 + 4u * qk;
        cs[4u * qk][g] = gather(t, k);
        cs[4u * qk + 1u][g] = gather(t, k + 1u);
        cs[4u * qk + 2u][g] = gather(t, k + 2u);
        cs[4u * qk + 3u][g] = gather(t, k + 3u);
    }
}

// ---- multiply ----
// TK steps of an 8x8 block on 16x16 invocations: acc[2 * i + j] holds cout row i of the block
// (tile row 4 * lid.y + 64 * (i / 4) + i % 4), tile pixels 4 * lid.x + 64 * j + 0..4.
fn step_8x8(acc: ptr<function, array<vec4<f32>, 16>>, lid: vec3<u32>) {
    for (var kk = 0u; kk < TK; kk++) {
        let a0 = ws[kk][lid.y];
        let a1 = ws[kk][lid.y + 16u];
        let b0 = cs[kk][lid.x];
        let b1 = cs[kk][lid.x + 16u];
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

// TK steps of a 32x16 block on 8 x wy invocations: acc[4 * i + j] holds cout row i of the
// block (tile row 4 * lid.y + 4 * wy * (i / 4) + i % 4), tile pixels 4 * lid.x + 32 * j + 0..4.
fn step_32x16(acc: ptr<function, array<vec4<f32>, 128>>, lid: vec3<u32>, wy: u32) {
    for (var kk = 0u; kk < TK; kk++) {
        let a0 = ws[kk][lid.y];
        let a1 = ws[kk][lid.y + wy];
        let a2 = ws[kk][lid.y + 2u * wy];
        let a3 = ws[kk][lid.y + 3u * wy];
        let a4 = ws[kk][lid.y + 4u * wy];
        let a5 = ws[kk][lid.y + 5u * wy];
        let a6 = ws[kk][lid.y + 6u * wy];
        let a7 = ws[kk][lid.y + 7u * wy];
        let b0 = cs[kk][lid.x];
        let b1 = cs[kk][lid.x + 8u];
        let b2 = cs[kk][lid.x + 16u];
        let b3 = cs[kk][lid.x + 24u];
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
        (*acc)[64] = fma(vec4<f32>(a4.x), b0, (*acc)[64]);
        (*acc)[65] = fma(vec4<f32>(a4.x), b1, (*acc)[65]);
        (*acc)[66] = fma(vec4<f32>(a4.x), b2, (*acc)[66]);
        (*acc)[67] = fma(vec4<f32>(a4.x), b3, (*acc)[67]);
        (*acc)[68] = fma(vec4<f32>(a4.y), b0, (*acc)[68]);
        (*acc)[69] = fma(vec4<f32>(a4.y), b1, (*acc)[69]);
        (*acc)[70] = fma(vec4<f32>(a4.y), b2, (*acc)[70]);
        (*acc)[71] = fma(vec4<f32>(a4.y), b3, (*acc)[71]);
        (*acc)[72] = fma(vec4<f32>(a4.z), b0, (*acc)[72]);
        (*acc)[73] = fma(vec4<f32>(a4.z), b1, (*acc)[73]);
        (*acc)[74] = fma(vec4<f32>(a4.z), b2, (*acc)[74]);
        (*acc)[75] = fma(vec4<f32>(a4.z), b3, (*acc)[75]);
        (*acc)[76] = fma(vec4<f32>(a4.w), b0, (*acc)[76]);
        (*acc)[77] = fma(vec4<f32>(a4.w), b1, (*acc)[77]);
        (*acc)[78] = fma(vec4<f32>(a4.w), b2, (*acc)[78]);
        (*acc)[79] = fma(vec4<f32>(a4.w), b3, (*acc)[79]);
        (*acc)[80] = fma(vec4<f32>(a5.x), b0, (*acc)[80]);
        (*acc)[81] = fma(vec4<f32>(a5.x), b1, (*acc)[81]);
        (*acc)[82] = fma(vec4<f32>(a5.x), b2, (*acc)[82]);
        (*acc)[83] = fma(vec4<f32>(a5.x), b3, (*acc)[83]);
        (*acc)[84] = fma(vec4<f32>(a5.y), b0, (*acc)[84]);
        (*acc)[85] = fma(vec4<f32>(a5.y), b1, (*acc)[85]);
        (*acc)[86] = fma(vec4<f32>(a5.y), b2, (*acc)[86]);
        (*acc)[87] = fma(vec4<f32>(a5.y), b3, (*acc)[87]);
        (*acc)[88] = fma(vec4<f32>(a5.z), b0, (*acc)[88]);
        (*acc)[89] = fma(vec4<f32>(a5.z), b1, (*acc)[89]);
        (*acc)[90] = fma(vec4<f32>(a5.z), b2, (*acc)[90]);
        (*acc)[91] = fma(vec4<f32>(a5.z), b3, (*acc)[91]);
        (*acc)[92] = fma(vec4<f32>(a5.w), b0, (*acc)[92]);
        (*acc)[93] = fma(vec4<f32>(a5.w), b1, (*acc)[93]);
        (*acc)[94] = fma(vec4<f32>(a5.w), b2, (*acc)[94]);
        (*acc)[95] = fma(vec4<f32>(a5.w), b3, (*acc)[95]);
        (*acc)[96] = fma(vec4<f32>(a6.x), b0, (*acc)[96]);
        (*acc)[97] = fma(vec4<f32>(a6.x), b1, (*acc)[97]);
        (*acc)[98] = fma(vec4<f32>(a6.x), b2, (*acc)[98]);
        (*acc)[99] = fma(vec4<f32>(a6.x), b3, (*acc)[99]);
        (*acc)[100] = fma(vec4<f32>(a6.y), b0, (*acc)[100]);
        (*acc)[101] = fma(vec4<f32>(a6.y), b1, (*acc)[101]);
        (*acc)[102] = fma(vec4<f32>(a6.y), b2, (*acc)[102]);
        (*acc)[103] = fma(vec4<f32>(a6.y), b3, (*acc)[103]);
        (*acc)[104] = fma(vec4<f32>(a6.z), b0, (*acc)[104]);
        (*acc)[105] = fma(vec4<f32>(a6.z), b1, (*acc)[105]);
        (*acc)[106] = fma(vec4<f32>(a6.z), b2, (*acc)[106]);
        (*acc)[107] = fma(vec4<f32>(a6.z), b3, (*acc)[107]);
        (*acc)[108] = fma(vec4<f32>(a6.w), b0, (*acc)[108]);
        (*acc)[109] = fma(vec4<f32>(a6.w), b1, (*acc)[109]);
        (*acc)[110] = fma(vec4<f32>(a6.w), b2, (*acc)[110]);
        (*acc)[111] = fma(vec4<f32>(a6.w), b3, (*acc)[111]);
        (*acc)[112] = fma(vec4<f32>(a7.x), b0, (*acc)[112]);
        (*acc)[113] = fma(vec4<f32>(a7.x), b1, (*acc)[113]);
        (*acc)[114] = fma(vec4<f32>(a7.x), b2, (*acc)[114]);
        (*acc)[115] = fma(vec4<f32>(a7.x), b3, (*acc)[115]);
        (*acc)[116] = fma(vec4<f32>(a7.y), b0, (*acc)[116]);
        (*acc)[117] = fma(vec4<f32>(a7.y), b1, (*acc)[117]);
        (*acc)[118] = fma(vec4<f32>(a7.y), b2, (*acc)[118]);
        (*acc)[119] = fma(vec4<f32>(a7.y), b3, (*acc)[119]);
        (*acc)[120] = fma(vec4<f32>(a7.z), b0, (*acc)[120]);
        (*acc)[121] = fma(vec4<f32>(a7.z), b1, (*acc)[121]);
        (*acc)[122] = fma(vec4<f32>(a7.z), b2, (*acc)[122]);
        (*acc)[123] = fma(vec4<f32>(a7.z), b3, (*acc)[123]);
        (*acc)[124] = fma(vec4<f32>(a7.w), b0, (*acc)[124]);
        (*acc)[125] = fma(vec4<f32>(a7.w), b1, (*acc)[125]);
        (*acc)[126] = fma(vec4<f32>(a7.w), b2, (*acc)[126]);
        (*acc)[127] = fma(vec4<f32>(a7.w), b3, (*acc)[127]);
    }
}

// ---- output ----

// Where y[b, 0, pix] of pixel q lies, for pixels q..q+4 of one image (oh*ow a multiple of 4);
// NONE past the last pixel.
fn out_vec4(q: u32) -> u32 {
    let ohw = p.oh * p.ow;
    if (q >= pixels()) {
        return NONE;
    }
    let b = q / ohw;
    return b * p.cout * ohw + q - b * ohw;
}

// The same for any shape, pixel by pixel.
fn out_scalar(q: u32) -> vec4<u32> {
    let ohw = p.oh * p.ow;
    var o = vec4<u32>(NONE);
    for (var e = 0u; e < 4u; e++) {
        let qe = q + e;
        if (qe < pixels()) {
            let b = qe / ohw;
            o[e] = b * p.cout * ohw + qe - b * ohw;
        }
    }
    return o;
}

fn with_bias(co: u32, v: vec4<f32>) -> vec4<f32> {
    if ((p.flags & 1u) != 0u) {
        return v + vec4<f32>(bias[co]);
    }
    return v;
}

// y[b, co, pix..pix+4] for the four pixels at o (from out_vec4), checked against cout.
fn store_vec4(co: u32, o: u32, v: vec4<f32>) {
    if (co < p.cout && o != NONE) {
        y4[(o + co * p.oh * p.ow) / 4u] = with_bias(co, v);
    }
}

fn store_scalar(co: u32, o: vec4<u32>, v: vec4<f32>) {
    if (co >= p.cout) {
        return;
    }
    let b = with_bias(co, v);
    let off = co * p.oh * p.ow;
    for (var e = 0u; e < 4u; e++) {
        if (o[e] != NONE) {
            y[o[e] + off] = b[e];
        }
    }
}

// Block (i, j) of the accumulators goes to cout r0 + its row, pixels c0 + its column.
fn finish_8x8_vec4(acc: ptr<function, array<vec4<f32>, 16>>, r0: u32, c0: u32) {
    let y0 = out_vec4(c0);
    let y1 = out_vec4(c0 + 64u);
    store_vec4(r0, y0, (*acc)[0]); store_vec4(r0, y1, (*acc)[1]);
    store_vec4(r0 + 1u, y0, (*acc)[2]); store_vec4(r0 + 1u, y1, (*acc)[3]);
    store_vec4(r0 + 2u, y0, (*acc)[4]); store_vec4(r0 + 2u, y1, (*acc)[5]);
    store_vec4(r0 + 3u, y0, (*acc)[6]); store_vec4(r0 + 3u, y1, (*acc)[7]);
    store_vec4(r0 + 64u, y0, (*acc)[8]); store_vec4(r0 + 64u, y1, (*acc)[9]);
    store_vec4(r0 + 65u, y0, (*acc)[10]); store_vec4(r0 + 65u, y1, (*acc)[11]);
    store_vec4(r0 + 66u, y0, (*acc)[12]); store_vec4(r0 + 66u, y1, (*acc)[13]);
    store_vec4(r0 + 67u, y0, (*acc)[14]); store_vec4(r0 + 67u, y1, (*acc)[15]);
}

fn finish_32x16_vec4(acc: ptr<function, array<vec4<f32>, 128>>, r0: u32, c0: u32, wy: u32) {
    let y0 = out_vec4(c0);
    let y1 = out_vec4(c0 + 32u);
    let y2 = out_vec4(c0 + 64u);
    let y3 = out_vec4(c0 + 96u);
    let rs = 4u * wy;
    store_vec4(r0, y0, (*acc)[0]); store_vec4(r0, y1, (*acc)[1]); store_vec4(r0, y2, (*acc)[2]); store_vec4(r0, y3, (*acc)[3]);
    store_vec4(r0 + 1u, y0, (*acc)[4]); store_vec4(r0 + 1u, y1, (*acc)[5]); store_vec4(r0 + 1u, y2, (*acc)[6]); store_vec4(r0 + 1u, y3, (*acc)[7]);
    store_vec4(r0 + 2u, y0, (*acc)[8]); store_vec4(r0 + 2u, y1, (*acc)[9]); store_vec4(r0 + 2u, y2, (*acc)[10]); store_vec4(r0 + 2u, y3, (*acc)[11]);
    store_vec4(r0 + 3u, y0, (*acc)[12]); store_vec4(r0 + 3u, y1, (*acc)[13]); store_vec4(r0 + 3u, y2, (*acc)[14]); store_vec4(r0 + 3u, y3, (*acc)[15]);
    store_vec4(r0 + rs, y0, (*acc)[16]); store_vec4(r0 + rs, y1, (*acc)[17]); store_vec4(r0 + rs, y2, (*acc)[18]); store_vec4(r0 + rs, y3, (*acc)[19]);
    store_vec4(r0 + rs + 1u, y0, (*acc)[20]); store_vec4(r0 + rs + 1u, y1, (*acc)[21]); store_vec4(r0 + rs + 1u, y2, (*acc)[22]); store_vec4(r0 + rs + 1u, y3, (*acc)[23]);
    store_vec4(r0 + rs + 2u, y0, (*acc)[24]); store_vec4(r0 + rs + 2u, y1, (*acc)[25]); store_vec4(r0 + rs + 2u, y2, (*acc)[26]); store_vec4(r0 + rs + 2u, y3, (*acc)[27]);
    store_vec4(r0 + rs + 3u, y0, (*acc)[28]); store_vec4(r0 + rs + 3u, y1, (*acc)[29]); store_vec4(r0 + rs + 3u, y2, (*acc)[30]); store_vec4(r0 + rs + 3u, y3, (*acc)[31]);
    store_vec4(r0 + 2u * rs, y0, (*acc)[32]); store_vec4(r0 + 2u * rs, y1, (*acc)[33]); store_vec4(r0 + 2u * rs, y2, (*acc)[34]); store_vec4(r0 + 2u * rs, y3, (*acc)[35]);
    store_vec4(r0 + 2u * rs + 1u, y0, (*acc)[36]); store_vec4(r0 + 2u * rs + 1u, y1, (*acc)[37]); store_vec4(r0 + 2u * rs + 1u, y2, (*acc)[38]); store_vec4(r0 + 2u * rs + 1u, y3, (*acc)[39]);
    store_vec4(r0 + 2u * rs + 2u, y0, (*acc)[40]); store_vec4(r0 + 2u * rs + 2u, y1, (*acc)[41]); store_vec4(r0 + 2u * rs + 2u, y2, (*acc)[42]); store_vec4(r0 + 2u * rs + 2u, y3, (*acc)[43]);
    store_vec4(r0 + 2u * rs + 3u, y0, (*acc)[44]); store_vec4(r0 + 2u * rs + 3u, y1, (*acc)[45]); store_vec4(r0 + 2u * rs + 3u, y2, (*acc)[46]); store_vec4(r0 + 2u * rs + 3u, y3, (*acc)[47]);
    store_vec4(r0 + 3u * rs, y0, (*acc)[48]); store_vec4(r0 + 3u * rs, y1, (*acc)[49]); store_vec4(r0 + 3u * rs, y2, (*acc)[50]); store_vec4(r0 + 3u * rs, y3, (*acc)[51]);
    store_vec4(r0 + 3u * rs + 1u, y0, (*acc)[52]); store_vec4(r0 + 3u * rs + 1u, y1, (*acc)[53]); store_vec4(r0 + 3u * rs + 1u, y2, (*acc)[54]); store_vec4(r0 + 3u * rs + 1u, y3, (*acc)[55]);
    store_vec4(r0 + 3u * rs + 2u, y0, (*acc)[56]); store_vec4(r0 + 3u * rs + 2u, y1, (*acc)[57]); store_vec4(r0 + 3u * rs + 2u, y2, (*acc)[58]); store_vec4(r0 + 3u * rs + 2u, y3, (*acc)[59]);
    store_vec4(r0 + 3u * rs + 3u, y0, (*acc)[60]); store_vec4(r0 + 3u * rs + 3u, y1, (*acc)[61]); store_vec4(r0 + 3u * rs + 3u, y2, (*acc)[62]); store_vec4(r0 + 3u * rs + 3u, y3, (*acc)[63]);
    store_vec4(r0 + 4u * rs, y0, (*acc)[64]); store_vec4(r0 + 4u * rs, y1, (*acc)[65]); store_vec4(r0 + 4u * rs, y2, (*acc)[66]); store_vec4(r0 + 4u * rs, y3, (*acc)[67]);
    store_vec4(r0 + 4u * rs + 1u, y0, (*acc)[68]); store_vec4(r0 + 4u * rs + 1u, y1, (*acc)[69]); store_vec4(r0 + 4u * rs + 1u, y2, (*acc)[70]); store_vec4(r0 + 4u * rs + 1u, y3, (*acc)[71]);
    store_vec4(r0 + 4u * rs + 2u, y0, (*acc)[72]); store_vec4(r0 + 4u * rs + 2u, y1, (*acc)[73]); store_vec4(r0 + 4u * rs + 2u, y2, (*acc)[74]); store_vec4(r0 + 4u * rs + 2u, y3, (*acc)[75]);
    store_vec4(r0 + 4u * rs + 3u, y0, (*acc)[76]); store_vec4(r0 + 4u * rs + 3u, y1, (*acc)[77]); store_vec4(r0 + 4u * rs + 3u, y2, (*acc)[78]); store_vec4(r0 + 4u * rs + 3u, y3, (*acc)[79]);
    store_vec4(r0 + 5u * rs, y0, (*acc)[80]); store_vec4(r0 + 5u * rs, y1, (*acc)[81]); store_vec4(r0 + 5u * rs, y2, (*acc)[82]); store_vec4(r0 + 5u * rs, y3, (*acc)[83]);
    store_vec4(r0 + 5u * rs + 1u, y0, (*acc)[84]); store_vec4(r0 + 5u * rs + 1u, y1, (*acc)[85]); store_vec4(r0 + 5u * rs + 1u, y2, (*acc)[86]); store_vec4(r0 + 5u * rs + 1u, y3, (*acc)[87]);
    store_vec4(r0 + 5u * rs + 2u, y0, (*acc)[88]); store_vec4(r0 + 5u * rs + 2u, y1, (*acc)[89]); store_vec4(r0 + 5u * rs + 2u, y2, (*acc)[90]); store_vec4(r0 + 5u * rs + 2u, y3, (*acc)[91]);
    store_vec4(r0 + 5u * rs + 3u, y0, (*acc)[92]); store_vec4(r0 + 5u * rs + 3u, y1, (*acc)[93]); store_vec4(r0 + 5u * rs + 3u, y2, (*acc)[94]); store_vec4(r0 + 5u * rs + 3u, y3, (*acc)[95]);
    store_vec4(r0 + 6u * rs, y0, (*acc)[96]); store_vec4(r0 + 6u * rs, y1, (*acc)[97]); store_vec4(r0 + 6u * rs, y2, (*acc)[98]); store_vec4(r0 + 6u * rs, y3, (*acc)[99]);
    store_vec4(r0 + 6u * rs + 1u, y0, (*acc)[100]); store_vec4(r0 + 6u * rs + 1u, y1, (*acc)[101]); store_vec4(r0 + 6u * rs + 1u, y2, (*acc)[102]); store_vec4(r0 + 6u * rs + 1u, y3, (*acc)[103]);
    store_vec4(r0 + 6u * rs + 2u, y0, (*acc)[104]); store_vec4(r0 + 6u * rs + 2u, y1, (*acc)[105]); store_vec4(r0 + 6u * rs + 2u, y2, (*acc)[106]); store_vec4(r0 + 6u * rs + 2u, y3, (*acc)[107]);
    store_vec4(r0 + 6u * rs + 3u, y0, (*acc)[108]); store_vec4(r0 + 6u * rs + 3u, y1, (*acc)[109]); store_vec4(r0 + 6u * rs + 3u, y2, (*acc)[110]); store_vec4(r0 + 6u * rs + 3u, y3, (*acc)[111]);
    store_vec4(r0 + 7u * rs, y0, (*acc)[112]); store_vec4(r0 + 7u * rs, y1, (*acc)[113]); store_vec4(r0 + 7u * rs, y2, (*acc)[114]); store_vec4(r0 + 7u * rs, y3, (*acc)[115]);
    store_vec4(r0 + 7u * rs + 1u, y0, (*acc)[116]); store_vec4(r0 + 7u * rs + 1u, y1, (*acc)[117]); store_vec4(r0 + 7u * rs + 1u, y2, (*acc)[118]); store_vec4(r0 + 7u * rs + 1u, y3, (*acc)[119]);
    store_vec4(r0 + 7u * rs + 2u, y0, (*acc)[120]); store_vec4(r0 + 7u * rs + 2u, y1, (*acc)[121]); store_vec4(r0 + 7u * rs + 2u, y2, (*acc)[122]); store_vec4(r0 + 7u * rs + 2u, y3, (*acc)[123]);
    store_vec4(r0 + 7u * rs + 3u, y0, (*acc)[124]); store_vec4(r0 + 7u * rs + 3u, y1, (*acc)[125]); store_vec4(r0 + 7u * rs + 3u, y2, (*acc)[126]); store_vec4(r0 + 7u * rs + 3u, y3, (*acc)[127]);
}

fn finish_8x8(acc: ptr<function, array<vec4<f32>, 16>>, r0: u32, c0: u32) {
    let y0 = out_scalar(c0);
    let y1 = out_scalar(c0 + 64u);
    store_scalar(r0, y0, (*acc)[0]); store_scalar(r0, y1, (*acc)[1]);
    store_scalar(r0 + 1u, y0, (*acc)[2]); store_scalar(r0 + 1u, y1, (*acc)[3]);
    store_scalar(r0 + 2u, y0, (*acc)[4]); store_scalar(r0 + 2u, y1, (*acc)[5]);
    store_scalar(r0 + 3u, y0, (*acc)[6]); store_scalar(r0 + 3u, y1, (*acc)[7]);
    store_scalar(r0 + 64u, y0, (*acc)[8]); store_scalar(r0 + 64u, y1, (*acc)[9]);
    store_scalar(r0 + 65u, y0, (*acc)[10]); store_scalar(r0 + 65u, y1, (*acc)[11]);
    store_scalar(r0 + 66u, y0, (*acc)[12]); store_scalar(r0 + 66u, y1, (*acc)[13]);
    store_scalar(r0 + 67u, y0, (*acc)[14]); store_scalar(r0 + 67u, y1, (*acc)[15]);
}

fn finish_32x16(acc: ptr<function, array<vec4<f32>, 128>>, r0: u32, c0: u32, wy: u32) {
    let y0 = out_scalar(c0);
    let y1 = out_scalar(c0 + 32u);
    let y2 = out_scalar(c0 + 64u);
    let y3 = out_scalar(c0 + 96u);
    let rs = 4u * wy;
    store_scalar(r0, y0, (*acc)[0]); store_scalar(r0, y1, (*acc)[1]); store_scalar(r0, y2, (*acc)[2]); store_scalar(r0, y3, (*acc)[3]);
    store_scalar(r0 + 1u, y0, (*acc)[4]); store_scalar(r0 + 1u, y1, (*acc)[5]); store_scalar(r0 + 1u, y2, (*acc)[6]); store_scalar(r0 + 1u, y3, (*acc)[7]);
    store_scalar(r0 + 2u, y0, (*acc)[8]); store_scalar(r0 + 2u, y1, (*acc)[9]); store_scalar(r0 + 2u, y2, (*acc)[10]); store_scalar(r0 + 2u, y3, (*acc)[11]);
    store_scalar(r0 + 3u, y0, (*acc)[12]); store_scalar(r0 + 3u, y1, (*acc)[13]); store_scalar(r0 + 3u, y2, (*acc)[14]); store_scalar(r0 + 3u, y3, (*acc)[15]);
    store_scalar(r0 + rs, y0, (*acc)[16]); store_scalar(r0 + rs, y1, (*acc)[17]); store_scalar(r0 + rs, y2, (*acc)[18]); store_scalar(r0 + rs, y3, (*acc)[19]);
    store_scalar(r0 + rs + 1u, y0, (*acc)[20]); store_scalar(r0 + rs + 1u, y1, (*acc)[21]); store_scalar(r0 + rs + 1u, y2, (*acc)[22]); store_scalar(r0 + rs + 1u, y3, (*acc)[23]);
    store_scalar(r0 + rs + 2u, y0, (*acc)[24]); store_scalar(r0 + rs + 2u, y1, (*acc)[25]); store_scalar(r0 + rs + 2u, y2, (*acc)[26]); store_scalar(r0 + rs + 2u, y3, (*acc)[27]);
    store_scalar(r0 + rs + 3u, y0, (*acc)[28]); store_scalar(r0 + rs + 3u, y1, (*acc)[29]); store_scalar(r0 + rs + 3u, y2, (*acc)[30]); store_scalar(r0 + rs + 3u, y3, (*acc)[31]);
    store_scalar(r0 + 2u * rs, y0, (*acc)[32]); store_scalar(r0 + 2u * rs, y1, (*acc)[33]); store_scalar(r0 + 2u * rs, y2, (*acc)[34]); store_scalar(r0 + 2u * rs, y3, (*acc)[35]);
    store_scalar(r0 + 2u * rs + 1u, y0, (*acc)[36]); store_scalar(r0 + 2u * rs + 1u, y1, (*acc)[37]); store_scalar(r0 + 2u * rs + 1u, y2, (*acc)[38]); store_scalar(r0 + 2u * rs + 1u, y3, (*acc)[39]);
    store_scalar(r0 + 2u * rs + 2u, y0, (*acc)[40]); store_scalar(r0 + 2u * rs + 2u, y1, (*acc)[41]); store_scalar(r0 + 2u * rs + 2u, y2, (*acc)[42]); store_scalar(r0 + 2u * rs + 2u, y3, (*acc)[43]);
    store_scalar(r0 + 2u * rs + 3u, y0, (*acc)[44]); store_scalar(r0 + 2u * rs + 3u, y1, (*acc)[45]); store_scalar(r0 + 2u * rs + 3u, y2, (*acc)[46]); store_scalar(r0 + 2u * rs + 3u, y3, (*acc)[47]);
    store_scalar(r0 + 3u * rs, y0, (*acc)[48]); store_scalar(r0 + 3u * rs, y1, (*acc)[49]); store_scalar(r0 + 3u * rs, y2, (*acc)[50]); store_scalar(r0 + 3u * rs, y3, (*acc)[51]);
    store_scalar(r0 + 3u * rs + 1u, y0, (*acc)[52]); store_scalar(r0 + 3u * rs + 1u, y1, (*acc)[53]); store_scalar(r0 + 3u * rs + 1u, y2, (*acc)[54]); store_scalar(r0 + 3u * rs + 1u, y3, (*acc)[55]);
    store_scalar(r0 + 3u * rs + 2u, y0, (*acc)[56]); store_scalar(r0 + 3u * rs + 2u, y1, (*acc)[57]); store_scalar(r0 + 3u * rs + 2u, y2, (*acc)[58]); store_scalar(r0 + 3u * rs + 2u, y3, (*acc)[59]);
    store_scalar(r0 + 3u * rs + 3u, y0, (*acc)[60]); store_scalar(r0 + 3u * rs + 3u, y1, (*acc)[61]); store_scalar(r0 + 3u * rs + 3u, y2, (*acc)[62]); store_scalar(r0 + 3u * rs + 3u, y3, (*acc)[63]);
    store_scalar(r0 + 4u * rs, y0, (*acc)[64]); store_scalar(r0 + 4u * rs, y1, (*acc)[65]); store_scalar(r0 + 4u * rs, y2, (*acc)[66]); store_scalar(r0 + 4u * rs, y3, (*acc)[67]);
    store_scalar(r0 + 4u * rs + 1u, y0, (*acc)[68]); store_scalar(r0 + 4u * rs + 1u, y1, (*acc)[69]); store_scalar(r0 + 4u * rs + 1u, y2, (*acc)[70]); store_scalar(r0 + 4u * rs + 1u, y3, (*acc)[71]);
    store_scalar(r0 + 4u * rs + 2u, y0, (*acc)[72]); store_scalar(r0 + 4u * rs + 2u, y1, (*acc)[73]); store_scalar(r0 + 4u * rs + 2u, y2, (*acc)[74]); store_scalar(r0 + 4u * rs + 2u, y3, (*acc)[75]);
    store_scalar(r0 + 4u * rs + 3u, y0, (*acc)[76]); store_scalar(r0 + 4u * rs + 3u, y1, (*acc)[77]); store_scalar(r0 + 4u * rs + 3u, y2, (*acc)[78]); store_scalar(r0 + 4u * rs + 3u, y3, (*acc)[79]);
    store_scalar(r0 + 5u * rs, y0, (*acc)[80]); store_scalar(r0 + 5u * rs, y1, (*acc)[81]); store_scalar(r0 + 5u * rs, y2, (*acc)[82]); store_scalar(r0 + 5u * rs, y3, (*acc)[83]);
    store_scalar(r0 + 5u * rs + 1u, y0, (*acc)[84]); store_scalar(r0 + 5u * rs + 1u, y1, (*acc)[85]); store_scalar(r0 + 5u * rs + 1u, y2, (*acc)[86]); store_scalar(r0 + 5u * rs + 1u, y3, (*acc)[87]);
    store_scalar(r0 + 5u * rs + 2u, y0, (*acc)[88]); store_scalar(r0 + 5u * rs + 2u, y1, (*acc)[89]); store_scalar(r0 + 5u * rs + 2u, y2, (*acc)[90]); store_scalar(r0 + 5u * rs + 2u, y3, (*acc)[91]);
    store_scalar(r0 + 5u * rs + 3u, y0, (*acc)[92]); store_scalar(r0 + 5u * rs + 3u, y1, (*acc)[93]); store_scalar(r0 + 5u * rs + 3u, y2, (*acc)[94]); store_scalar(r0 + 5u * rs + 3u, y3, (*acc)[95]);
    store_scalar(r0 + 6u * rs, y0, (*acc)[96]); store_scalar(r0 + 6u * rs, y1, (*acc)[97]); store_scalar(r0 + 6u * rs, y2, (*acc)[98]); store_scalar(r0 + 6u * rs, y3, (*acc)[99]);
    store_scalar(r0 + 6u * rs + 1u, y0, (*acc)[100]); store_scalar(r0 + 6u * rs + 1u, y1, (*acc)[101]); store_scalar(r0 + 6u * rs + 1u, y2, (*acc)[102]); store_scalar(r0 + 6u * rs + 1u, y3, (*acc)[103]);
    store_scalar(r0 + 6u * rs + 2u, y0, (*acc)[104]); store_scalar(r0 + 6u * rs + 2u, y1, (*acc)[105]); store_scalar(r0 + 6u * rs + 2u, y2, (*acc)[106]); store_scalar(r0 + 6u * rs + 2u, y3, (*acc)[107]);
    store_scalar(r0 + 6u * rs + 3u, y0, (*acc)[108]); store_scalar(r0 + 6u * rs + 3u, y1, (*acc)[109]); store_scalar(r0 + 6u * rs + 3u, y2, (*acc)[110]); store_scalar(r0 + 6u * rs + 3u, y3, (*acc)[111]);
    store_scalar(r0 + 7u * rs, y0, (*acc)[112]); store_scalar(r0 + 7u * rs, y1, (*acc)[113]); store_scalar(r0 + 7u * rs, y2, (*acc)[114]); store_scalar(r0 + 7u * rs, y3, (*acc)[115]);
    store_scalar(r0 + 7u * rs + 1u, y0, (*acc)[116]); store_scalar(r0 + 7u * rs + 1u, y1, (*acc)[117]); store_scalar(r0 + 7u * rs + 1u, y2, (*acc)[118]); store_scalar(r0 + 7u * rs + 1u, y3, (*acc)[119]);
    store_scalar(r0 + 7u * rs + 2u, y0, (*acc)[120]); store_scalar(r0 + 7u * rs + 2u, y1, (*acc)[121]); store_scalar(r0 + 7u * rs + 2u, y2, (*acc)[122]); store_scalar(r0 + 7u * rs + 2u, y3, (*acc)[123]);
    store_scalar(r0 + 7u * rs + 3u, y0, (*acc)[124]); store_scalar(r0 + 7u * rs + 3u, y1, (*acc)[125]); store_scalar(r0 + 7u * rs + 3u, y2, (*acc)[126]); store_scalar(r0 + 7u * rs + 3u, y3, (*acc)[127]);
}

// ---- entry points ----
// The pixel tile comes first so that early-out workgroups (grid_1d rounds up) skip everything;
// workgroup ids are uniform, so returning before the barriers is safe. GPU entries start the
// col loads at tc = t + 128 (mod 256), so that the two halves of the workgroup fill the two
// tiles at once; on CPU adapters every invocation fills quads of both.

fn pixel_tile(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return (wid.x + wid.y * nwg.x) * TILE;
}

@compute @workgroup_size(16, 16, 1)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let q0 = pixel_tile(wid, nwg);
    if (q0 >= pixels()) {
        return;
    }
    let co0 = wid.z * 128u;
    let t = lid.y * 16u + lid.x;
    let tc = (t + 128u) % 256u;
    let tp = taps(q0 + 4u * (tc % 32u));
    var acc: array<vec4<f32>, 16>;
    for (var k0 = 0u; k0 < k_total(); k0 += TK) {
        load_w_scalar(t, 256u, 128u, co0, k0);
        load_col_gather(tc, 256u, tp, k0);
        workgroupBarrier();
        step_8x8(&acc, lid);
        workgroupBarrier();
    }
    finish_8x8(&acc, co0 + 4u * lid.y, q0 + 4u * lid.x);
}

@compute @workgroup_size(8, 4, 1)
fn main_cpu(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let q0 = pixel_tile(wid, nwg);
    if (q0 >= pixels()) {
        return;
    }
    let co0 = wid.z * 128u;
    let t = lid.y * 8u + lid.x;
    let tp = taps(q0 + 4u * t);
    var acc: array<vec4<f32>, 128>;
    for (var k0 = 0u; k0 < k_total(); k0 += TK) {
        load_w_scalar(t, 32u, 128u, co0, k0);
        load_col_gather(t, 32u, tp, k0);
        workgroupBarrier();
        step_32x16(&acc, lid, 4u);
        workgroupBarrier();
    }
    finish_32x16(&acc, co0 + 4u * lid.y, q0 + 4u * lid.x, 4u);
}

@compute @workgroup_size(8, 2, 1)
fn main_cpu64(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let q0 = pixel_tile(wid, nwg);
    if (q0 >= pixels()) {
        return;
    }
    let co0 = wid.z * 64u;
    let t = lid.y * 8u + lid.x;
    let tp0 = taps(q0 + 4u * t);
    let tp1 = taps(q0 + 4u * (t + 16u));
    var acc: array<vec4<f32>, 128>;
    for (var k0 = 0u; k0 < k_total(); k0 += TK) {
        load_w_scalar(t, 16u, 64u, co0, k0);
        load_col_gather(t, 32u, tp0, k0);
        load_col_gather(t + 16u, 32u, tp1, k0);
        workgroupBarrier();
        step_32x16(&acc, lid, 2u);
        workgroupBarrier();
    }
    finish_32x16(&acc, co0 + 4u * lid.y, q0 + 4u * lid.x, 2u);
}

@compute @workgroup_size(16, 16, 1)
fn main_gather(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let q0 = pixel_tile(wid, nwg);
    if (q0 >= pixels()) {
        return;
    }
    let co0 = wid.z * 128u;
    let t = lid.y * 16u + lid.x;
    let tc = (t + 128u) % 256u;
    let tp = taps(q0 + 4u * (tc % 32u));
    var acc: array<vec4<f32>, 16>;
    for (var k0 = 0u; k0 < k_total(); k0 += TK) {
        load_w_vec4(t, 256u, 128u, co0, k0);
        load_col_gather(tc, 256u, tp, k0);
        workgroupBarrier();
        step_8x8(&acc, lid);
        workgroupBarrier();
    }
    finish_8x8_vec4(&acc, co0 + 4u * lid.y, q0 + 4u * lid.x);
}

@compute @workgroup_size(8, 4, 1)
fn main_gather_cpu(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let q0 = pixel_tile(wid, nwg);
    if (q0 >= pixels()) {
        return;
    }
    let co0 = wid.z * 128u;
    let t = lid.y * 8u + lid.x;
    let tp = taps(q0 + 4u * t);
    var acc: array<vec4<f32>, 128>;
    for (var k0 = 0u; k0 < k_total(); k0 += TK) {
        load_w_vec4(t, 32u, 128u, co0, k0);
        load_col_gather(t, 32u, tp, k0);
        workgroupBarrier();
        step_32x16(&acc, lid, 4u);
        workgroupBarrier();
    }
    finish_32x16_vec4(&acc, co0 + 4u * lid.y, q0 + 4u * lid.x, 4u);
}

@compute @workgroup_size(8, 2, 1)
fn main_gather_cpu64(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let q0 = pixel_tile(wid, nwg);
    if (q0 >= pixels()) {
        return;
    }
    let co0 = wid.z * 64u;
    let t = lid.y * 8u + lid.x;
    let tp0 = taps(q0 + 4u * t);
    let tp1 = taps(q0 + 4u * (t + 16u));
    var acc: array<vec4<f32>, 128>;
    for (var k0 = 0u; k0 < k_total(); k0 += TK) {
        load_w_vec4(t, 16u, 64u, co0, k0);
        load_col_gather(t, 32u, tp0, k0);
        load_col_gather(t + 16u, 32u, tp1, k0);
        workgroupBarrier();
        step_32x16(&acc, lid, 2u);
        workgroupBarrier();
    }
    finish_32x16_vec4(&acc, co0 + 4u * lid.y, q0 + 4u * lid.x, 2u);
}

@compute @workgroup_size(16, 16, 1)
fn main_1x1(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let q0 = pixel_tile(wid, nwg);
    if (q0 >= pixels()) {
        return;
    }
    let co0 = wid.z * 128u;
    let t = lid.y * 16u + lid.x;
    let tc = (t + 128u) % 256u;
    let xq = col_1x1_start(q0 + 4u * (tc % 32u));
    var acc: array<vec4<f32>, 16>;
    for (var k0 = 0u; k0 < p.cin; k0 += TK) {
        load_w_vec4(t, 256u, 128u, co0, k0);
        load_col_1x1(tc, 256u, xq, k0);
        workgroupBarrier();
        step_8x8(&acc, lid);
        workgroupBarrier();
    }
    finish_8x8_vec4(&acc, co0 + 4u * lid.y, q0 + 4u * lid.x);
}

@compute @workgroup_size(8, 4, 1)
fn main_1x1_cpu(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let q0 = pixel_tile(wid, nwg);
    if (q0 >= pixels()) {
        return;
    }
    let co0 = wid.z * 128u;
    let t = lid.y * 8u + lid.x;
    let xq = col_1x1_start(q0 + 4u * t);
    var acc: array<vec4<f32>, 128>;
    for (var k0 = 0u; k0 < p.cin; k0 += TK) {
        load_w_vec4(t, 32u, 128u, co0, k0);
        load_col_1x1(t, 32u, xq, k0);
        workgroupBarrier();
        step_32x16(&acc, lid, 4u);
        workgroupBarrier();
    }
    finish_32x16_vec4(&acc, co0 + 4u * lid.y, q0 + 4u * lid.x, 4u);
}

@compute @workgroup_size(8, 2, 1)
fn main_1x1_cpu64(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let q0 = pixel_tile(wid, nwg);
    if (q0 >= pixels()) {
        return;
    }
    let co0 = wid.z * 64u;
    let t = lid.y * 8u + lid.x;
    let xq0 = col_1x1_start(q0 + 4u * t);
    let xq1 = col_1x1_start(q0 + 4u * (t + 16u));
    var acc: array<vec4<f32>, 128>;
    for (var k0 = 0u; k0 < p.cin; k0 += TK) {
        load_w_vec4(t, 16u, 64u, co0, k0);
        load_col_1x1(t, 32u, xq0, k0);
        load_col_1x1(t + 16u, 32u, xq1, k0);
        workgroupBarrier();
        step_32x16(&acc, lid, 2u);
        workgroupBarrier();
    }
    finish_32x16_vec4(&acc, co0 + 4u * lid.y, q0 + 4u * lid.x, 2u);
}
