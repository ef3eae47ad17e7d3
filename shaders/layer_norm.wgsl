// layer_norm: y[r, :] = (x[r, :] - mean_r) / sqrt(var_r + eps) * gamma + beta, mean and biased
// var over the last dimension (the encoder's LayerNorm).
//
// Layout: x and y are [rows, dim], gamma and beta [dim].
// One workgroup of 128 invocations per row, spread by grid_1d (rows = batch * 577 tokens).
// Each sum is a per-invocation partial reduced by a tree in workgroup memory; the row is read
// three times, which caches absorb (a 768-float row is 3 KiB).
// Accuracy: the corrected two-pass algorithm, as in group_norm.wgsl. Pass 1: mean0 = sum x / n.
// Pass 2: sums of d = x - mean0 and d^2; mean = mean0 + sum d / n and
// var = sum d^2 / n - (sum d / n)^2. A constant row then has x - mean = 0 exactly, so with
// eps = 1e-12 (1 / sqrt(eps) = 1e6) it still comes out as exactly beta.
// Keep `Params` in sync with `LayerNormParams` in src/ops/layer_norm.rs.

struct Params {
    rows: u32,
    dim: u32,
    eps: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;       // [rows, dim]
@group(0) @binding(2) var<storage, read> gamma: array<f32>;   // [dim]
@group(0) @binding(3) var<storage, read> beta: array<f32>;    // [dim]
@group(0) @binding(4) var<storage, read_write> y: array<f32>; // [rows, dim]

const WG: u32 = 128u;

var<workgroup> partial: array<vec2<f32>, 128>;

// Sums `v` over the workgroup; every invocation gets the total.
fn workgroup_sum(lid: u32, v: vec2<f32>) -> vec2<f32> {
    partial[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            partial[lid] += partial[lid + s];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    // Nobody may start the next sum (overwriting partial[0]) before everyone has read this one.
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(128, 1, 1)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // Workgroup-uniform, so returning here keeps the barriers below in uniform control flow.
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.dim;
    let nf = f32(p.dim);

    var s = 0.0;
    for (var i = lid; i < p.dim; i += WG) {
        s += x[base + i];
    }
    let mean0 = workgroup_sum(lid, vec2(s, 0.0)).x / nf;

    var d1 = 0.0;
    var d2 = 0.0;
    for (var i = lid; i < p.dim; i += WG) {
        let d = x[base + i] - mean0;
        d1 += d;
        d2 = fma(d, d, d2);
    }
    let m = workgroup_sum(lid, vec2(d1, d2)) / nf;
    let mean = mean0 + m.x;
    let variance = max(m.y - m.x * m.x, 0.0);
    let inv_std = inverseSqrt(variance + p.eps);

    for (var i = lid; i < p.dim; i += WG) {
        y[base + i] = (x[base + i] - mean) * (inv_std * gamma[i]) + beta[i];
    }
}

// ---- CPU adapters: one row per invocation ----
// main's tree reduction costs a workgroup barrier per step, and on lavapipe each barrier
// switches between all 16 SIMD batches of the workgroup, while every load is a loop over the
// lanes anyway. Here each invocation owns a whole row and reads it as vec4s (dim a multiple of
// 4), with the same corrected two-pass statistics: no workgroup memory, no barrier.
// main_rows_to_texture stores y as a matrix texture (src/ops/matrix_texture.rs), the input
// layout of the CPU-adapter linears, so no copy sits between the norm and the product.

@group(0) @binding(1) var<storage, read> x4: array<vec4<f32>>;      // [rows, dim / 4]
// gamma (row 0) and beta (row 1) as one matrix texture (src/ops/layer_norm.rs `Affine`): a
// buffer load is a loop over the lanes that inserts each component through the stack, and
// these were three quarters of this kernel's time.
@group(0) @binding(2) var affine_t: texture_storage_2d<rgba32float, read>; // [dim / 4, 2]
@group(0) @binding(3) var<storage, read_write> y4: array<vec4<f32>>; // [rows, dim / 4]
@group(0) @binding(3) var yt: texture_storage_2d<rgba32float, write>; // [dim / 4, >= rows]

// main_rows_texture_* read x as a matrix texture instead (the encoder's residual stream on CPU
// adapters), with inline loads where x4 costs a loop over the lanes per load.
@group(0) @binding(1) var xt: texture_storage_2d<rgba32float, read>; // [dim / 4, >= rows]

// Vec4 i of row `row`, which starts at vec4 `base` of x4.
fn load_buffer(row: u32, base: u32, i: u32) -> vec4<f32> {
    return x4[base + i];
}

fn load_texture(row: u32, base: u32, i: u32) -> vec4<f32> {
    return textureLoad(xt, vec2<u32>(i, row));
}

// #for SRC in buffer texture
// Mean and 1 / std of row `row` (q vec4s).
fn row_stats_{SRC}(row: u32, base: u32, q: u32) -> vec2<f32> {
    let nf = f32(p.dim);
    var s = vec4<f32>(0.0);
    for (var i = 0u; i < q; i++) {
        s += load_{SRC}(row, base, i);
    }
    let mean0 = (s.x + s.y + s.z + s.w) / nf;
    var d1 = vec4<f32>(0.0);
    var d2 = vec4<f32>(0.0);
    for (var i = 0u; i < q; i++) {
        let d = load_{SRC}(row, base, i) - mean0;
        d1 += d;
        d2 += d * d;
    }
    let m1 = (d1.x + d1.y + d1.z + d1.w) / nf;
    let m2 = (d2.x + d2.y + d2.z + d2.w) / nf;
    let variance = max(m2 - m1 * m1, 0.0);
    return vec2<f32>(mean0 + m1, inverseSqrt(variance + p.eps));
}
// #end

// #for (SUFFIX, SRC) in ("", buffer) (_texture, texture)
// #for OUT in buffer texture
@compute @workgroup_size(8, 1, 1)
fn main_rows{SUFFIX}_to_{OUT}(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = (wid.x + wid.y * nwg.x) * 8u + lid;
    if (row >= p.rows) {
        return;
    }
    let q = p.dim / 4u;
    let base = row * q;
    let st = row_stats_{SRC}(row, base, q);
    for (var i = 0u; i < q; i++) {
        let gamma = textureLoad(affine_t, vec2<u32>(i, 0u));
        let beta = textureLoad(affine_t, vec2<u32>(i, 1u));
        let v = (load_{SRC}(row, base, i) - st.x) * (st.y * gamma) + beta;
        store_{OUT}(row, base, i, v);
    }
}
// #end
// #end

fn store_buffer(row: u32, base: u32, i: u32, v: vec4<f32>) {
    y4[base + i] = v;
}

fn store_texture(row: u32, base: u32, i: u32, v: vec4<f32>) {
    textureStore(yt, vec2<u32>(i, row), v);
}
