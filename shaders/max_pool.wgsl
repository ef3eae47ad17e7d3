// max_pool: y[b, c, oy, ox] = max over the k x k window at (oy*s - pad_top, ox*s - pad_left)
//
// Layout: x [B, C, h, w], y [B, C, oh, ow]. Window positions outside x count as 0.0, not -inf:
// BiT pads with zeros (DynamicPad2d) before pooling, so the pad takes part in the max.
// main: one invocation per output element; the grid is spread over x/y by grid_1d.
// main_texture (CPU adapters): x and y as matrix textures (row b * C + c, a texel = 4 pixels of
// the flattened h * w or oh * ow), one invocation per output texel; inline texture loads where
// main's buffer loads cost a loop over the lanes each on lavapipe.
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

// From the bits: lavapipe folds `v != v` to false (the compiler assumes no NaN in float
// compares), so the float test would drop a NaN.
fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

@group(0) @binding(1) var xt: texture_storage_2d<rgba32float, read>;  // [B * C, h * w / 4]
@group(0) @binding(2) var yt: texture_storage_2d<rgba32float, write>; // [B * C, oh * ow / 4]

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
    y[i] = window_max_buffer(plane, pix / p.ow, pix % p.ow);
}

// Pixel (iy, ix) of a plane: of x from the plane's first element, or of its row of xt.
fn pixel_buffer(plane: u32, iy: u32, ix: u32) -> f32 {
    return x[plane * p.h * p.w + iy * p.w + ix];
}

fn pixel_texture(row: u32, iy: u32, ix: u32) -> f32 {
    let q = iy * p.w + ix;
    return textureLoad(xt, vec2<u32>(q / 4u, row))[q % 4u];
}

// The max of the window at output (oy, ox) of a plane (main) or texture row (main_texture).
// #for SRC in buffer texture
fn window_max_{SRC}(plane: u32, oy: u32, ox: u32) -> f32 {
    let iy0 = i32(oy * p.stride) - i32(p.pad_top);
    let ix0 = i32(ox * p.stride) - i32(p.pad_left);
    var m = -3.402823e38;
    for (var ky = 0u; ky < p.k; ky++) {
        let iy = iy0 + i32(ky);
        let row_ok = iy >= 0 && iy < i32(p.h);
        for (var kx = 0u; kx < p.k; kx++) {
            let ix = ix0 + i32(kx);
            var v = 0.0;
            if (row_ok && ix >= 0 && ix < i32(p.w)) {
                v = pixel_{SRC}(plane, u32(iy), u32(ix));
            }
            // Not max(m, v): that drops NaN on lavapipe (LLVM's maxnum), where PyTorch's
            // max_pool2d keeps it; once m is NaN, nothing replaces it.
            if (v > m || is_nan(v)) {
                m = v;
            }
        }
    }
    return m;
}

// #end
// Workgroups: x runs along a row of output texels (64 each), y is the row (plane).
@compute @workgroup_size(64, 1, 1)
fn main_texture(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let row = wid.y;
    let t = wid.x * 64u + li;
    let ohw = p.oh * p.ow;
    if (row >= p.batch * p.c || t >= (ohw + 3u) / 4u) {
        return;
    }
    // The texel's 4 pixels step along the output row from the first one's position.
    var px = 4u * t;
    var oy = px / p.ow;
    var ox = px - oy * p.ow;
    var out = vec4<f32>(0.0);
// #for C in x y z w
    if (px < ohw) {
        out.{C} = window_max_texture(row, oy, ox);
    }
    px += 1u;
    ox += 1u;
    if (ox == p.ow) {
        ox = 0u;
        oy += 1u;
    }
// #end
    textureStore(yt, vec2<u32>(t, row), out);
}
