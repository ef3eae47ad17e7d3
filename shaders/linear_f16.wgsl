// linear_f16: linear.wgsl's three entry points for f16 weights (half the upload and memory):
// main_f16, main_f16_vec4 and main_f16_vec4_cpu are main, main_vec4 and main_vec4_cpu with the
// same tiling, blocks and epilogue; only the weight loads differ, so x, the sums, bias, residual
// and y stay f32.
//
// Weight layout: IEEE halves two per u32, lower half first, each row padded with zeros to a
// multiple of 4 halves ([N, ceil(K / 4)] vec2<u32>), so a vec4 of weights is one vec2<u32>
// load at any K; the padding meets zeros of x past K.
//
// Not a module by itself: WGSL has no includes, so src/ops/linear.rs (KERNEL_F16) builds the
// module as linear.wgsl + this file, reusing its Params, bindings, tiles, block steps and
// epilogue. It is a module apart because unpack2x16float, though core WGSL, is withheld by
// wgpu on llvmpipe without shaderFloat16, and the f32 kernel must load everywhere.

@group(0) @binding(2) var<storage, read> wh: array<vec2<u32>>; // [N, ceil(K / 4)]: 4 halves each

// w[c, k..k+4], zero past N or K; k is a multiple of 4.
fn w_half4(c: u32, k: u32) -> vec4<f32> {
    if (c < p.n && k < p.k) {
        let v = wh[c * ((p.k + 3u) / 4u) + k / 4u];
        return vec4<f32>(unpack2x16float(v.x), unpack2x16float(v.y));
    }
    return vec4<f32>(0.0);
}

// linear.wgsl's load_tiles_vec4 and load_tiles_scalar with f16 weights (WGSL cannot pass the
// loader in).
fn load_tiles_half_vec4(t: u32, nt: u32, row0: u32, col0: u32, k0: u32) {
    for (var i = t; i < 2u * QUADS; i += nt) {
        let g = (i % QUADS) / (TK / 4u);
        let q = i % (TK / 4u);
        let k = k0 + 4u * q;
        if (i < QUADS) {
            let r = row0 + 4u * g;
            put_x(g, q, mat4x4<f32>(x_vec4(r, k), x_vec4(r + 1u, k), x_vec4(r + 2u, k), x_vec4(r + 3u, k)));
        } else {
            let c = col0 + 4u * g;
            put_w(g, q, mat4x4<f32>(w_half4(c, k), w_half4(c + 1u, k), w_half4(c + 2u, k), w_half4(c + 3u, k)));
        }
    }
}

fn load_tiles_half_scalar(t: u32, nt: u32, row0: u32, col0: u32, k0: u32) {
    for (var i = t; i < 2u * QUADS; i += nt) {
        let g = (i % QUADS) / (TK / 4u);
        let q = i % (TK / 4u);
        let k = k0 + 4u * q;
        if (i < QUADS) {
            let r = row0 + 4u * g;
            put_x(g, q, mat4x4<f32>(x_scalar(r, k), x_scalar(r + 1u, k), x_scalar(r + 2u, k), x_scalar(r + 3u, k)));
        } else {
            let c = col0 + 4u * g;
            put_w(g, q, mat4x4<f32>(w_half4(c, k), w_half4(c + 1u, k), w_half4(c + 2u, k), w_half4(c + 3u, k)));
        }
    }
}

@compute @workgroup_size(16, 16, 1)
fn main_f16(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wid.y * TILE;
    let col0 = wid.x * TILE;
    var acc: array<vec4<f32>, 16>;
    for (var k0 = 0u; k0 < p.k; k0 += TK) {
        load_tiles_half_scalar(lid.y * 16u + lid.x, 256u, row0, col0, k0);
        workgroupBarrier();
        step_8x8(&acc, lid);
        workgroupBarrier();
    }
    finish_8x8(&acc, row0 + 4u * lid.y, col0 + 4u * lid.x);
}

@compute @workgroup_size(16, 16, 1)
fn main_f16_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wid.y * TILE;
    let col0 = wid.x * TILE;
    var acc: array<vec4<f32>, 16>;
    for (var k0 = 0u; k0 < p.k; k0 += TK) {
        load_tiles_half_vec4(lid.y * 16u + lid.x, 256u, row0, col0, k0);
        workgroupBarrier();
        step_8x8(&acc, lid);
        workgroupBarrier();
    }
    finish_8x8(&acc, row0 + 4u * lid.y, col0 + 4u * lid.x);
}

@compute @workgroup_size(8, 8, 1)
fn main_f16_vec4_cpu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wid.y * TILE;
    let col0 = wid.x * TILE;
    var acc: array<vec4<f32>, 64>;
    for (var k0 = 0u; k0 < p.k; k0 += TK) {
        load_tiles_half_vec4(lid.y * 8u + lid.x, 64u, row0, col0, k0);
        workgroupBarrier();
        step_16x16(&acc, lid);
        workgroupBarrier();
    }
    finish_16x16(&acc, row0 + 4u * lid.y, col0 + 4u * lid.x);
}
