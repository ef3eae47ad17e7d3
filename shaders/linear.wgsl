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
// include this file with its f32 weight readers left out (W_F32 = 0) and the entry points
// renamed (main{WEIGHTS}...), then add their own w_vec4 and w_scalar; this file alone stays
// f32-only so that it needs nothing beyond core WGSL on any adapter.
// Accumulators are indexed with constants only (fmas and stores written out by
// src/shader_template.rs, one template per block): lavapipe does not unroll loops, and one
// dynamic index anywhere keeps the whole array in memory.
// Keep `Params` in sync with `LinearParams` in src/ops/linear.rs.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    x_row_stride: u32,
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
    // Texture variants: the step of every offset above from one product to the next along
    // workgroup_id.z, so that one dispatch runs many products (attention's heads, a batch of
    // 1x1 convs); zero for a single product.
    z_y_offset: u32,
    z_x_row0: u32,
    z_x_col0: u32,
    z_w_row0: u32,
    z_w_col0: u32,
    z_y_row0: u32,
    z_y_col0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

// What the epilogue does, fixed per pipeline: add the bias; exact GELU; add the residual (after
// the activation); the bias is per row (a 1x1 conv as a product), not per column. Constants,
// not uniform flags, because lavapipe runs both sides of a branch on a uniform under a lane
// mask: every store paid for the GELU, the bias and residual loads a product did not use
// (40 % of a K = 64 product's time, attention's scores).
override BIAS: bool = false;
override GELU: bool = false;
override RESIDUAL: bool = false;
override ROW_BIAS: bool = false;
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

// Stores quad (g, q) of the x or w tile, given as its four rows (tile rows or columns 4g..,
// k steps 4q..), as four k-major vec4s. Transposing in registers lets both the global reads
// (along a row) and the workgroup-memory writes be whole vec4s.
// #for V in x w
fn put_{V}(g: u32, q: u32, rows: mat4x4<f32>) {
    let t = transpose(rows);
    {V}s[4u * q][g] = t[0];
    {V}s[4u * q + 1u][g] = t[1];
    {V}s[4u * q + 2u][g] = t[2];
    {V}s[4u * q + 3u][g] = t[3];
}

// #end

// The buffer entry points' weights: f32 here, f16 where an including file sets W_F32 = 0 and
// defines w_vec4 and w_scalar itself; WEIGHTS goes into the entry points' names.
// #default W_F32 = 1
// #default WEIGHTS = ""
// x[r, k..k+4] and w[r, k..k+4] (vec4: k and K multiples of 4; scalar: any K and row stride,
// element by element), zero past M, N or K.
// #for (V, ROWS, STRIDE, ON) in (x, p.m, p.x_row_stride, 1) (w, p.n, p.k, W_F32)
// #for _ in 0..ON
fn {V}_vec4(r: u32, k: u32) -> vec4<f32> {
    if (r < {ROWS} && k < p.k) {
        return {V}4[(r * {STRIDE} + k) / 4u];
    }
    return vec4<f32>(0.0);
}

fn {V}_scalar(r: u32, k: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    if (r < {ROWS}) {
        let i = r * {STRIDE} + k;
        if (k < p.k) { v.x = {V}[i]; }
        if (k + 1u < p.k) { v.y = {V}[i + 1u]; }
        if (k + 2u < p.k) { v.z = {V}[i + 2u]; }
        if (k + 3u < p.k) { v.w = {V}[i + 3u]; }
    }
    return v;
}

// #end
// #end
// Fills the x (or w) tile for k0..k0+TK from rows (columns) base..: quads first, first + step,
// ... (quad i: tile group i / (TK / 4), k quad i % (TK / 4)). Consecutive invocations take
// consecutive k quads of the same rows, so a row's 64 bytes are read together. An entry point
// fills both tiles with one pass of its invocations: x quads from t, w quads from t + QUADS
// (mod the invocation count).
// #for V in x w
// #for F in vec4 scalar
fn load_{V}_{F}(first: u32, step: u32, base: u32, k0: u32) {
    for (var i = first; i < QUADS; i += step) {
        let g = i / (TK / 4u);
        let q = i % (TK / 4u);
        let r = base + 4u * g;
        let k = k0 + 4u * q;
        put_{V}(g, q, mat4x4<f32>({V}_{F}(r, k), {V}_{F}(r + 1u, k), {V}_{F}(r + 2u, k), {V}_{F}(r + 3u, k)));
    }
}

