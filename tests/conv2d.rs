mod common;

use common::{assert_close, gpu, random};
use vit_hybrid::ops::Program;
use vit_hybrid::ops::conv2d::{self, Block, Conv2d, Fill, Variant};
use vit_hybrid::ops::matrix_texture::{MatrixTexture, Place, TexelFormat::F32};
use vit_hybrid::ops::to_texture;

/// Runs `shape` with the variant `record` picks (`None`) or a given one, against the CPU.
fn check_with(shape: Conv2d, bias: bool, variant: Option<Variant>) {
    let g = gpu();
    let x = random(1, shape.in_len(), -1.0, 1.0);
    let w = random(2, shape.weight_len(), -0.5, 0.5);
    let b = random(3, shape.cout, -0.5, 0.5);
    let (xb, wb, bb) = (g.upload("x", &x), g.upload("w", &w), g.upload("b", &b));
    let yb = g.storage("y", shape.out_len());
    let mut p = Program::new();
    let bias_b = bias.then_some(&bb);
    match variant {
        Some(v) => conv2d::record_variant(&g, &mut p, shape, v, &xb, &wb, bias_b, &yb),
        None => conv2d::record(&g, &mut p, shape, &xb, &wb, bias_b, &yb),
    }
    p.run(&g).unwrap();
    let got = g.read(&yb, shape.out_len()).unwrap();
    let want = conv2d::cpu(shape, &x, &w, bias.then_some(&b[..]));
    assert_close(
        &format!("conv2d {variant:?} {shape:?} bias {bias}"),
        &got,
        &want,
        2e-5,
        1e-4,
    );
}

fn check(shape: Conv2d, bias: bool) {
    check_with(shape, bias, None);
}

/// Runs `shape` through every variant that fits it; `fill` must be among them.
fn check_every_variant(shape: Conv2d, bias: bool, fill: Fill) {
    assert!(
        Variant::ALL.iter().any(|v| v.fill == fill && v.fits(shape)),
        "{fill:?} should fit {shape:?}"
    );
    for v in Variant::ALL.into_iter().filter(|v| v.fits(shape)) {
        check_with(shape, bias, Some(v));
    }
}

/// (out, pad before, pad after) of a SAME conv along the height.
fn same_h(x: usize, k: usize, s: usize) -> (usize, usize, usize) {
    let c = Conv2d::same(1, 1, x, x, 1, k, s);
    let after = ((c.oh - 1) * s + k).saturating_sub(x) - c.pad_top;
    (c.oh, c.pad_top, after)
}

#[test]
fn same_padding_arithmetic() {
    assert_eq!(same_h(384, 7, 2), (192, 2, 3));
    assert_eq!(same_h(72, 7, 2), (36, 2, 3));
    assert_eq!(same_h(96, 3, 2), (48, 0, 1));
    assert_eq!(same_h(9, 3, 2), (5, 1, 1));
    assert_eq!(same_h(24, 1, 2), (12, 0, 0));
    assert_eq!(same_h(96, 3, 1), (96, 1, 1));
    assert_eq!(same_h(96, 1, 1), (96, 0, 0));
    let c = Conv2d::same(2, 3, 13, 11, 8, 7, 2);
    assert_eq!((c.oh, c.ow, c.pad_top, c.pad_left), (7, 6, 3, 3));
    assert_eq!(c.out_len(), 2 * 8 * 7 * 6);
}

#[test]
fn valid_arithmetic() {
    let c = Conv2d::valid(2, 1024, 24, 24, 768, 1, 1);
    assert_eq!((c.oh, c.ow, c.pad_top, c.pad_left), (24, 24, 0, 0));
    let c = Conv2d::valid(1, 3, 9, 8, 5, 2, 2);
    assert_eq!((c.oh, c.ow), (4, 4));
}

#[test]
fn stem_7x7_stride2_odd() {
    check(Conv2d::same(2, 3, 13, 11, 8, 7, 2), false);
    check(Conv2d::same(1, 3, 20, 18, 70, 7, 2), false);
}

#[test]
fn k3_stride1() {
    check(Conv2d::same(2, 5, 9, 7, 37, 3, 1), false);
    check(Conv2d::same(1, 37, 10, 8, 70, 3, 1), false);
}

#[test]
fn k3_stride2() {
    check(Conv2d::same(2, 5, 9, 7, 37, 3, 2), false);
    check(Conv2d::same(2, 37, 10, 12, 70, 3, 2), false);
}

#[test]
fn k1_stride1_and_2() {
    check(Conv2d::same(2, 70, 9, 7, 37, 1, 1), false);
    check(Conv2d::same(2, 37, 9, 7, 70, 1, 2), false);
    check(Conv2d::same(1, 5, 10, 8, 5, 1, 2), false);
}

#[test]
fn valid_2x2_stride2_projection_with_bias() {
    check(Conv2d::valid(2, 37, 9, 7, 70, 2, 2), true);
    check(Conv2d::valid(2, 70, 6, 5, 37, 1, 1), true);
}

#[test]
fn more_than_65535_pixel_tiles() {
    // 2048 x 4100 pixels = 65600 tiles of 128: grid_1d must spread them over y.
    check(Conv2d::same(1, 1, 2048, 4100, 1, 1, 1), true);
}

