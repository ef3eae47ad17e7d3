// linear_f16_native: linear_f16.wgsl's main_f16_vec4 and main_f16_vec4_cpu for adapters with
// SHADER_F16, reading the same weight bytes as vec4<f16> instead of unpacking u32 pairs: the
// same tiling and the same f32 arithmetic, so the same results.
//
// Not a module by itself: src/ops/linear.rs (KERNEL_F16_NATIVE) builds the module as
// "enable f16;" + linear.wgsl + this file, reusing its Params, bindings, tiles, block steps and
// epilogue. It is a module apart because adapters without the feature reject any module that
// enables f16.

@group(0) @binding(2) var<storage, read> wn: array<vec4<f16>>; // [N, ceil(K / 4)]: linear_f16's wh

// w[c, k..k+4], zero past N or K; k is a multiple of 4 (rows padded as in linear_f16.wgsl).
fn w_native4(c: u32, k: u32) -> vec4<f32> {
    if (c < p.n && k < p.k) {
        return vec4<f32>(wn[c * ((p.k + 3u) / 4u) + k / 4u]);
    }
    return vec4<f32>(0.0);
}

// linear.wgsl's load_tiles_vec4 with native f16 weights.
fn load_tiles_native_vec4(t: u32, nt: u32, row0: u32, col0: u32, k0: u32) {
    for (var i = t; i < 2u * QUADS; i += nt) {
        let g = (i % QUADS) / (TK / 4u);
        let q = i % (TK / 4u);
        let k = k0 + 4u * q;
        if (i < QUADS) {
            let r = row0 + 4u * g;
            put_x(g, q, mat4x4<f32>(x_vec4(r, k), x_vec4(r + 1u, k), x_vec4(r + 2u, k), x_vec4(r + 3u, k)));
        } else {
            let c = col0 + 4u * g;
            put_w(g, q, mat4x4<f32>(w_native4(c, k), w_native4(c + 1u, k), w_native4(c + 2u, k), w_native4(c + 3u, k)));
        }
    }
}

@compute @workgroup_size(16, 16, 1)
fn main_f16_native_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wid.y * TILE;
    let col0 = wid.x * TILE;
    var acc: array<vec4<f32>, 16>;
    for (var k0 = 0u; k0 < p.k; k0 += TK) {
        load_tiles_native_vec4(lid.y * 16u + lid.x, 256u, row0, col0, k0);
        workgroupBarrier();
        step_8x8(&acc, lid);
        workgroupBarrier();
    }
    finish_8x8(&acc, row0 + 4u * lid.y, col0 + 4u * lid.x);
}

@compute @workgroup_size(8, 8, 1)
fn main_f16_native_vec4_cpu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wid.y * TILE;
    let col0 = wid.x * TILE;
    var acc: array<vec4<f32>, 64>;
    for (var k0 = 0u; k0 < p.k; k0 += TK) {
        load_tiles_native_vec4(lid.y * 8u + lid.x, 64u, row0, col0, k0);
        workgroupBarrier();
        step_16x16(&acc, lid);
        workgroupBarrier();
    }
    finish_16x16(&acc, row0 + 4u * lid.y, col0 + 4u * lid.x);
}