// #end
// #end

// One source for both blocks: B x B on W x W invocations (W = 128 / B): 8x8 on 16x16 for GPUs,
// 16x16 on 8x8 for CPU adapters.
// #for (B, W) in (8, 16) (16, 8)
// TK steps of the {B}x{B} block on {W}x{W} invocations: acc[{B / 4} * i + j] holds row i of the block
// (tile row 4 * lid.y + {4 * W} * (i / 4) + i % 4), tile columns 4 * lid.x + {4 * W} * j + 0..4.
fn step_{B}x{B}(acc: ptr<function, array<vec4<f32>, {B * B / 4}>>, lid: vec3<u32>) {
    for (var kk = 0u; kk < TK; kk++) {
// #for i in 0..B / 4
        let a{i} = xs[kk][lid.y + {W * i}u];
// #end
// #for j in 0..B / 4
        let b{j} = ws[kk][lid.x + {W * j}u];
// #end
// #for i in 0..B / 4
// #for (C, e) in (x, 0) (y, 1) (z, 2) (w, 3)
// #for j in 0..B / 4
        (*acc)[{B * i + B / 4 * e + j}] = fma(vec4<f32>(a{i}.{C}), b{j}, (*acc)[{B * i + B / 4 * e + j}]);
// #end
// #end
// #end
    }
}

// Block (i, j) of the accumulators goes to row r0 + its row, columns c0 + its column.
fn finish_{B}x{B}(acc: ptr<function, array<vec4<f32>, {B * B / 4}>>, r0: u32, c0: u32) {
// #for i in 0..B
// #for j in 0..B / 4
    finish(p.y_offset, r0 + {4 * W * (i / 4) + i % 4}u, c0 + {4 * W * j}u, (*acc)[{B / 4 * i + j}]);
// #end
// #end
}

// #end
// Bias, activation and residual for y[r, c..c+4] (y and the residual from y0 in their
// buffers), each checked against M and N.
fn finish(y0: u32, r: u32, c: u32, v: vec4<f32>) {
    if (r >= p.m) {
        return;
    }
    for (var e = 0u; e < 4u; e++) {
        let n = c + e;
        if (n >= p.n) {
            return;
        }
        var o = v[e];
        if (BIAS) {
            o += bias[select(n, r, ROW_BIAS)];
        }
        if (GELU) {
            o = gelu(o);
        }
        let at = y0 + r * p.n + n;
        if (RESIDUAL) {
            o += residual[at];
        }
        y[at] = o;
    }
}

// Entry points: (name suffix, x and w loaders, block edge, workgroup edge); main{WEIGHTS} is
// main, or main_f16 and main_f16_native in the f16 modules.
// #for (NAME, F, B, W) in ("", scalar, 8, 16) (_vec4, vec4, 8, 16) (_vec4_cpu, vec4, 16, 8)
@compute @workgroup_size({W}, {W}, 1)
fn main{WEIGHTS}{NAME}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wid.y * TILE;
    let col0 = wid.x * TILE;
    let t = lid.y * {W}u + lid.x;
    var acc: array<vec4<f32>, {B * B / 4}>;
    for (var k0 = 0u; k0 < p.k; k0 += TK) {
        load_x_{F}(t, {W * W}u, row0, k0);
        load_w_{F}((t + QUADS) % {W * W}u, {W * W}u, col0, k0);
        workgroupBarrier();
        step_{B}x{B}(&acc, lid);
        workgroupBarrier();
    }
    finish_{B}x{B}(&acc, row0 + 4u * lid.y, col0 + 4u * lid.x);
}