#[test]
fn variants_fit_the_real_shapes() {
    let fits = |fill, block, shape| Variant { fill, block }.fits(shape);
    let c = |cin, hw, cout, k, s| Conv2d::same(1, cin, hw, hw, cout, k, s);
    // 1x1 stride 1 (and the patch projection) read x directly.
    assert!(fits(Fill::OneByOne, Block::Cpu, c(256, 96, 64, 1, 1)));
    assert!(fits(
        Fill::OneByOne,
        Block::Gpu,
        Conv2d::valid(1, 1024, 24, 24, 768, 1, 1)
    ));
    // Strided 1x1, 3x3 and the stem gather.
    assert!(!fits(Fill::OneByOne, Block::Cpu, c(256, 96, 512, 1, 2)));
    assert!(fits(Fill::Gather, Block::Cpu, c(256, 96, 512, 1, 2)));
    assert!(!fits(Fill::OneByOne, Block::Cpu, c(64, 96, 64, 3, 1)));
    assert!(fits(Fill::Gather, Block::Cpu, c(128, 96, 128, 3, 2)));
    assert!(
        !fits(Fill::Gather, Block::Cpu, c(3, 384, 64, 7, 2)),
        "K = 147"
    );
    // vec4 pixels need oh * ow % 4 == 0, vec4 weights K % 4 == 0.
    assert!(!fits(Fill::Gather, Block::Cpu, c(4, 7, 8, 3, 1)));
    assert!(!fits(Fill::OneByOne, Block::Cpu, c(6, 8, 8, 1, 1)));
    assert!(fits(Fill::Generic, Block::CpuNarrow, c(3, 7, 8, 7, 2)));
    // Empty sizes stay on the scalar path.
    assert!(!fits(
        Fill::Gather,
        Block::Cpu,
        Conv2d::same(1, 0, 8, 8, 8, 3, 1)
    ));
}

#[test]
fn one_by_one_variants() {
    // 100 pixels: one partial tile; K = 20: one full and one partial K step.
    check_every_variant(Conv2d::same(1, 20, 10, 10, 70, 1, 1), false, Fill::OneByOne);
    // Two images of 20 pixels share a tile; 129 couts spill into a second cout tile; K = 4.
    check_every_variant(Conv2d::same(2, 4, 4, 5, 129, 1, 1), true, Fill::OneByOne);
    // 132 pixels (a tile and a bit), 36 couts.
    check_every_variant(Conv2d::valid(1, 36, 12, 11, 36, 1, 1), true, Fill::OneByOne);
}

#[test]
fn gather_variants() {
    // 3x3 stride 1 with padding, K = 36 (not a multiple of 16), two images.
    check_every_variant(Conv2d::same(2, 4, 6, 10, 37, 3, 1), false, Fill::Gather);
    // 3x3 stride 2: odd input, SAME pad 1 on both sides; 66 couts: two 64-cout tiles for narrow.
    check_every_variant(Conv2d::same(1, 8, 15, 15, 66, 3, 2), true, Fill::Gather);
    // Strided 1x1 (downsample): 4 images of 6x6 outputs, one across the pixel-tile boundary.
    check_every_variant(Conv2d::same(4, 12, 12, 12, 130, 1, 2), false, Fill::Gather);
    // 2x2 'valid' patches.
    check_every_variant(Conv2d::valid(2, 16, 8, 8, 20, 2, 2), true, Fill::Gather);
}

#[test]
fn generic_variants() {
    // Stem-like: K = 147, 35 output pixels per image, batch 2.
    check_every_variant(Conv2d::same(2, 3, 13, 9, 20, 7, 2), true, Fill::Generic);
    // 1x1 with an odd pixel count and K.
    check_every_variant(Conv2d::same(2, 5, 3, 7, 131, 1, 1), false, Fill::Generic);
}

/// The signature of conv2d's texture paths.
type TextureRecord = fn(
    &vit_hybrid::Gpu,
    &mut Program,
    Conv2d,
    Place<'_>,
    &MatrixTexture,
    Option<&wgpu::Buffer>,
    Place<'_>,
);

