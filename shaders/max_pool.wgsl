// max_pool: y[b, c, oy, ox] = max over the k x k window at (oy*s - pad_top, ox*s - pad_left)
//
// Layout: x [B, C, h, w], y [B, C, oh, ow]. Window positions outside x count as 0.0, not -inf:
// BiT pads with zeros (DynamicPad2d) before pooling, so the pad takes part in the max.
// One invocation per output element; the grid is spread over x/y by grid_1d.
// Keep `Params` in sync with `MaxPoolParams` in src/ops/max_pool.rs.

struct Params {
    batch: u32,
    c: u32,
    h: u32,
    w: u32,
    k: u32,
    stride: u32,
    pad_top: u32,
    pad_left: u32,
    oh: u32,
    ow: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;       // [B, C, h, w]
@group(0) @binding(2) var<storage, read_write> y: array<f32>; // [B, C, oh, ow]

const WG: u32 = 256u;

@compute @workgroup_size(256, 1, 1)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * WG + li;
    let ohw = p.oh * p.ow;
    if (i >= p.batch * p.c * ohw) {
        return;
    }
    let plane = i / ohw;
    let pix = i % ohw;
    let iy0 = i32((pix / p.ow) * p.stride) - i32(p.pad_top);
    let ix0 = i32((pix % p.ow) * p.stride) - i32(p.pad_left);
    let xb = plane * p.h * p.w;
    var m = -3.402823e38;
    for (var ky = 0u; ky < p.k; ky++) {
        let iy = iy0 + i32(ky);
        let row_ok = iy >= 0 && iy < i32(p.h);
        for (var kx = 0u; kx < p.k; kx++) {
            let ix = ix0 + i32(kx);
            var v = 0.0;
            if (row_ok && ix >= 0 && ix < i32(p.w)) {
                v = x[xb + u32(iy) * p.w + u32(ix)];
            }
            // Not max(m, v): that drops NaN on lavapipe (LLVM's maxnum), where PyTorch's
            // max_pool2d keeps it; once m is NaN, nothing replaces it.
            if (v > m || v != v) {
                m = v;
            }
        }
    }
    y[i] = m;
}
