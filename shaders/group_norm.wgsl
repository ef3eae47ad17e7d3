// group_norm: x = act((x - mean) / sqrt(var + eps) * gamma[c] + beta[c] [+ residual]), in place,
// with mean and biased var taken over each group of C/G channels x HW pixels of one image
// (BiT's GroupNorm; with the residual, a bottleneck's ReLU(norm3(x) + shortcut) in one pass).
//
// Layout: x is [B, C, HW]. The channels of group g are adjacent, so group (b, g) is one
// contiguous run of (C/G) * HW floats starting at (b * G + g) * (C/G) * HW.
// One workgroup of 256 invocations per (image, group), spread by grid_1d. Each sum is a
// per-invocation partial reduced by a tree in workgroup memory.
// Accuracy: the corrected two-pass algorithm (Chan, Golub & LeVeque). Pass 1: mean0 = sum x / n.
// Pass 2: sums of d = x - mean0 and of d^2; then mean = mean0 + sum d / n, which removes what
// rounding left in mean0, and var = sum d^2 / n - (sum d / n)^2. E[x^2] - E[x]^2 would lose
// about ulp(offset^2) of the variance to a common offset; here the only cost of one is rounding
// the mean to f32 (ulp(offset) / 2 / std relative, 7e-6 at offset 100, std 0.6), and a constant
// group comes out as exactly beta.
// Keep `Params` in sync with `GroupNormParams` in src/ops/group_norm.rs.

struct Params {
    batch: u32,
    c: u32,
    hw: u32,
    groups: u32,
    eps: f32,
}

@group(0) @binding(0) var<uniform> p: Params;

// Fixed per pipeline: add `residual` after the affine step, before the ReLU; ReLU after the
// affine step (and the residual). Constants rather than uniform flags: lavapipe runs a branch
// on a uniform under a lane mask whether or not it is taken, residual loads included.
override RESIDUAL: bool = false;
override RELU: bool = false;
@group(0) @binding(1) var<storage, read_write> x: array<f32>; // [B, C, HW], normalised in place
@group(0) @binding(2) var<storage, read> gamma: array<f32>;   // [C]
@group(0) @binding(3) var<storage, read> beta: array<f32>;    // [C]
// Bound to a placeholder without RESIDUAL.
@group(0) @binding(4) var<storage, read> residual: array<f32>;        // [B, C, HW]
@group(0) @binding(4) var<storage, read> residual4: array<vec4<f32>>; // [B, C, HW / 4]

const WG: u32 = 256u;

var<workgroup> partial: array<vec2<f32>, 256>;

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

@compute @workgroup_size(256, 1, 1)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // Workgroup-uniform, so returning here keeps the barriers below in uniform control flow.
    let wg = wid.x + wid.y * nwg.x;
    if (wg >= p.batch * p.groups) {
        return;
    }
    let cpg = p.c / p.groups;
    let n = cpg * p.hw;
    let base = wg * n;
    let nf = f32(n);

    var s = 0.0;
    for (var i = lid; i < n; i += WG) {
        s += x[base + i];
    }
    let mean0 = workgroup_sum(lid, vec2(s, 0.0)).x / nf;

    var d1 = 0.0;
    var d2 = 0.0;
    for (var i = lid; i < n; i += WG) {
        let d = x[base + i] - mean0;
        d1 += d;
        d2 = fma(d, d, d2);
    }
    let m = workgroup_sum(lid, vec2(d1, d2)) / nf;
    let mean = mean0 + m.x;
    let variance = max(m.y - m.x * m.x, 0.0);
    let inv_std = inverseSqrt(variance + p.eps);

    let c0 = (wg % p.groups) * cpg;
    for (var i = lid; i < n; i += WG) {
        let c = c0 + i / p.hw;
        var y = (x[base + i] - mean) * (inv_std * gamma[c]) + beta[c];
        if (RESIDUAL) {
            y += residual[base + i];
        }
        if (RELU) {
            // Not max(y, 0): lavapipe's (LLVM's maxnum) returns 0 for NaN, where PyTorch's
            // ReLU keeps NaN, and a broken input must not come out as an answer.
            y = select(y, 0.0, y < 0.0);
        }
        x[base + i] = y;
    }
}