/// Runs `shape` through one of conv2d's texture paths against the CPU; false (after saying
/// so) where the adapter is not a CPU adapter and the path is not used.
fn check_texture_path(
    path: &str,
    shape: Conv2d,
    bias: bool,
    fits: fn(&vit_hybrid::Gpu, Conv2d) -> bool,
    record: TextureRecord,
) -> bool {
    let g = gpu();
    if !fits(&g, shape) {
        assert!(!g.cpu_kernels(), "{shape:?} should fit");
        eprintln!("{}: not a CPU adapter, {path} path not used", g.info.name);
        return false;
    }
    let x = random(1, shape.in_len(), -1.0, 1.0);
    let wv = random(2, shape.weight_len(), -0.5, 0.5);
    let b = random(3, shape.cout, -0.5, 0.5);
    let want = conv2d::cpu(shape, &x, &wv, bias.then_some(&b[..]));
    let (xb, bb) = (g.upload("x", &x), g.upload("b", &b));
    let wt = conv2d::texture_weight(&g, "w", &wv, shape.cout, shape.k()).unwrap();
    // x and y each in a buffer or in a texture (a group norm's output and a conv product's,
    // as the backbone has them on CPU adapters), the input texture as wide as the backbone
    // allocates it.
    let (hw, ohw) = (shape.h * shape.w, shape.oh * shape.ow);
    let x_rows = shape.batch * shape.cin;
    let width = conv2d::input_texture_width(hw);
    let xt = MatrixTexture::new_padded(&g, "x", (x_rows, hw), (x_rows, width), F32).unwrap();
    let y_rows = shape.batch * shape.cout;
    let yt = MatrixTexture::new(&g, "y", y_rows, ohw, y_rows, F32).unwrap();
    for (x_texture, y_texture) in [(false, false), (true, false), (false, true), (true, true)] {
        let yb = g.storage("y", shape.out_len());
        let mut p = Program::new();
        if x_texture {
            to_texture::record(&g, &mut p, &xb, hw, &xt);
        }
        let x_place = if x_texture {
            Place::Texture(&xt)
        } else {
            Place::Buffer(&xb)
        };
        let y_place = if y_texture {
            Place::Texture(&yt)
        } else {
            Place::Buffer(&yb)
        };
        record(
            &g,
            &mut p,
            shape,
            x_place,
            &wt,
            bias.then_some(&bb),
            y_place,
        );
        p.run(&g).unwrap();
        let got = if y_texture {
            yt.read(&g).unwrap()
        } else {
            g.read(&yb, shape.out_len()).unwrap()
        };
        assert_close(
            &format!(
                "conv2d {path} texture {shape:?} bias {bias}, x in a texture {x_texture}, \
                 y in a texture {y_texture}"
            ),
            &got,
            &want,
            2e-5,
            1e-4,
        );
    }
    true
}

/// CPU adapters run 1x1 stride-1 convs as linear's texture product, one per image: a batch
/// of 3 with an odd pixel count and cout, few input channels, with and without a per-channel
/// bias.
#[test]
fn texture_1x1_product_matches_the_reference() {
    for (batch, cin, h, w, cout, bias) in [
        (3, 128, 5, 7, 19, true),
        (1, 132, 9, 9, 64, false),
        (2, 128, 4, 4, 8, true),
        (2, 4, 7, 5, 9, true),
        (1, 64, 6, 6, 256, false),
    ] {
        let shape = Conv2d::same(batch, cin, h, w, cout, 1, 1);
        let (fits, record) = (conv2d::texture_1x1_fits, conv2d::record_1x1_texture);
        if !check_texture_path("1x1", shape, bias, fits, record) {
            return;
        }
    }
}

/// CPU adapters run every other conv as im2col into a texture and a texture product: SAME 3x3
/// (stride 1 and 2), 7x7/2 stems (3 input channels: 147-long patches), strided 1x1s, a 1x1
/// with an input channel count that is not a multiple of 4, a valid 2x2 patch conv with a
/// bias, batches of 2-3 and odd sizes.
#[test]
fn texture_im2col_product_matches_the_reference() {
    let cases = [
        (Conv2d::same(2, 120, 9, 11, 19, 3, 1), false),
        (Conv2d::same(3, 114, 10, 7, 8, 3, 2), false),
        (Conv2d::same(1, 21, 29, 30, 16, 7, 2), false),
        (Conv2d::same(2, 1030, 5, 5, 12, 1, 2), false),
        (Conv2d::valid(2, 257, 8, 6, 20, 2, 2), true),
        (Conv2d::same(2, 3, 23, 18, 10, 7, 2), true),
        (Conv2d::same(1, 64, 12, 12, 64, 3, 1), false),
        (Conv2d::same(2, 12, 9, 9, 24, 1, 2), false),
        (Conv2d::same(1, 6, 5, 5, 7, 1, 1), true),
        // Unstrided over whole-texel rows (im2col_texture_stride1): every offset into a texel
        // (5x5: 2 left of 0 to 2 right), an output narrower than the input, h != w.
        (Conv2d::same(2, 5, 7, 16, 6, 5, 1), true),
        (Conv2d::valid(1, 9, 6, 12, 10, 5, 1), false),
        (Conv2d::same(2, 17, 4, 8, 9, 3, 1), false),
        // Rows of more texels than one workgroup's lanes make (STRIDE1_RUN each).
        (Conv2d::same(1, 4, 36, 32, 8, 3, 1), false),
    ];
    // A buffer input is copied one image row per texture row (im2col_rows) unless its
    // batch * cin * h rows are past the adapter's texture limit: then im2col reads the buffer.
    let limit = gpu().limits().max_texture_dimension_2d as usize;
    let tall = Conv2d::same(1, 3, limit / 3 + 1, 4, 4, 3, 2);
    for (shape, bias) in cases.into_iter().chain([(tall, true)]) {
        let (fits, record) = (conv2d::texture_im2col_fits, conv2d::record_im2col_texture);
        if !check_texture_path("im2col", shape, bias, fits, record) {
            return;
        }
    }
}
