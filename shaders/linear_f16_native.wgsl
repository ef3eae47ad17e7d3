// linear_f16_native: linear_f16.wgsl's main_f16_vec4 and main_f16_vec4_cpu for adapters with
// SHADER_F16, reading the same weight bytes as vec4<f16> instead of unpacking u32 pairs: the
// same tiling and the same f32 arithmetic, so the same results.
//
// Not a module by itself: src/ops/linear.rs (KERNEL_F16_NATIVE) builds the module as
// "enable f16;" + linear.wgsl + this file, reusing its Params, bindings, tiles, x loaders,
// block steps and epilogue. It is a module apart because adapters without the feature reject
// any module that enables f16.

@group(0) @binding(2) var<storage, read> wn: array<vec4<f16>>; // [N, ceil(K / 4)]: linear_f16's wh

// w[c, k..k+4], zero past N or K; k is a multiple of 4 (rows padded as in linear_f16.wgsl).
fn w_native4(c: u32, k: u32) -> vec4<f32> {
    if (c < p.n && k < p.k) {
        return vec4<f32>(wn[c * ((p.k + 3u) / 4u) + k / 4u]);
    }
    return vec4<f32>(0.0);
}

// linear.wgsl's load_w_vec4 with native f16 weights.
fn load_w_native4(first: u32, step: u32, base: u32, k0: u32) {
    for (var i = first; i < QUADS; i += step) {
        let g = i / (TK / 4u);
        let q = i % (TK / 4u);
        let r = base + 4u * g;
        let k = k0 + 4u * q;
        put_w(g, q, mat4x4<f32>(w_native4(r, k), w_native4(r + 1u, k), w_native4(r + 2u, k), w_native4(r + 3u, k)));
    }
}

// linear.wgsl's vec4 entry points with load_w_native4: (name, block edge, workgroup edge).
// #for (NAME, B, W) in (main_f16_native_vec4, 8, 16) (main_f16_native_vec4_cpu, 16, 8)
@compute @workgroup_size({W}, {W}, 1)
fn {NAME}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wid.y * TILE;
    let col0 = wid.x * TILE;
    let t = lid.y * {W}u + lid.x;
    var acc: array<vec4<f32>, {B * B / 4}>;
    for (var k0 = 0u; k0 < p.k; k0 += TK) {
        load_x_vec4(t, {W * W}u, row0, k0);
        load_w_native4((t + QUADS) % {W * W}u, {W * W}u, col0, k0);
        workgroupBarrier();
        step_{B}x{B}(&acc, lid);
        workgroupBarrier();
    }
    finish_{B}x{B}(&acc, row0 + 4u * lid.y, col0 + 4u * lid.x);
}

// #end
