mod common;

use common::{assert_close, gpu, random};
use vit_hybrid::ops::{Program, linear};

fn check(m: usize, n: usize, k: usize, stride: usize, gelu: bool, bias: bool, residual: bool) {
    let g = gpu();
    let x = random(1, m * stride, -1.0, 1.0);
    let w = random(2, n * k, -0.5, 0.5);
    let b = random(3, n, -0.5, 0.5);
    let r = random(4, m * n, -1.0, 1.0);
    let shape = linear::Linear {
        x_row_stride: stride,
        gelu,
        ..linear::Linear::new(m, n, k)
    };
    let (xb, wb, bb, rb) = (
        g.upload("x", &x),
        g.upload("w", &w),
        g.upload("b", &b),
        g.upload("r", &r),
    );
    let yb = g.storage("y", m * n);
    let mut p = Program::new();
    linear::record(
        &g,
        &mut p,
        shape,
        &xb,
        &wb,
        bias.then_some(&bb),
        residual.then_some(&rb),
        &yb,
    );
    p.run(&g).unwrap();
    let got = g.read(&yb, m * n).unwrap();
    let want = linear::cpu(
        shape,
        &x,
        &w,
        bias.then_some(&b[..]),
        residual.then_some(&r[..]),
    );
    assert_close(
        &format!("linear {m}x{n}x{k} stride {stride} gelu {gelu}"),
        &got,
        &want,
        1e-5,
        1e-4,
    );
}

#[test]
fn plain_awkward_sizes() {
    check(1, 1, 1, 1, false, false, false);
    check(67, 33, 19, 19, false, false, false);
    check(130, 70, 100, 100, false, true, false);
}

#[test]
fn bias_gelu_residual() {
    check(77, 129, 48, 48, true, true, false);
    check(65, 63, 17, 17, false, true, true);
    check(5, 40, 33, 33, true, true, true);
}

#[test]
fn strided_rows_pick_cls_tokens() {
    // The head reads one token of every image: rows 5*13 apart.
    check(3, 10, 13, 5 * 13, false, true, false);
}
