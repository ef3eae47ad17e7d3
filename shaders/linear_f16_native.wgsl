// linear_f16_native: linear_f16.wgsl's entry points for adapters with SHADER_F16, reading the
// same weight bytes as vec4<f16> instead of unpacking u32 pairs: the same tiling and the same
// f32 arithmetic, so the same results.
//
// A module apart because adapters without the feature reject any module that enables f16.
enable f16;
// #let W_F32 = 0
// #let WEIGHTS = _f16_native
// #include linear.wgsl

@group(0) @binding(2) var<storage, read> wn: array<vec4<f16>>; // [N, ceil(K / 4)]: linear_f16's wh

// w[c, k..k+4], zero past N or K; k is a multiple of 4 (rows padded as in linear_f16.wgsl).
// #for F in vec4 scalar
fn w_{F}(c: u32, k: u32) -> vec4<f32> {
    if (c < p.n && k < p.k) {
        return vec4<f32>(wn[c * ((p.k + 3u) / 4u) + k / 4u]);
    }
    return vec4<f32>(0.0);
}

// #end