// ---- CPU adapters: slices of a group per invocation, no barriers ----
// main's tree reductions cost a barrier per step, each switching between all 32 SIMD batches
// of the workgroup on lavapipe, where every load is a loop over the lanes anyway. Here group
// (b, g) is cut into SLICES contiguous runs of vec4s (HW a multiple of 4, so a vec4 never
// straddles two channels), one invocation each:
//   stats_slices: the run's mean and sum of squared deviations (M2), by the same corrected
//     two-pass algorithm as main, summing in chunks of 64 vec4s so that rounding grows with
//     the chunk count, not the run length;
//   apply_slices: combines the group's SLICES (mean, M2) pairs (Chan, Golub & LeVeque:
//     M2 = sum M2_s + n_s (mean_s - mean)^2) and normalises its run in place.
@group(0) @binding(1) var<storage, read_write> x4: array<vec4<f32>>;     // [B, C, HW / 4]
// The slices' (mean, M2): written by stats_slices at binding 2, read by apply_slices at 5.
@group(0) @binding(2) var<storage, read_write> slices_out: array<vec2<f32>>; // [B * G * SLICES]
@group(0) @binding(5) var<storage, read> slices: array<vec2<f32>>;           // [B * G * SLICES]

const SLICES: u32 = 16u;
const CHUNK: u32 = 64u;

// Vec4s of one group, the run of slice s: [start, end).
fn slice_run(s: u32) -> vec2<u32> {
    let n4 = (p.c / p.groups) * p.hw / 4u;
    let per = (n4 + SLICES - 1u) / SLICES;
    let start = min(s * per, n4);
    return vec2<u32>(start, min(start + per, n4));
}

fn sum4(v: vec4<f32>) -> f32 {
    return (v.x + v.y) + (v.z + v.w);
}

// Where x comes from and y goes: `buffer` (stats_slices, apply_slices) normalises x4 in
// place; `texture` (stats_slices_texture, apply_slices_texture) reads the conv product's
// output texture (src/ops/matrix_texture.rs: row b * C + c, a texel = 4 pixels) with inline
// loads and writes y4; apply_slices_texture_to_texture writes the result as a texture of that
// layout too (the next conv's input, read with inline loads), its residual read from one.
// A position is a flat vec4 index (j) and, in textures, a texel (t) that steps along the
// rows, so nothing is divided per vec4.
@group(0) @binding(1) var xt: texture_storage_2d<rgba32float, read>; // [HW / 4, >= B * C]
@group(0) @binding(6) var<storage, read_write> y4: array<vec4<f32>>; // [B, C, HW / 4]
@group(0) @binding(4) var rt: texture_storage_2d<rgba32float, read>;  // [HW / 4, >= B * C]
@group(0) @binding(6) var yt: texture_storage_2d<rgba32float, write>; // [HW / 4, >= B * C]

fn start_buffer(j: u32) -> vec2<u32> {
    return vec2<u32>(j, 0u);
}

fn next_buffer(t: vec2<u32>) -> vec2<u32> {
    return vec2<u32>(t.x + 1u, 0u);
}

fn load_buffer(t: vec2<u32>) -> vec4<f32> {
    return x4[t.x];
}

fn start_texture(j: u32) -> vec2<u32> {
    let hw4 = p.hw / 4u;
    return vec2<u32>(j % hw4, j / hw4);
}

fn next_texture(t: vec2<u32>) -> vec2<u32> {
    let x = t.x + 1u;
    return select(vec2<u32>(x, t.y), vec2<u32>(0u, t.y + 1u), x == p.hw / 4u);
}

fn load_texture(t: vec2<u32>) -> vec4<f32> {
    return textureLoad(xt, t);
}

// The residual and the store at flat vec4 j, texel t: x4 in place, y4, or yt.
fn residual_inplace(j: u32, t: vec2<u32>) -> vec4<f32> {
    return residual4[j];
}

fn residual_buffer(j: u32, t: vec2<u32>) -> vec4<f32> {
    return residual4[j];
}

fn residual_texture(j: u32, t: vec2<u32>) -> vec4<f32> {
    return textureLoad(rt, t);
}

fn store_inplace(j: u32, t: vec2<u32>, v: vec4<f32>) {
    x4[j] = v;
}

fn store_buffer(j: u32, t: vec2<u32>, v: vec4<f32>) {
    y4[j] = v;
}