// #end
// ---- CPU adapters: both operands in read-only storage textures ----
// x as a matrix texture [K/4 texels, M rows padded to 16] and w as [K/4, N padded to 96]
// (src/ops/matrix_texture.rs: texel (c, r) = columns 4c..4c+4 of row r, zero padding), so the
// product is sum over texels of dot(x texel, w texel) and nothing in the k-loop checks bounds.
// On lavapipe a storage-texture load is one inline 128-bit load per lane, where a buffer or
// workgroup-memory load is a loop over the 8 lanes (../shared/notes/lavapipe.md): 3x faster.
// A workgroup is one 8-lane batch with no workgroup memory and no barrier; a lane owns 16 rows
// x 3 quads of 4 columns, the quads 8 lanes apart so a batch's stores are contiguous:
// 16 + 12 texel loads per 768 multiply-adds. Every lane needs the same x texels, and each
// costs a whole 8-lane load; where the device has subgroups (shaders/linear_subgroup.wgsl,
// SUBGROUP = 1) each lane loads one row of every 8 and subgroupBroadcast shares them, so a
// lane can own up to 24 rows: 3 + 12 texel loads per 1152 multiply-adds. w is f32 (main_texture_f32*) or f16
// (main_texture_f16*, an rgba16float texture read as f32: half the bytes per load).
// *_to_texture entry points store y as a matrix texture for the next product instead
// ([N/4, M padded to 16]; columns past N are zero).
// Unrolled by src/shader_template.rs: lavapipe does not unroll loops, and a dynamic index
// into the accumulators would keep them in memory.

@group(0) @binding(1) var xt: texture_storage_2d<rgba32float, read>;     // [K/4, M_pad]
@group(0) @binding(2) var wt_f32: texture_storage_2d<rgba32float, read>; // [K/4, N_pad]
@group(0) @binding(2) var wt_f16: texture_storage_2d<rgba16float, read>; // [K/4, N_pad]
@group(0) @binding(5) var yt: texture_storage_2d<rgba32float, write>;    // [N/4, M_pad]
// *_to_buffer4 and *_to_texture4 (N, y_offset and a row bias's length multiples of 4): the
// epilogue moves whole vec4s, a quarter of the lane-by-lane buffer accesses of finish().
@group(0) @binding(3) var<storage, read> bias4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> residual4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> y4: array<vec4<f32>>;
// *_to_stream: *_to_texture4 with the residual read from a texture of y's layout too (the
// encoder's residual stream on CPU adapters: inline loads where residual4 is read lane by lane).
@group(0) @binding(4) var rt: texture_storage_2d<rgba32float, read>;     // [N/4, >= M]

// #default SUBGROUP = 0
// Rows per lane (at most), quads per lane (at most), lanes per workgroup: a workgroup covers up
// to 16 (24 with subgroups) rows x 96 columns.
// #let TR = 16 + 8 * SUBGROUP
// #let TQ = 3
const TEX_LANES: u32 = 8u;
// Rows a lane computes, fixed per pipeline: 16, or with subgroups 8, 16 or 24 (the tile that
// wastes least on padding rows; src/ops/linear.rs `texture_rows`). Rows past it are
// constant-false branches, dropped with their loads like the quads past TEX_QUADS.
override TEX_ROWS: u32 = {TR}u;
// Quads a lane computes, 1 to 3, fixed per pipeline: a narrower tile for products with few
// columns (attention's context: 64 per head, of which a 96-column tile would waste a third).
// The quads past it are constant-false branches that the compiler drops, with their loads.
override TEX_QUADS: u32 = {TQ}u;
// K not a multiple of 4: the last k step reads w rows past K, which belong to whatever follows
// the operand in its texture (attention's values: the next image's first tokens). x is zero
// there, but 0 x inf is NaN, so those rows are zeroed: a non-finite image never reaches its
// batch-mates. Off (and compiled out) for every other product.
override K_TAIL: bool = false;
// bias holds one factor per row of x's texture, which scales the product's row (attention's
// context times 1 / the softmax sums, so softmax_texture need not normalise). No bias then.
override ROW_SCALE: bool = false;

