// to_texture: a row-major matrix in a storage buffer into a matrix texture (the operand layout
// of the CPU-adapter matrix products, src/ops/matrix_texture.rs): texel (c, r) holds
// x[r * row_stride + 4c .. 4c + 4], zero past `cols`. Used where the producer of a product's
// input cannot store the texture itself (tests, the head's strided CLS rows).
// Keep `Params` in sync with `ToTextureParams` in src/ops/to_texture.rs.

struct Params {
    rows: u32,
    cols: u32,
    row_stride: u32,
    texels_wide: u32,
    // Where row 0 starts in x (main; 0 for from_texture), in floats.
    offset: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;                  // [rows, row_stride]
@group(0) @binding(2) var out: texture_storage_2d<rgba32float, write>;   // [texels_wide, >= rows]
// transpose, from_texture and im2col_texture read a matrix texture instead of x.
@group(0) @binding(1) var src: texture_storage_2d<rgba32float, read>;

// from_texture: the inverse of main, a matrix texture back into a row-major buffer (stage
// captures, and kernels that only read buffers after a producer that stored a texture).
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;          // [rows, row_stride]

// Texel (c, r) and the values it holds, x[r * row_stride + 4c ..] up to `cols`.
fn copy_to(c: u32, r: u32, base: u32) {
    var v = vec4<f32>(0.0);
    for (var e = 0u; e < 4u; e++) {
        if (4u * c + e < p.cols) {
            v[e] = x[base + e];
        }
    }
    textureStore(out, vec2<u32>(c, r), v);
}

fn copy_from(c: u32, r: u32, base: u32) {
    let v = textureLoad(src, vec2<u32>(c, r));
    for (var e = 0u; e < 4u; e++) {
        if (4u * c + e < p.cols) {
            dst[base + e] = v[e];
        }
    }
}

// Workgroups: x runs along a row (64 texels each), y is the row, so no lane divides (on
// lavapipe an integer division by a uniform is one scalar division per lane).
// #for (NAME, DIR) in (main, to) (from_texture, from)
@compute @workgroup_size(64, 1, 1)
fn {NAME}(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let r = wid.y;
    let c = wid.x * 64u + lid;
    if (r >= p.rows || c >= p.texels_wide) {
        return;
    }
    copy_{DIR}(c, r, p.offset + r * p.row_stride + 4u * c);
}
// #end

// transpose: columns col0.. col0 + dim of a [batch * seq, *] matrix texture, image by image,
// into a [batch * dim, seq] matrix texture: out row b * dim + j, column t holds src row
// b * seq + t, column col0 + j. Attention's keys, so that the scores are a texture product
// whose second operand reads four keys per texel (see src/ops/attention.rs).
struct TransposeParams {
    batch: u32,
    seq: u32,
    dim: u32,
    col0: u32,
    // Texels per output row that hold keys: ceil(seq / 4).
    texels: u32,
}

@group(0) @binding(0) var<uniform> tp: TransposeParams;

@compute @workgroup_size(64, 1, 1)
fn transpose(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * 64u + lid;
    if (i >= tp.batch * tp.dim * tp.texels) {
        return;
    }
    let r = i / tp.texels;
    let c = i % tp.texels;
    let b = r / tp.dim;
    let col = tp.col0 + r % tp.dim;
    var v = vec4<f32>(0.0);
    for (var e = 0u; e < 4u; e++) {
        let t = 4u * c + e;
        if (t < tp.seq) {
            v[e] = textureLoad(src, vec2<u32>(col / 4u, b * tp.seq + t))[col % 4u];
        }
    }
    textureStore(out, vec2<u32>(c, r), v);
}

// im2col: one image of a convolution's input [C, H, W] (from `image` in x) as the [K, OH * OW]
// matrix texture of its patches, K = C * KH * KW in PyTorch's weight order (c, ky, kx): row k,
// column oy * OW + ox holds x[c, oy * stride + ky - pad_top, ox * stride + kx - pad_left], zero
// outside the image. The conv is then a texture product (src/ops/conv2d.rs).
struct Im2colParams {
    c: u32,
    h: u32,
    w: u32,
    kh: u32,
    kw: u32,
    stride: u32,
    pad_top: u32,
    pad_left: u32,
    oh: u32,
    ow: u32,
    // Where the image starts: in x, in floats (im2col); in src, its first row (im2col_texture,
    // a matrix texture with row b * C + c, a texel = 4 pixels of the flattened H * W).
    image: u32,
    // Texels per output row that hold pixels: ceil(oh * ow / 4).
    texels: u32,
}

@group(0) @binding(0) var<uniform> ip: Im2colParams;

// Pixel (iy, ix) of channel c of the image: from x, or from its texel in src (the texture
// the previous group norm stored, read with an inline load where x costs a loop over lanes).
fn pixel_buffer(c: u32, iy: u32, ix: u32) -> f32 {
    return x[ip.image + (c * ip.h + iy) * ip.w + ix];
}

fn pixel_texture(c: u32, iy: u32, ix: u32) -> f32 {
    let q = iy * ip.w + ix;
    return textureLoad(src, vec2<u32>(q / 4u, ip.image + c))[q % 4u];
}
// im2col_rows: src holds one image row per texture row (row image + c * H + iy), for inputs
// whose flattened planes are wider than a texture (the stem's 384 x 384 image).
fn pixel_rows(c: u32, iy: u32, ix: u32) -> f32 {
    return textureLoad(src, vec2<u32>(ix / 4u, ip.image + c * ip.h + iy))[ix % 4u];
}

// Workgroups: x runs along a row (64 texels each), y is the row k, and a texel's four pixels
// step along the output row from the first one's position: one division per texel where
// lavapipe would otherwise divide lane by lane twice per pixel.
// #for (SUFFIX, SRC) in ("", buffer) (_texture, texture) (_rows, rows)
@compute @workgroup_size(64, 1, 1)
fn im2col{SUFFIX}(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let k = wid.y;
    let t = wid.x * 64u + lid;
    let khw = ip.kh * ip.kw;
    if (k >= ip.c * khw || t >= ip.texels) {
        return;
    }
    let c = quotient(k, khw);
    let ky = quotient(k - c * khw, ip.kw);
    let kx = k - c * khw - ky * ip.kw;
    let pixels = ip.oh * ip.ow;
    var px = 4u * t;
    var oy = quotient(px, ip.ow);
    var ox = px - oy * ip.ow;
    var v = vec4<f32>(0.0);
// #for C in x y z w
    {
        // Unsigned wrap-around makes a position left of or above the image fail `< w` / `< h`.
        let iy = oy * ip.stride + ky - ip.pad_top;
        let ix = ox * ip.stride + kx - ip.pad_left;
        if (px < pixels && iy < ip.h && ix < ip.w) {
            v.{C} = pixel_{SRC}(c, iy, ix);
        }
        px += 1u;
        ox += 1u;
        if (ox == ip.ow) {
            ox = 0u;
            oy += 1u;
        }
    }
// #end
    textureStore(out, vec2<u32>(t, k), v);
}
// #end

// n / d for n < 2^24: lavapipe divides integers lane by lane (8 scalar divisions per batch),
// floats in one vector instruction. The f32 quotient is within one of the true one (n and d
// exact, one rounding), and the product corrects it.
fn quotient(n: u32, d: u32) -> u32 {
    var q = u32(f32(n) / f32(d));
    q -= select(0u, 1u, q * d > n);
    q += select(0u, 1u, (q + 1u) * d <= n);
    return q;
}

// im2col_texture for stride 1 with W and OW multiples of 4 (every unstrided 3x3 conv of the
// backbone): a texel's four output pixels lie in one input row, in at most two of its texels
// and at the same offset for all of row k, so an output texel costs two inline loads and a
// shuffle where im2col_texture loads a whole texel per pixel.
// A lane makes STRIDE1_RUN consecutive texels of row k: the divisions that place the first
// one are shared, and the others step along the output row (set by src/ops/conv2d.rs, which
// sizes the grid by it).
override STRIDE1_RUN: u32 = 4u;

@compute @workgroup_size(64, 1, 1)
fn im2col_texture_stride1(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let k = wid.y;
    let first = (wid.x * 64u + lid) * STRIDE1_RUN;
    let khw = ip.kh * ip.kw;
    if (k >= ip.c * khw || first >= ip.texels) {
        return;
    }
    let c = quotient(k, khw);
    let kyx = k - c * khw;
    let ky = quotient(kyx, ip.kw);
    let kx = i32(kyx - ky * ip.kw);
    // ix = 4 * a + shift with 0 <= shift < 4 (ix may be negative: floor, not truncation).
    let shift = ((kx - i32(ip.pad_left)) % 4 + 4) % 4;
    let row = i32(ip.image + c);
    // OW a multiple of 4: the texel's first pixel starts a quad of its output row.
    var oy = quotient(4u * first, ip.ow);
    var ox = i32(4u * first - oy * ip.ow);
    for (var j = 0u; j < STRIDE1_RUN; j++) {
        let t = first + j;
        if (t < ip.texels) {
            let iy = i32(oy + ky) - i32(ip.pad_top);
            let ix = ox + kx - i32(ip.pad_left);
            let a = (ix - shift) / 4;
            // W a multiple of 4: input row iy starts a texel. Loads left of, right of, above
            // or below the image read some other texel (or zero) and are masked below.
            let at = iy * i32(ip.w / 4u) + a;
            let t0 = textureLoad(src, vec2<i32>(at, row));
            let t1 = textureLoad(src, vec2<i32>(at + 1, row));
            var v = t0;
            v = select(v, vec4<f32>(t0.y, t0.z, t0.w, t1.x), shift == 1);
            v = select(v, vec4<f32>(t0.z, t0.w, t1.x, t1.y), shift == 2);
            v = select(v, vec4<f32>(t0.w, t1.x, t1.y, t1.z), shift == 3);
            let xs = vec4<i32>(ix) + vec4<i32>(0, 1, 2, 3);
            // (WGSL wants parentheses between comparisons and `&`; naga lets them go, Tint
            // does not.)
            let row_inside = iy >= 0 && iy < i32(ip.h);
            let inside = (xs >= vec4<i32>(0)) & (xs < vec4<i32>(i32(ip.w))) & vec4<bool>(row_inside);
            textureStore(out, vec2<u32>(t, k), select(vec4<f32>(0.0), v, inside));
        }
        ox += 4;
        if (ox == i32(ip.ow)) {
            ox = 0;
            oy += 1u;
        }
    }
}

