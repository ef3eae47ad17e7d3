mod common;

use common::{assert_close, gpu, random};
use vit_hybrid::ops::{Program, conv2d, conv2d::Conv2d};

fn check(shape: Conv2d, bias: bool) {
    let g = gpu();
    let x = random(1, shape.in_len(), -1.0, 1.0);
    let w = random(2, shape.weight_len(), -0.5, 0.5);
    let b = random(3, shape.cout, -0.5, 0.5);
    let (xb, wb, bb) = (g.upload("x", &x), g.upload("w", &w), g.upload("b", &b));
    let yb = g.storage("y", shape.out_len());
    let mut p = Program::new();
    conv2d::record(&g, &mut p, shape, &xb, &wb, bias.then_some(&bb), &yb);
    p.run(&g).unwrap();
    let got = g.read(&yb, shape.out_len()).unwrap();
    let want = conv2d::cpu(shape, &x, &w, bias.then_some(&b[..]));
    assert_close(
        &format!("conv2d {shape:?} bias {bias}"),
        &got,
        &want,
        2e-5,
        1e-4,
    );
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
    // 1024 x 4097 pixels = 65552 tiles of 64: grid_1d must spread them over y.
    check(Conv2d::same(1, 1, 1024, 4097, 1, 1, 1), true);
}