// The entry points that bind bias as f32s read the factor from bias, the vec4 ones from bias4
// (the buffer then holds whole vec4s: src/ops/linear.rs).
// #for OUT in buffer texture
fn row_scaled_{OUT}(z: u32, r: u32, v: vec4<f32>) -> vec4<f32> {
    if (ROW_SCALE) {
        return v * bias[p.x_row0 + z * p.z_x_row0 + r];
    }
    return v;
}
// #end
// #for OUT in buffer4 texture4 stream
fn row_scaled_{OUT}(z: u32, r: u32, v: vec4<f32>) -> vec4<f32> {
    if (ROW_SCALE) {
        let i = p.x_row0 + z * p.z_x_row0 + r;
        return v * bias4[i / 4u][i % 4u];
    }
    return v;
}
// #end

fn w_rows_in_k(w: vec4<f32>, row: i32) -> vec4<f32> {
    if (K_TAIL) {
        return select(w, vec4<f32>(0.0), row >= i32(p.k));
    }
    return w;
}

// Bias, GELU and residual for columns 4 * quad.. of row r; zero past N.
fn texture_epilogue(y0: u32, r: u32, quad: u32, v: vec4<f32>) -> vec4<f32> {
    var o = vec4<f32>(0.0);
    for (var e = 0u; e < 4u; e++) {
        let n = 4u * quad + e;
        if (n < p.n) {
            var s = v[e];
            if (BIAS) {
                s += bias[select(n, r, ROW_BIAS)];
            }
            if (GELU) {
                s = gelu(s);
            }
            if (RESIDUAL) {
                s += residual[y0 + r * p.n + n];
            }
            o[e] = s;
        }
    }
    return o;
}

// #for W in f32 f16
// #for OUT in buffer buffer4 texture texture4 stream
@compute @workgroup_size(8, 1, 1)
fn main_texture_{W}_to_{OUT}(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
// #for _ in 0..SUBGROUP
    @builtin(subgroup_invocation_id) sg_lane: u32,
// #end
) {
    // Row tiles along x: lavapipe hands each thread a run of consecutive workgroups, which
    // then share one column band of w (the larger operand: a weight matrix, a conv's patches)
    // while it is in the core's cache, and only x's smaller tiles stream past.
    let row0 = wid.x * TEX_ROWS;
    let quad0 = wid.y * TEX_QUADS * TEX_LANES + lid.x;
    let r0 = i32(row0);
    let c0 = 4 * i32(quad0);
// #for r in 0..TR
// #for q in 0..TQ
    var a{r}_{q} = vec4<f32>(0.0);
// #end
// #end
    let k4 = i32((p.k + 3u) / 4u);
    let z = wid.z;
    let xr = r0 + i32(p.x_row0 + z * p.z_x_row0);
    let xc = i32(p.x_col0 + z * p.z_x_col0);
    let wr = i32(p.w_row0 + z * p.z_w_row0);
    let wc = i32(quad0 + p.w_col0 + z * p.z_w_col0);
    for (var kq = 0; kq < k4; kq++) {
// #for _ in 0..SUBGROUP
// #for g in 0..TR / 8
        var xl{g} = vec4<f32>(0.0);
        if (TEX_ROWS > {8 * g}u) {
            xl{g} = textureLoad(xt, vec2<i32>(xc + kq, xr + {8 * g} + i32(sg_lane)));
        }
// #end
// #for r in 0..TR
        let x{r} = subgroupBroadcast(xl{r / 8}, {r % 8}u);
// #end
// #end
// #for _ in SUBGROUP..1
// #for r in 0..TR
        let x{r} = textureLoad(xt, vec2<i32>(xc + kq, xr + {r}));
// #end
// #end
// #for c in 0..4
// #for q in 0..TQ
        let w{q}_{c} = w_rows_in_k(textureLoad(wt_{W}, vec2<i32>(wc + {8 * q}, wr + 4 * kq + {c})), 4 * kq + {c});
// #end
// #end
// #for r in 0..TR
// #for q in 0..TQ
        if (TEX_ROWS > {r}u && TEX_QUADS > {q}u) {
            a{r}_{q} += x{r}.x * w{q}_0 + x{r}.y * w{q}_1 + x{r}.z * w{q}_2 + x{r}.w * w{q}_3;
        }
// #end
// #end
    }
// #for q in 0..TQ
    var cb{q} = vec4<f32>(0.0);
    if (TEX_QUADS > {q}u) {
        cb{q} = column_bias_{OUT}(quad0 + {8 * q}u);
    }
// #end
// #for r in 0..TR
// #for q in 0..TQ
    if (TEX_ROWS > {r}u && TEX_QUADS > {q}u) {
        let v = row_scaled_{OUT}(z, row0 + {r}u, a{r}_{q});
        store_{OUT}(z, row0 + {r}u, quad0 + {8 * q}u, v, cb{q});
    }
// #end
// #end
}
// #end
// #end

