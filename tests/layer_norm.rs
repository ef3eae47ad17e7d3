mod common;

use common::{assert_close, gpu, random};
use vit_hybrid::ops::layer_norm::Variant;
use vit_hybrid::ops::matrix_texture::{MatrixTexture, Place, TexelFormat::F32};
use vit_hybrid::ops::{Program, layer_norm, to_texture};

/// Every variant that takes `shape`, storing into a buffer and into a matrix texture; each
/// result with its name.
fn run_all(
    shape: layer_norm::LayerNorm,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
) -> Vec<(String, Vec<f32>)> {
    let g = gpu();
    let xb = g.upload("x", x);
    let chosen = layer_norm::Affine::upload(&g, "ln", gamma, beta).unwrap();
    assert_eq!(
        chosen.variant(),
        if g.cpu_kernels() && shape.dim.is_multiple_of(4) {
            Variant::Rows
        } else {
            Variant::Workgroup
        },
        "gamma and beta as a texture wherever Rows can run, buffers elsewhere"
    );
    // x in a texture too: the encoder's residual stream on CPU adapters.
    let xt = MatrixTexture::new(&g, "x", shape.rows, shape.dim, shape.rows, F32).unwrap();
    let mut fill = Program::new();
    to_texture::record(&g, &mut fill, &xb, shape.dim, &xt);
    fill.run(&g).unwrap();
    let mut out = Vec::new();
    for v in [Variant::Workgroup, Variant::Rows] {
        if !v.fits(shape) {
            assert!(
                layer_norm::Affine::upload_for(&g, "ln", gamma, beta, v).is_err(),
                "{v:?} cannot take {shape:?}: its affine upload says so"
            );
            continue;
        }
        let affine = layer_norm::Affine::upload_for(&g, "ln", gamma, beta, v).unwrap();
        for (from, x) in [
            ("buffer", Place::Buffer(&xb)),
            ("texture", Place::Texture(&xt)),
        ] {
            let yb = g.storage("y", x_len(shape));
            let mut p = Program::new();
            layer_norm::record(&g, &mut p, shape, x, &affine, Place::Buffer(&yb));
            p.run(&g).unwrap();
            let name = format!("{v:?} from a {from} to a buffer");
            out.push((name, g.read(&yb, x_len(shape)).unwrap()));
            let yt =
                MatrixTexture::new(&g, "y", shape.rows, shape.dim, shape.rows + 3, F32).unwrap();
            let mut p = Program::new();
            layer_norm::record(&g, &mut p, shape, x, &affine, Place::Texture(&yt));
            p.run(&g).unwrap();
            out.push((
                format!("{v:?} from a {from} to a texture"),
                yt.read(&g).unwrap(),
            ));
        }
    }
    out
}

fn x_len(shape: layer_norm::LayerNorm) -> usize {
    shape.rows * shape.dim
}

/// Runs one LayerNorm on `offset + uniform(-1, 1)` data and compares with the f64 reference.
fn check(rows: usize, dim: usize, eps: f32, offset: f32) {
    let shape = layer_norm::LayerNorm { rows, dim, eps };
    let seed = (rows * 31 + dim) as u64;
    let x: Vec<f32> = random(seed, rows * dim, -1.0, 1.0)
        .iter()
        .map(|v| v + offset)
        .collect();
    let gamma = random(seed + 1, dim, 0.5, 1.5);
    let beta = random(seed + 2, dim, -0.5, 0.5);
    let want = layer_norm::cpu(shape, &x, &gamma, &beta);
    for (name, got) in run_all(shape, &x, &gamma, &beta) {
        assert_close(
            &format!("layer_norm {name} {shape:?} offset {offset}"),
            &got,
            &want,
            2e-5,
            1e-4,
        );
    }
}

#[test]
fn awkward_sizes() {
    for &(rows, dim) in &[
        (1, 1),
        (7, 1),
        (1, 24),
        (7, 24),
        (600, 24),
        (1, 48),
        (600, 48),
        (1, 769),
        (7, 769),
        (600, 769),
        (65, 768),
        (3, 4),
    ] {
        check(rows, dim, 1e-12, 0.0);
    }
    check(5, 769, 1e-5, 0.0);
}

#[test]
fn large_common_offset() {
    check(7, 769, 1e-12, 100.0);
    check(3, 48, 1e-12, -100.0);
}

#[test]
fn constant_rows_give_beta() {
    constant_rows(769);
    constant_rows(768);
}

fn constant_rows(dim: usize) {
    // Variance 0 with eps 1e-12 scales any error in x - mean by 1e6; there must be none.
    let values = [0.0f32, 0.1, 1.0 / 3.0, -123.456, 7e5];
    let shape = layer_norm::LayerNorm {
        rows: values.len(),
        dim,
        eps: 1e-12,
    };
    let x: Vec<f32> = values
        .iter()
        .flat_map(|&v| std::iter::repeat_n(v, dim))
        .collect();
    let gamma = random(1, dim, 0.5, 1.5);
    let beta = random(2, dim, -0.5, 0.5);
    let want: Vec<f32> = values.iter().flat_map(|_| beta.iter().copied()).collect();
    assert_eq!(
        layer_norm::cpu(shape, &x, &gamma, &beta),
        want,
        "cpu reference"
    );
    for (name, got) in run_all(shape, &x, &gamma, &beta) {
        assert_close(
            &format!("layer_norm {name} constant rows"),
            &got,
            &want,
            1e-6,
            0.0,
        );
    }
}
