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
// Accumulators are touched with constant indices only (fmas and stores written out by
// src/shader_template.rs from one template per block): only then do CPU drivers keep them out
// of memory that every step reloads.
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
// #for F in vec4 scalar
fn load_w_{F}(t: u32, nt: u32, rows: u32, co0: u32, k0: u32) {
    for (var i = t; i < (rows / 4u) * (TK / 4u); i += nt) {
        let g = i / (TK / 4u);
        let qk = i % (TK / 4u);
        let k = k0 + 4u * qk;
        let c = co0 + 4u * g;
        put_w(g, qk, mat4x4<f32>(w_{F}(c, k), w_{F}(c + 1u, k), w_{F}(c + 2u, k), w_{F}(c + 3u, k)));
    }
}

// #end
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

// ---- multiply ----
// One source for every block: BR couts x BC pixels on WX x wy invocations (8x8 on 16x16 for
// GPUs, 32x16 on 8x4 or 8x2 for CPU adapters), written out by the template so that the
// accumulators are indexed by constants only.
// #for (BR, BC, WX) in (8, 8, 16) (32, 16, 8)
// TK steps of the {BR}x{BC} block on {WX} x wy invocations: acc[{BC / 4} * i + j] holds cout row i of
// the block (tile row 4 * lid.y + 4 * wy * (i / 4) + i % 4), tile pixels 4 * lid.x + {4 * WX} * j + 0..4.
fn step_{BR}x{BC}(acc: ptr<function, array<vec4<f32>, {BR * BC / 4}>>, lid: vec3<u32>, wy: u32) {
    for (var kk = 0u; kk < TK; kk++) {
// #for i in 0..BR / 4
        let a{i} = ws[kk][lid.y + {i}u * wy];
// #end
// #for j in 0..BC / 4
        let b{j} = cs[kk][lid.x + {WX * j}u];
// #end
// #for i in 0..BR / 4
// #for (C, e) in (x, 0) (y, 1) (z, 2) (w, 3)
// #for j in 0..BC / 4
        (*acc)[{BC * i + BC / 4 * e + j}] = fma(vec4<f32>(a{i}.{C}), b{j}, (*acc)[{BC * i + BC / 4 * e + j}]);
// #end
// #end
// #end
    }
}

// The block's epilogue, stored with out_/store_scalar (any shape) or out_/store_vec4: block
// (i, j) of the accumulators goes to cout r0 + its row, pixels c0 + its column.
// #for OUT in scalar vec4
fn finish_{BR}x{BC}_{OUT}(acc: ptr<function, array<vec4<f32>, {BR * BC / 4}>>, r0: u32, c0: u32, wy: u32) {
// #for j in 0..BC / 4
    let y{j} = out_{OUT}(c0 + {4 * WX * j}u);
// #end
    let rs = 4u * wy;
// #for i in 0..BR
// #for j in 0..BC / 4
    store_{OUT}(r0 + {i / 4}u * rs + {i % 4}u, y{j}, (*acc)[{BC / 4 * i + j}]);
// #end
// #end
}

// #end
// #end
// ---- entry points ----
// main{fill}{block}: every fill with every block, from one template. The pixel tile comes first
// so that early-out workgroups (grid_1d rounds up) skip everything; workgroup ids are uniform,
// so returning before the barriers is safe. Invocation t loads weight quads t, t + WX * WY, ...
// and col quads from tc = t + 128 (mod the col step): on GPUs (256 invocations) the two halves
// of the workgroup fill the two tiles at once; on CPU adapters every invocation fills quads of
// both, with two col calls (pixel quads t and t + 16) where 16 invocations cover 32 quads.

fn pixel_tile(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return (wid.x + wid.y * nwg.x) * TILE;
}

// Fills: (name part, weight loader, where a col call's pixels read x, col loader, K, store).
// Blocks: (name part, invocations x and y, couts per tile, block couts and pixels, col calls).
// #for (FILL, W, START, COL, KEND, OUT) in ("", scalar, taps, gather, k_total(), scalar) (_gather, vec4, taps, gather, k_total(), vec4) (_1x1, vec4, col_1x1_start, 1x1, p.cin, vec4)
// #for (BLOCK, WX, WY, CT, BR, BC, CALLS) in ("", 16, 16, 128, 8, 8, 1) (_cpu, 8, 4, 128, 32, 16, 1) (_cpu64, 8, 2, 64, 32, 16, 2)
@compute @workgroup_size({WX}, {WY}, 1)
fn main{FILL}{BLOCK}(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let q0 = pixel_tile(wid, nwg);
    if (q0 >= pixels()) {
        return;
    }
    let co0 = wid.z * {CT}u;
    let t = lid.y * {WX}u + lid.x;
// #for s in 0..CALLS
    let tc{s} = (t + {128 + WX * WY * s}u) % {WX * WY * CALLS}u;
    let src{s} = {START}(q0 + 4u * (tc{s} % 32u));
// #end
    var acc: array<vec4<f32>, {BR * BC / 4}>;
    for (var k0 = 0u; k0 < {KEND}; k0 += TK) {
        load_w_{W}(t, {WX * WY}u, {CT}u, co0, k0);
// #for s in 0..CALLS
        load_col_{COL}(tc{s}, {WX * WY * CALLS}u, src{s}, k0);
// #end
        workgroupBarrier();
        step_{BR}x{BC}(&acc, lid, {WY}u);
        workgroupBarrier();
    }
    finish_{BR}x{BC}_{OUT}(&acc, co0 + 4u * lid.y, q0 + 4u * lid.x, {WY}u);
}

// #end
// #end