// Where product z's y (and residual) start in their buffers.
fn y_at(z: u32) -> u32 {
    return p.y_offset + z * p.z_y_offset;
}

// Product z's y as a texture: its first texel and row.
fn y_texel(z: u32, r: u32, quad: u32) -> vec2<u32> {
    return vec2<u32>(p.y_col0 + z * p.z_y_col0 + quad, p.y_row0 + z * p.z_y_row0 + r);
}

fn store_buffer(z: u32, r: u32, quad: u32, v: vec4<f32>, cb: vec4<f32>) {
    finish(y_at(z), r, 4u * quad, v);
}

// The column bias of a lane's quad for the vec4 entry points, loaded once before its 8-24
// stores: bias4 is a buffer, and lavapipe loads a buffer lane by lane, each component through
// the stack (about a tenth of a K = 768 product when it was loaded per store). The scalar
// entry points add their bias per element in the epilogue.
// #for OUT in buffer texture
fn column_bias_{OUT}(quad: u32) -> vec4<f32> {
    return vec4<f32>(0.0);
}
// #end
// #for OUT in buffer4 texture4 stream
fn column_bias_{OUT}(quad: u32) -> vec4<f32> {
    if (BIAS && !ROW_BIAS) {
        return bias4[quad];
    }
    return vec4<f32>(0.0);
}
// #end

// Bias (a row's, or the column bias cb) and GELU on whole vec4s (N, y_offset and a row
// bias's length multiples of 4).
fn affine4(r: u32, v: vec4<f32>, cb: vec4<f32>) -> vec4<f32> {
    var o = v;
    if (BIAS) {
        if (ROW_BIAS) {
            o += vec4<f32>(bias4[r / 4u][r % 4u]);
        } else {
            o += cb;
        }
    }
    if (GELU) {
        o = vec4<f32>(gelu(o.x), gelu(o.y), gelu(o.z), gelu(o.w));
    }
    return o;
}

// affine4, then the residual from its buffer.
fn epilogue4(y0: u32, r: u32, quad: u32, v: vec4<f32>, cb: vec4<f32>) -> vec4<f32> {
    var o = affine4(r, v, cb);
    if (RESIDUAL) {
        o += residual4[(y0 + r * p.n) / 4u + quad];
    }
    return o;
}

fn store_buffer4(z: u32, r: u32, quad: u32, v: vec4<f32>, cb: vec4<f32>) {
    if (r < p.m && quad < p.n / 4u) {
        let y0 = y_at(z);
        y4[(y0 + r * p.n) / 4u + quad] = epilogue4(y0, r, quad, v, cb);
    }
}

fn store_texture4(z: u32, r: u32, quad: u32, v: vec4<f32>, cb: vec4<f32>) {
    if (r < p.m && quad < p.n / 4u) {
        textureStore(yt, y_texel(z, r, quad), epilogue4(y_at(z), r, quad, v, cb));
    }
}

fn store_texture(z: u32, r: u32, quad: u32, v: vec4<f32>, cb: vec4<f32>) {
    if (r < p.m && quad < (p.n + 3u) / 4u) {
        textureStore(yt, y_texel(z, r, quad), texture_epilogue(y_at(z), r, quad, v));
    }
}

// The residual is always added here: the stream has one.
fn store_stream(z: u32, r: u32, quad: u32, v: vec4<f32>, cb: vec4<f32>) {
    if (r < p.m && quad < p.n / 4u) {
        let t = y_texel(z, r, quad);
        textureStore(yt, t, affine4(r, v, cb) + textureLoad(rt, t));
    }
}
