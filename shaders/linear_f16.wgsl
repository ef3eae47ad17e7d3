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
// module as linear.wgsl + this file, reusing its Params, bindings, tiles, x loaders, block
// steps and epilogue. It is a module apart because unpack2x16float, though core WGSL, is
// withheld by wgpu on llvmpipe without shaderFloat16, and the f32 kernel must load everywhere.

@group(0) @binding(2) var<storage, read> wh: array<vec2<u32>>; // [N, ceil(K / 4)]: 4 halves each

// w[c, k..k+4], zero past N or K; k is a multiple of 4.
fn w_half4(c: u32, k: u32) -> vec4<f32> {
    if (c < p.n && k < p.k) {
        let v = wh[c * ((p.k + 3u) / 4u) + k / 4u];
        return vec4<f32>(unpack2x16float(v.x), unpack2x16float(v.y));
    }
    return vec4<f32>(0.0);
}

// linear.wgsl's load_w_vec4 with f16 weights (WGSL cannot pass the reader in); x is loaded by
// linear.wgsl's load_x_*.
fn load_w_half4(first: u32, step: u32, base: u32, k0: u32) {
    for (var i = first; i < QUADS; i += step) {
        let g = i / (TK / 4u);
        let q = i % (TK / 4u);
        let r = base + 4u * g;
        let k = k0 + 4u * q;
        put_w(g, q, mat4x4<f32>(w_half4(r, k), w_half4(r + 1u, k), w_half4(r + 2u, k), w_half4(r + 3u, k)));
    }
}

// linear.wgsl's entry points with load_w_half4: (name, x loader, block edge, workgroup edge).
// #for (NAME, X, B, W) in (main_f16, scalar, 8, 16) (main_f16_vec4, vec4, 8, 16) (main_f16_vec4_cpu, vec4, 16, 8)
@compute @workgroup_size({W}, {W}, 1)
fn {NAME}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wid.y * TILE;
    let col0 = wid.x * TILE;
    let t = lid.y * {W}u + lid.x;
    var acc: array<vec4<f32>, {B * B / 4}>;
    for (var k0 = 0u; k0 < p.k; k0 += TK) {
        load_x_{X}(t, {W * W}u, row0, k0);
        load_w_half4((t + QUADS) % {W * W}u, {W * W}u, col0, k0);
        workgroupBarrier();
        step_{B}x{B}(&acc, lid);
        workgroupBarrier();
    }
    finish_{B}x{B}(&acc, row0 + 4u * lid.y, col0 + 4u * lid.x);
}

// #end
