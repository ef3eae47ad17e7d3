mod common;

use common::{assert_close, gpu, random};
use vit_hybrid::ops::Program;
use vit_hybrid::ops::linear::{self, Variant};

/// Runs `variant` (or the one `record` picks) on one shape and compares with the CPU reference.
#[allow(clippy::too_many_arguments)]
fn check_variant(
    variant: Option<Variant>,
    m: usize,
    n: usize,
    k: usize,
    stride: usize,
    gelu: bool,
    bias: bool,
    residual: bool,
) {
    let g = gpu();
    // x holds exactly m rows of `stride`: the last row's tail past k is not padded.
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
    let (bias_b, res_b) = (bias.then_some(&bb), residual.then_some(&rb));
    match variant {
        Some(v) => linear::record_variant(&g, &mut p, shape, v, &xb, &wb, bias_b, res_b, &yb),
        None => linear::record(&g, &mut p, shape, &xb, &wb, bias_b, res_b, &yb),
    }
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
        &format!("linear {variant:?} {m}x{n}x{k} stride {stride} gelu {gelu}"),
        &got,
        &want,
        1e-5,
        1e-4,
    );
}

fn check(m: usize, n: usize, k: usize, stride: usize, gelu: bool, bias: bool, residual: bool) {
    check_variant(None, m, n, k, stride, gelu, bias, residual);
}

const ALL: [Variant; 3] = [Variant::Scalar, Variant::Vec4, Variant::Vec4Cpu];

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
    // The same with vec4-friendly sizes, as the real head (rows 577*768 apart).
    for v in ALL {
        check_variant(Some(v), 3, 10, 12, 5 * 12, false, true, false);
    }
}

#[test]
fn every_variant_at_tile_edges() {
    // M and N one past and one short of the 128 tile, K past one 16-step with a 4-wide tail.
    for v in ALL {
        check_variant(Some(v), 129, 127, 20, 20, true, true, true);
        check_variant(Some(v), 127, 129, 36, 40, false, true, false);
    }
}

#[test]
fn scalar_path_takes_any_k_and_stride() {
    // K not a multiple of 4 (tails of 1, 2, 3 in the last quad), and an odd row stride.
    check_variant(Some(Variant::Scalar), 9, 130, 5, 5, false, false, false);
    check_variant(Some(Variant::Scalar), 131, 6, 22, 22, true, true, false);
    check_variant(Some(Variant::Scalar), 4, 7, 35, 37, false, true, true);
    check_variant(Some(Variant::Scalar), 2, 3, 0, 0, false, true, true);
}

#[test]
#[should_panic(expected = "multiples of 4")]
fn vec4_variants_refuse_odd_k() {
    check_variant(Some(Variant::Vec4), 4, 4, 6, 6, false, false, false);
}