fn store_texture(j: u32, t: vec2<u32>, v: vec4<f32>) {
    textureStore(yt, t, v);
}

// #for (SUFFIX, SRC) in ("", buffer) (_texture, texture)
@compute @workgroup_size(64, 1, 1)
fn stats_slices{SUFFIX}(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let id = (wid.x + wid.y * nwg.x) * 64u + lid;
    if (id >= p.batch * p.groups * SLICES) {
        return;
    }
    let n4 = (p.c / p.groups) * p.hw / 4u;
    let base = (id / SLICES) * n4;
    let run = slice_run(id % SLICES);
    let count = f32(4u * (run.y - run.x));
    if (run.y == run.x) {
        slices_out[id] = vec2<f32>(0.0);
        return;
    }
    var total = 0.0;
    var t = start_{SRC}(base + run.x);
    for (var c = run.x; c < run.y; c += CHUNK) {
        var s = vec4<f32>(0.0);
        for (var i = c; i < min(c + CHUNK, run.y); i++) {
            s += load_{SRC}(t);
            t = next_{SRC}(t);
        }
        total += sum4(s);
    }
    let mean0 = total / count;
    var d1 = 0.0;
    var d2 = 0.0;
    t = start_{SRC}(base + run.x);
    for (var c = run.x; c < run.y; c += CHUNK) {
        var s1 = vec4<f32>(0.0);
        var s2 = vec4<f32>(0.0);
        for (var i = c; i < min(c + CHUNK, run.y); i++) {
            let d = load_{SRC}(t) - mean0;
            t = next_{SRC}(t);
            s1 += d;
            s2 += d * d;
        }
        d1 += sum4(s1);
        d2 += sum4(s2);
    }
    slices_out[id] = vec2<f32>(mean0 + d1 / count, max(d2 - d1 * d1 / count, 0.0));
}

// #end

// #for (SUFFIX, SRC, DST) in ("", buffer, inplace) (_texture, texture, buffer) (_texture_to_texture, texture, texture)
@compute @workgroup_size(64, 1, 1)
fn apply_slices{SUFFIX}(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let id = (wid.x + wid.y * nwg.x) * 64u + lid;
    if (id >= p.batch * p.groups * SLICES) {
        return;
    }
    let group = id / SLICES;
    let cpg = p.c / p.groups;
    let n = f32(cpg * p.hw);
    let first = group * SLICES;
    var mean = 0.0;
    for (var s = 0u; s < SLICES; s++) {
        let run = slice_run(s);
        mean += f32(4u * (run.y - run.x)) * slices[first + s].x;
    }
    mean /= n;
    var m2 = 0.0;
    for (var s = 0u; s < SLICES; s++) {
        let run = slice_run(s);
        let st = slices[first + s];
        let dm = st.x - mean;
        m2 += st.y + f32(4u * (run.y - run.x)) * dm * dm;
    }
    let inv_std = inverseSqrt(m2 / n + p.eps);
    let n4 = cpg * p.hw / 4u;
    let base = group * n4;
    let c0 = (group % p.groups) * cpg;
    let run = slice_run(id % SLICES);
    // The channel steps along the run too (HW a multiple of 4: a vec4 never straddles two).
    let hw4 = p.hw / 4u;
    var c = c0 + run.x / hw4;
    var next = (run.x / hw4 + 1u) * hw4;
    // y = x * scale + shift per channel, loaded as the run enters a channel: gamma and beta
    // are buffers, and lavapipe loads a buffer lane by lane (a masked-off lane skips it).
    var scale = inv_std * gamma[c];
    var shift = beta[c] - mean * scale;
    var t = start_{SRC}(base + run.x);
    for (var i = run.x; i < run.y; i++) {
        if (i == next) {
            c += 1u;
            next += hw4;
            scale = inv_std * gamma[c];
            shift = beta[c] - mean * scale;
        }
        var y = load_{SRC}(t) * scale + shift;
        if (RESIDUAL) {
            y += residual_{DST}(base + i, t);
        }
        if (RELU) {
            y = select(y, vec4<f32>(0.0), y < vec4<f32>(0.0));
        }
        store_{DST}(base + i, t, y);
        t = next_{SRC}(t);
    }
}
// #end
