mod common;

use common::{assert_close, gpu, random};
use vit_hybrid::ops::group_norm::Variant;
use vit_hybrid::ops::matrix_texture::{MatrixTexture, Place, TexelFormat};
use vit_hybrid::ops::{Program, group_norm, to_texture};

/// Runs one GroupNorm on `offset + uniform(-1, 1)` data and compares with the f64 reference.
fn check(batch: usize, c: usize, hw: usize, groups: usize, relu: bool, offset: f32) {
    check_with(batch, c, hw, groups, relu, offset, false);
}

/// [`check`], optionally adding a residual before the ReLU (a bottleneck's last norm).
fn check_with(
    batch: usize,
    c: usize,
    hw: usize,
    groups: usize,
    relu: bool,
    offset: f32,
    add_residual: bool,
) {
    let g = gpu();
    let shape = group_norm::GroupNorm {
        batch,
        c,
        hw,
        groups,
        eps: 1e-5,
        relu,
    };
    let seed = (batch * 7 + c * 13 + hw * 17 + groups) as u64;
    let x: Vec<f32> = random(seed, batch * c * hw, -1.0, 1.0)
        .iter()
        .map(|v| v + offset)
        .collect();
    let gamma = random(seed + 1, c, 0.5, 1.5);
    let beta = random(seed + 2, c, -0.5, 0.5);
    let residual = random(seed + 3, x.len(), -1.5, 1.5);
    let residual = add_residual.then_some(&residual[..]);
    let want = group_norm::cpu(shape, &x, &gamma, &beta, residual);
    for v in [Variant::Workgroup, Variant::Slices] {
        if !v.fits(shape) {
            continue;
        }
        let (xb, gb, bb) = (
            g.upload("x", &x),
            g.upload("gamma", &gamma),
            g.upload("beta", &beta),
        );
        let rb = residual.map(|r| g.upload("residual", r));
        let mut p = Program::new();
        group_norm::record_variant(&g, &mut p, shape, v, &xb, &gb, &bb, rb.as_ref());
        p.run(&g).unwrap();
        let got = g.read(&xb, x.len()).unwrap();
        assert_close(
            &format!("group_norm {v:?} {shape:?} offset {offset} residual {add_residual}"),
            &got,
            &want,
            2e-5,
            1e-4,
        );
    }
    // The slices variant reading x from a matrix texture (a conv product's output on CPU
    // adapters), on any adapter.
    if Variant::Slices.fits(shape) {
        let rows = batch * c;
        let xt = MatrixTexture::upload(&g, "x", &x, (rows, hw), rows, TexelFormat::F32).unwrap();
        let (gb, bb) = (g.upload("gamma", &gamma), g.upload("beta", &beta));
        let rb = residual.map(|r| g.upload("residual", r));
        let yb = g.storage("y", x.len());
        let mut p = Program::new();
        let (y, r) = (Place::Buffer(&yb), rb.as_ref().map(Place::Buffer));
        group_norm::record_from_texture(&g, &mut p, shape, &xt, y, &gb, &bb, r);
        p.run(&g).unwrap();
        let got = g.read(&yb, x.len()).unwrap();
        assert_close(
            &format!("group_norm from a texture {shape:?} offset {offset} residual {add_residual}"),
            &got,
            &want,
            2e-5,
            1e-4,
        );
        // Texture to texture, the residual from a texture (the backbone's layout on CPU
        // adapters), both textures wider than the matrix as the next conv wants them.
        let width = hw.next_multiple_of(96);
        let upload = |name: &str, v: &[f32]| {
            let t =
                MatrixTexture::new_padded(&g, name, (rows, hw), (rows, width), TexelFormat::F32)
                    .unwrap();
            let b = g.upload(name, v);
            (t, b)
        };
        let (yt, _) = upload("y", &x);
        let rt = residual.map(|r| upload("residual", r));
        let mut p = Program::new();
        if let Some((t, b)) = &rt {
            to_texture::record(&g, &mut p, b, hw, t);
        }
        let r = rt.as_ref().map(|(t, _)| Place::Texture(t));
        group_norm::record_from_texture(&g, &mut p, shape, &xt, Place::Texture(&yt), &gb, &bb, r);
        p.run(&g).unwrap();
        assert_close(
            &format!(
                "group_norm texture to texture {shape:?} offset {offset} residual {add_residual}"
            ),
            &yt.read(&g).unwrap(),
            &want,
            2e-5,
            1e-4,
        );
    }
}

#[test]
fn one_element_groups_give_beta() {
    // Variance 0: every output is beta (or ReLU(beta)).
    check(2, 5, 1, 5, false, 0.0);
    check(1, 7, 1, 7, true, 0.0);
}

#[test]
fn one_channel_per_group() {
    check(2, 6, 37, 6, false, 0.0);
    check(1, 3, 300, 3, true, 0.0);
}

#[test]
fn odd_sizes_batch_3() {
    check(3, 12, 13 * 13, 4, false, 0.0);
    check(3, 12, 13 * 13, 4, true, 0.0);
    check(3, 10, 7, 2, true, 0.0);
    check(1, 9, 11, 1, false, 0.0);
}

#[test]
fn large_common_offset() {
    // E[x^2] - E[x]^2 in f32 would be off by ~1e-3 relative here; two passes are not. (An
    // offset far past 100 x std costs the f32 mean ulp(offset) / 2 / std: it is no test of this.)
    check(2, 8, 31 * 31, 2, false, 100.0);
    check(1, 4, 513, 4, true, -100.0);
    // The same through the slices (HW a multiple of 4).
    check(1, 8, 32 * 32, 2, false, 100.0);
}

#[test]
fn big_group() {
    // Many elements per invocation: 8 channels x 48x48 pixels per group.
    check(1, 16, 48 * 48, 2, true, 3.0);
    // The stem's and stage 1's group: 8 channels x 96x96 pixels.
    check(1, 16, 96 * 96, 2, false, 0.5);
    // Fewer vec4s than slices, and runs that end mid-chunk.
    check(2, 4, 4, 2, true, 0.0);
    check(1, 6, 4 * 37, 3, false, 1.0);
}

#[test]
fn residual_before_relu() {
    // ReLU(norm(x) + residual) in one pass, through both variants where HW allows.
    check_with(2, 8, 6 * 6, 4, true, 0.0, true);
    check_with(3, 12, 13 * 13, 4, true, 1.0, true);
    check_with(1, 6, 4 * 37, 3, false, 0.0, true);
}
