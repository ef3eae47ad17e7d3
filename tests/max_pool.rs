mod common;

use common::{assert_close, gpu, random};
use vit_hybrid::ops::matrix_texture::{MatrixTexture, TexelFormat};
use vit_hybrid::ops::{Program, conv2d, max_pool, max_pool::MaxPool};

/// The buffer kernel's output, and the texture kernel's where the shape fits it.
fn run(shape: MaxPool, x: &[f32]) -> Vec<(&'static str, Vec<f32>)> {
    let g = gpu();
    let xb = g.upload("x", x);
    let yb = g.storage("y", shape.out_len());
    let mut p = Program::new();
    max_pool::record(&g, &mut p, shape, &xb, &yb);
    p.run(&g).unwrap();
    let mut out = vec![("buffers", g.read(&yb, shape.out_len()).unwrap())];
    let rows = shape.batch * shape.c;
    let (hw, ohw) = (shape.h * shape.w, shape.oh * shape.ow);
    if max_pool::texture_fits(&g, shape) {
        let xt = MatrixTexture::upload(&g, "x", x, (rows, hw), rows, TexelFormat::F32).unwrap();
        // As the backbone allocates it: as wide as the next conv reads, stale past ohw.
        let width = conv2d::input_texture_width(ohw);
        let yt = MatrixTexture::upload(
            &g,
            "y",
            &vec![f32::NAN; rows * width],
            (rows, width),
            rows,
            TexelFormat::F32,
        )
        .unwrap();
        let mut p = Program::new();
        max_pool::record_texture(&g, &mut p, shape, &xt, &yt);
        p.run(&g).unwrap();
        let y = yt.read(&g).unwrap();
        let dense = y.chunks(width).flat_map(|r| r[..ohw].to_vec()).collect();
        out.push(("textures", dense));
    } else {
        assert!(
            !g.info.name.contains("llvmpipe"),
            "{shape:?} fits lavapipe's textures: the texture kernel must run"
        );
    }
    out
}

fn check(shape: MaxPool, lo: f32, hi: f32) -> Vec<f32> {
    let x = random(7, shape.batch * shape.c * shape.h * shape.w, lo, hi);
    let want = max_pool::cpu(shape, &x);
    let outs = run(shape, &x);
    for (path, got) in &outs {
        assert_close(&format!("max_pool {path} {shape:?}"), got, &want, 0.0, 0.0);
    }
    outs.into_iter().next().unwrap().1
}

#[test]
fn same_padding_arithmetic() {
    // The real stem: 192 -> 96, one pad row/column, at the bottom/right.
    let s = MaxPool::same(1, 64, 192, 192, 3, 2);
    assert_eq!((s.oh, s.ow, s.pad_top, s.pad_left), (96, 96, 0, 0));
    let s = MaxPool::same(2, 3, 13, 10, 3, 2);
    assert_eq!((s.oh, s.ow, s.pad_top, s.pad_left), (7, 5, 1, 0));
    assert_eq!(s.out_len(), 2 * 3 * 7 * 5);
}

#[test]
fn odd_and_even_sizes() {
    check(MaxPool::same(2, 5, 13, 11, 3, 2), -1.0, 1.0);
    check(MaxPool::same(2, 5, 12, 10, 3, 2), -1.0, 1.0);
    check(MaxPool::same(1, 3, 9, 14, 3, 1), -1.0, 1.0);
}

#[test]
fn padding_counts_as_zero() {
    // All-negative input: only windows that reach the padding may return 0.
    let shape = MaxPool::same(2, 3, 13, 12, 3, 2);
    assert_eq!((shape.pad_top, shape.pad_left), (1, 0));
    let got = check(shape, -2.0, -0.5);
    for plane in 0..shape.batch * shape.c {
        for oy in 0..shape.oh {
            for ox in 0..shape.ow {
                let v = got[(plane * shape.oh + oy) * shape.ow + ox];
                // Row 0 reaches the top pad, the last row and column the bottom/right pad
                // (13 -> 7: total pad 2; 12 -> 6: total pad 1, after).
                let border = oy == 0 || oy == shape.oh - 1 || ox == shape.ow - 1;
                if border {
                    assert_eq!(v, 0.0, "plane {plane} ({oy}, {ox}) should see the zero pad");
                } else {
                    assert!(
                        v < 0.0,
                        "plane {plane} ({oy}, {ox}) = {v} is inside, should stay negative"
                    );
                }
            }
        }
    }
}

/// A NaN in a window makes its output NaN in both kernels (PyTorch's max_pool2d keeps it).
#[test]
fn nan_is_kept() {
    let shape = MaxPool::same(1, 2, 9, 8, 3, 2);
    let mut x = random(9, 2 * 9 * 8, -1.0, 1.0);
    x[9 * 8 + 3 * 8 + 4] = f32::NAN; // plane 1, row 3, column 4
    let want = max_pool::cpu(shape, &x);
    assert!(
        want[20 + 4 + 2].is_nan(),
        "the reference keeps it: {:?}",
        &want[20..]
    );
    for (path, got) in run(shape, &x) {
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(
                g.is_nan(),
                w.is_nan(),
                "{path}: output {i}: {g} against {w}"
            );
            if !w.is_nan() {
                assert_eq!(g, w, "{path}: output {i}");
            }
        }
    }
}
