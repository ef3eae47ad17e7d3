// linear_f16: linear.wgsl for f16 weights (half the upload and memory): main_f16,
// main_f16_vec4 and main_f16_vec4_cpu are main, main_vec4 and main_vec4_cpu with the same
// tiling, blocks and epilogue; only the weight reads differ, so x, the sums, bias, residual and
// y stay f32.
//
// Weight layout: IEEE halves two per u32, lower half first, each row padded with zeros to a
// multiple of 4 halves ([N, ceil(K / 4)] vec2<u32>), so a vec4 of weights is one vec2<u32>
// load at any K; the padding meets zeros of x past K.
//
// A module apart from linear.wgsl because unpack2x16float, though core WGSL, is withheld by
// wgpu on llvmpipe without shaderFloat16, and the f32 kernel must load everywhere.
// #let W_F32 = 0
// #let WEIGHTS = _f16
// #include linear.wgsl

@group(0) @binding(2) var<storage, read> wh: array<vec2<u32>>; // [N, ceil(K / 4)]: 4 halves each

// w[c, k..k+4], zero past N or K; k is a multiple of 4. The scalar entry point's reader is the
// same: the row padding already covers any K.
// #for F in vec4 scalar
fn w_{F}(c: u32, k: u32) -> vec4<f32> {
    if (c < p.n && k < p.k) {
        let v = wh[c * ((p.k + 3u) / 4u) + k / 4u];
        return vec4<f32>(unpack2x16float(v.x), unpack2x16float(v.y));
    }
    return vec4<f32>(0.0);
}

// #end
