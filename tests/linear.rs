mod common;

use common::{assert_close, gpu, random};
use vit_hybrid::ops::Program;
use vit_hybrid::ops::linear::{self, Input, Output, Variant, Weight, WeightFormat, WeightLayout};
use vit_hybrid::ops::matrix_texture::Place;

/// Which entry point a case runs: the one `record` picks for a weight format, or a given one.
#[derive(Clone, Copy, Debug)]
enum Pick {
    Auto(WeightFormat),
    Only(Variant),
}

/// Runs one shape and compares with the CPU reference (on f16-rounded weights for f16 runs).
#[allow(clippy::too_many_arguments)]
fn check_pick(
    pick: Pick,
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
    let format = match pick {
        Pick::Auto(f) => f,
        Pick::Only(v) => v.format(),
    };
    let wb = match pick {
        Pick::Auto(_) => Weight::upload(&g, "w", &w, n, k, format).unwrap(),
        Pick::Only(v) => Weight::upload_in(&g, "w", &w, (n, k), format, v.layout()).unwrap(),
    };
    let (xb, bb, rb) = (g.upload("x", &x), g.upload("b", &b), g.upload("r", &r));
    let yb = g.storage("y", m * n);
    let mut p = Program::new();
    let (bias_b, res_b) = (bias.then_some(&bb), residual.then_some(&rb));
    match pick {
        Pick::Only(v) => linear::record_variant(&g, &mut p, shape, v, &xb, &wb, bias_b, res_b, &yb),
        Pick::Auto(_) => linear::record(&g, &mut p, shape, &xb, &wb, bias_b, res_b, &yb),
    }
    p.run(&g).unwrap();
    let got = g.read(&yb, m * n).unwrap();
    let w_used = match format {
        WeightFormat::F32 => w,
        WeightFormat::F16 => linear::round_f16(&w),
    };
    let want = linear::cpu(
        shape,
        &x,
        &w_used,
        bias.then_some(&b[..]),
        residual.then_some(&r[..]),
    );
    assert_close(
        &format!("linear {pick:?} {m}x{n}x{k} stride {stride} gelu {gelu}"),
        &got,
        &want,
        1e-5,
        1e-4,
    );
}

fn check_variant(
    v: Variant,
    (m, n, k, stride): (usize, usize, usize, usize),
    gelu: bool,
    bias: bool,
    residual: bool,
) {
    check_pick(Pick::Only(v), m, n, k, stride, gelu, bias, residual);
}

fn check(m: usize, n: usize, k: usize, stride: usize, gelu: bool, bias: bool, residual: bool) {
    let formats = if linear::f16_supported(&gpu()) {
        &[WeightFormat::F32, WeightFormat::F16][..]
    } else {
        &[WeightFormat::F32]
    };
    for &f in formats {
        check_pick(Pick::Auto(f), m, n, k, stride, gelu, bias, residual);
    }
}

/// Every variant this device can run (native f16 loads need SHADER_F16; llvmpipe without it
/// cannot run any f16 variant; the subgroup variants need subgroups of 8 or more, which
/// lavapipe has).
fn runnable() -> Vec<Variant> {
    let g = gpu();
    let native = g.device.features().contains(wgpu::Features::SHADER_F16);
    let f16 = linear::f16_supported(&g);
    let subgroups = linear::subgroups_fit(&g);
    if !native {
        eprintln!(
            "no SHADER_F16 on {}: native f16 variants not run",
            g.info.name
        );
    }
    if !subgroups {
        eprintln!("no subgroups on {}: subgroup variants not run", g.info.name);
    }
    assert!(
        subgroups || !g.info.name.contains("llvmpipe"),
        "lavapipe has subgroups of 8, but the device was opened without them"
    );
    Variant::ALL
        .into_iter()
        .filter(|v| {
            (native || !v.needs_shader_f16())
                && (f16 || v.format() == WeightFormat::F32)
                && (subgroups || !v.needs_subgroups())
        })
        .collect()
}

/// The texture variants this device can run.
fn texture_variants() -> Vec<Variant> {
    runnable()
        .into_iter()
        .filter(|v| v.layout() == WeightLayout::Texture)
        .collect()
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
    // The same with vec4-friendly sizes, as the real head (rows 577*768 apart).
    for v in runnable() {
        check_variant(v, (3, 10, 12, 5 * 12), false, true, false);
    }
}

#[test]
fn every_variant_at_tile_edges() {
    // M and N one past and one short of the 128 tile, K past one 16-step with a 4-wide tail.
    for v in runnable() {
        check_variant(v, (129, 127, 20, 20), true, true, true);
        check_variant(v, (127, 129, 36, 40), false, true, false);
    }
}

#[test]
fn scalar_paths_take_any_k_and_stride() {
    // K not a multiple of 4 (tails of 1, 2, 3 in the last quad; for f16 the padded weight
    // rows), and an odd row stride.
    let scalar = runnable().into_iter().filter(|v| {
        matches!(v, Variant::Scalar | Variant::F16Scalar) || v.layout() == WeightLayout::Texture
    });
    for v in scalar {
        check_variant(v, (9, 130, 5, 5), false, false, false);
        check_variant(v, (131, 6, 22, 22), true, true, false);
        check_variant(v, (4, 7, 35, 37), false, true, true);
        check_variant(v, (2, 3, 0, 0), false, true, true);
    }
}

#[test]
fn record_picks_the_weights_format() {
    let g = gpu();
    let shape = linear::Linear::new(577, 2304, 768);
    let f32_pick = Variant::choose(&g, shape, WeightFormat::F32);
    let f16_pick = Variant::choose(&g, shape, WeightFormat::F16);
    assert_eq!(f32_pick.format(), WeightFormat::F32);
    assert_eq!(f16_pick.format(), WeightFormat::F16);
    let native = g.device.features().contains(wgpu::Features::SHADER_F16);
    let odd = linear::Linear::new(5, 6, 7);
    if g.cpu_kernels() {
        // CPU adapters read both operands from storage textures, at any shape, sharing x rows
        // across the subgroup where they can.
        let (t32, t16) = if linear::subgroups_fit(&g) {
            (Variant::TextureF32Subgroup, Variant::TextureF16Subgroup)
        } else {
            (Variant::TextureF32, Variant::TextureF16)
        };
        assert_eq!((f32_pick, f16_pick), (t32, t16));
        assert_eq!(Variant::choose(&g, odd, WeightFormat::F16), t16);
    } else {
        assert_eq!(f16_pick.needs_shader_f16(), native, "{f16_pick:?}");
        assert_eq!(
            Variant::choose(&g, odd, WeightFormat::F16),
            Variant::F16Scalar
        );
    }
    eprintln!("{}: f32 -> {f32_pick:?}, f16 -> {f16_pick:?}", g.info.name);
}

#[test]
fn f16_weights_take_half_the_bytes() {
    let g = gpu();
    let w = random(5, 10 * 768, -1.0, 1.0);
    let buf = WeightLayout::Buffer;
    let full = Weight::upload_in(&g, "w", &w, (10, 768), WeightFormat::F32, buf).unwrap();
    let half = Weight::upload_in(&g, "w", &w, (10, 768), WeightFormat::F16, buf).unwrap();
    assert_eq!(full.bytes(), 4 * 10 * 768);
    assert_eq!(half.bytes(), 2 * 10 * 768);
    assert_eq!(half.buffer().unwrap().size(), half.bytes() as u64);
    // Odd K: rows padded to a multiple of 4 halves.
    let odd = Weight::upload_in(&g, "w", &w[..3 * 5], (3, 5), WeightFormat::F16, buf).unwrap();
    assert_eq!(odd.bytes(), 2 * 3 * 8);
    // Textures: rows padded to the 96-column tile, 8 bytes per f16 texel of 4.
    let tex = WeightLayout::Texture;
    let t32 = Weight::upload_in(&g, "w", &w, (10, 768), WeightFormat::F32, tex).unwrap();
    let t16 = Weight::upload_in(&g, "w", &w, (10, 768), WeightFormat::F16, tex).unwrap();
    assert_eq!(t32.bytes(), 96 * 192 * 16);
    assert_eq!(t16.bytes(), 96 * 192 * 8);
}

#[test]
fn f16_packing_puts_the_lower_half_first_and_pads_rows() {
    // 1.0 = 0x3c00, -2.0 = 0xc000, 0.5 = 0x3800; 1e-4 rounds to the nearest half.
    let words = linear::pack_f16(&[1.0, -2.0, 0.5, 0.5, 1.0, -2.0], 2, 3);
    assert_eq!(
        words,
        vec![0xc000_3c00, 0x0000_3800, 0x3c00_3800, 0x0000_c000]
    );
    let r = linear::round_f16(&[1e-4, 65504.0, 1.0 + 1.0 / 4096.0]);
    assert_eq!(r[1], 65504.0);
    assert_eq!(r[2], 1.0, "ties round to even");
    assert!((r[0] - 1e-4).abs() < 1e-7, "{}", r[0]);
}

#[test]
fn f16_weights_out_of_range_are_an_error() {
    let g = gpu();
    let err = Weight::upload(&g, "big", &[1.0, 7e4], 1, 2, WeightFormat::F16)
        .unwrap_err()
        .to_string();
    assert!(err.contains("outside f16's range"), "{err}");
    assert!(Weight::upload(&g, "big", &[1.0, 7e4], 1, 2, WeightFormat::F32).is_ok());
}

#[test]
#[should_panic(expected = "multiples of 4")]
fn vec4_variants_refuse_odd_k() {
    check_variant(Variant::Vec4, (4, 4, 6, 6), false, false, false);
}

#[test]
#[should_panic(expected = "reads F32 weights in a Buffer, got F16 in a Buffer")]
fn variants_refuse_the_other_weight_format() {
    let g = gpu();
    let w = Weight::upload_in(
        &g,
        "w",
        &[0.0; 16],
        (4, 4),
        WeightFormat::F16,
        WeightLayout::Buffer,
    )
    .unwrap();
    let x = g.upload("x", &[0.0; 16]);
    let y = g.storage("y", 16);
    let shape = linear::Linear::new(4, 4, 4);
    let mut p = Program::new();
    linear::record_variant(&g, &mut p, shape, Variant::Vec4, &x, &w, None, None, &y);
}

/// The texture variants reading x from a matrix texture and storing y as one (how the encoder
/// chains them), at sizes off every tile edge.
#[test]
fn texture_variants_chain_through_textures() {
    let g = gpu();
    for v in texture_variants() {
        // The subgroup variants' tiles: 24 rows (17, 33, 20, 19: the last tile reads rows past
        // the texture's 16-row padding), 8 (1) and 16 (32, 64).
        for (m, n, k) in [
            (17, 97, 13),
            (33, 190, 48),
            // Split rows (texture_row_parts): 48 in 24-row tiles, then 1 and 2 in 8-row ones.
            (49, 40, 12),
            (50, 8, 20),
            (1, 5, 3),
            (20, 100, 36),
            (19, 4, 8),
            (32, 36, 20),
            (64, 40, 9),
        ] {
            let x = random(11, m * k, -1.0, 1.0);
            let w = random(12, n * k, -0.5, 0.5);
            let b = random(13, n, -0.5, 0.5);
            let r = random(14, m * n, -1.0, 1.0);
            let shape = linear::Linear {
                gelu: true,
                ..linear::Linear::new(m, n, k)
            };
            let wb = Weight::upload_in(&g, "w", &w, (n, k), v.format(), v.layout()).unwrap();
            let xt = linear::texture_for(&g, "x", m, k).unwrap();
            let yt = linear::texture_for(&g, "y", m, n).unwrap();
            let xb = g.upload("x", &x);
            let bb = g.upload("b", &b);
            let rb = g.upload("r", &r);
            // The residual from a buffer, and (where y is whole vec4s) from a texture of y's
            // layout, as the encoder's residual stream is read on CPU adapters.
            let rt = linear::texture_for(&g, "r", m, n).unwrap();
            let w_used = match v.format() {
                WeightFormat::F32 => w.clone(),
                WeightFormat::F16 => linear::round_f16(&w),
            };
            let want = linear::cpu(shape, &x, &w_used, Some(&b), Some(&r));
            for from_texture in [false, true] {
                if from_texture && !n.is_multiple_of(4) {
                    continue;
                }
                let mut p = Program::new();
                vit_hybrid::ops::to_texture::record(&g, &mut p, &xb, k, &xt);
                vit_hybrid::ops::to_texture::record(&g, &mut p, &rb, n, &rt);
                let (i, o) = (Input::Texture(&xt), Output::Texture(&yt));
                let res = if from_texture {
                    Place::Texture(&rt)
                } else {
                    Place::Buffer(&rb)
                };
                linear::record_io(&g, &mut p, shape, v, i, &wb, Some(&bb), Some(res), o);
                p.run(&g).unwrap();
                assert_close(
                    &format!(
                        "{v:?} {m}x{n}x{k} via textures, residual from a texture {from_texture}"
                    ),
                    &yt.read(&g).unwrap(),
                    &want,
                    1e-5,
                    1e-4,
                );
            }
        }
    }
}

/// The subgroup variants' row tile costs least with its padding; the others keep 16 rows.
#[test]
fn texture_row_tiles_follow_the_padding() {
    let (f32_sub, f32_plain) = (Variant::TextureF32Subgroup, Variant::TextureF32);
    let pick = |m| linear::texture_rows(f32_sub, m);
    assert_eq!(pick(577), 24, "one image's tokens");
    assert_eq!(pick(64), 16, "a 64-channel conv");
    assert_eq!(pick(1), 8);
    assert_eq!(pick(17), 24);
    assert_eq!(pick(32), 16);
    for m in 1..3000 {
        assert_eq!(linear::texture_rows(f32_plain, m), 16);
        assert!([8, 16, 24].contains(&pick(m)));
        assert!(
            pick(m) == 8 || m > 8,
            "m = {m}: a tile of rows that are all padding"
        );
    }
}

/// A product's rows are split where whole large tiles and a strip of small ones cost less
/// than padding the last large tile (one image's 577 tokens); the parts cover every row once,
/// in order, and a row bias keeps the product whole.
#[test]
fn texture_rows_split_off_the_tail() {
    use linear::RowPart;
    let sub = Variant::TextureF32Subgroup;
    let part = |start, rows, tile| RowPart { start, rows, tile };
    assert_eq!(
        linear::texture_row_parts(sub, 577, false),
        [part(0, 576, 24), part(576, 1, 8)],
        "one image's tokens"
    );
    assert_eq!(
        linear::texture_row_parts(sub, 577, true),
        [part(0, 577, 24)]
    );
    assert_eq!(
        linear::texture_row_parts(sub, 576, false),
        [part(0, 576, 24)]
    );
    for m in 1..3000 {
        for v in [sub, Variant::TextureF32] {
            let parts = linear::texture_row_parts(v, m, false);
            let mut next = 0;
            for p in &parts {
                assert_eq!(p.start, next, "m = {m}: {parts:?}");
                assert!(p.rows > 0 && [8, 16, 24].contains(&p.tile), "{parts:?}");
                next += p.rows;
            }
            assert_eq!(next, m, "m = {m}: {parts:?}");
            assert!(v.needs_subgroups() || parts.len() == 1);
        }
    }
    // Every epilogue over split rows: the buffer ones (bias, GELU, residual) here, the texture
    // ones in texture_variants_chain_through_textures.
    for v in texture_variants() {
        check_variant(v, (49, 40, 12, 12), true, true, true);
        check_variant(v, (97, 36, 8, 8), false, true, false);
    }
}

/// The texture products' tile narrows where a 96-column one would mostly compute padding
/// (attention's 64-wide context per head, small models' heads), and never reads past the
/// columns a 96-column tile would.
#[test]
fn texture_tile_narrows_for_few_columns() {
    assert_eq!(linear::texture_quads(64), 2, "a 64-column head");
    assert_eq!(linear::texture_quads(8), 1);
    assert_eq!(linear::texture_quads(577), 3, "attention's scores");
    assert_eq!(linear::texture_quads(2304), 3);
    for n in 1..2000 {
        let q = linear::texture_quads(n);
        assert!((1..=3).contains(&q));
        assert!(
            n.next_multiple_of(32 * q) <= n.next_multiple_of(linear::TEXTURE_COLS),
            "n = {n}: {q} quads read past a 96-column tile"
        );
    }
}

/// A row scale (attention's 1 / softmax sums) multiplies each row of every product by the
/// factor at that row of x's texture, offsets and z steps included, in place of a bias.
#[test]
fn texture_variants_scale_rows_by_x_row() {
    let g = gpu();
    for v in texture_variants() {
        // Factors in whole vec4s (52 and 72 rows: the vec4 entry points) or not (15 rows).
        for (m, n, k, first) in [(19, 36, 20, 4), (30, 64, 13, 2), (1, 8, 4, 3)] {
            let (gap, repeat) = (5, 2);
            let x_rows = first + repeat * (m + gap);
            let x = random(21, x_rows * k, -1.0, 1.0);
            let w = random(22, n * k, -0.5, 0.5);
            let scale = random(23, x_rows, 0.5, 2.0);
            let shape = linear::Linear {
                row_scale: true,
                repeat,
                at: linear::Offsets {
                    x_row0: first,
                    ..Default::default()
                },
                step: linear::Offsets {
                    x_row0: m + gap,
                    y_row0: m,
                    ..Default::default()
                },
                ..linear::Linear::new(m, n, k)
            };
            let wb = Weight::upload_in(&g, "w", &w, (n, k), v.format(), v.layout()).unwrap();
            let xt = linear::texture_for(&g, "x", x_rows, k).unwrap();
            let yt = linear::texture_for(&g, "y", repeat * m, n).unwrap();
            let (xb, sb) = (g.upload("x", &x), g.upload("s", &scale));
            let mut p = Program::new();
            vit_hybrid::ops::to_texture::record(&g, &mut p, &xb, k, &xt);
            let (i, o) = (Input::Texture(&xt), Output::Texture(&yt));
            linear::record_io(&g, &mut p, shape, v, i, &wb, Some(&sb), None, o);
            p.run(&g).unwrap();
            let w_used = match v.format() {
                WeightFormat::F32 => w.clone(),
                WeightFormat::F16 => linear::round_f16(&w),
            };
            let mut want = Vec::new();
            for z in 0..repeat {
                let row0 = first + z * (m + gap);
                let xz = &x[row0 * k..(row0 + m) * k];
                let y = linear::cpu(linear::Linear::new(m, n, k), xz, &w_used, None, None);
                for (i, row) in y.chunks(n).enumerate() {
                    want.extend(row.iter().map(|&v| v * scale[row0 + i]));
                }
            }
            assert_close(
                &format!("{v:?} {m}x{n}x{k} scaled by x's rows"),
                &yt.read(&g).unwrap(),
                &want,
                1e-5,
                1e-4,
            );
        }
    }
}

/// The blocked transpose that lays out texture weights equals the definition, zeros past n,
/// at sizes that are not whole blocks.
#[test]
fn weights_transpose_in_blocks() {
    for (n, k, width) in [(37, 70, 96), (1, 1, 4), (64, 33, 64), (100, 3, 192)] {
        let w = random(n as u64 * 31 + k as u64, n * k, -1.0, 1.0);
        let t = linear::transpose_padded(&w, (n, k), width);
        assert_eq!(t.len(), k * width);
        for i in 0..k {
            for j in 0..width {
                let want = if j < n { w[j * k + i] } else { 0.0 };
                assert_eq!(t[i * width + j], want, "[{n}, {k}] -> {width}: ({i}, {j})");
            }
        }
    }
}

/// A dry run (`Program::collecting`) names each pipeline the real recording uses, once, and
/// records no dispatch; the model compiles those pipelines side by side before recording.
#[test]
fn a_collecting_program_names_the_pipelines_it_would_use() {
    let g = gpu();
    let (m, n, k) = (577, 40, 12);
    let w = Weight::upload(
        &g,
        "w",
        &random(5, n * k, -1.0, 1.0),
        n,
        k,
        WeightFormat::F32,
    )
    .unwrap();
    let (x, y) = (g.storage("x", m * k), g.storage("y", m * n));
    let shapes = [
        linear::Linear::new(m, n, k),
        linear::Linear::new(m, n, k),
        linear::Linear {
            gelu: true,
            ..linear::Linear::new(m, n, k)
        },
    ];
    let mut dry = Program::collecting();
    let mut real = Program::new();
    for p in [&mut dry, &mut real] {
        for shape in shapes {
            linear::record(&g, p, shape, &x, &w, None, None, &y);
        }
    }
    assert!(dry.dispatches.is_empty(), "a dry run records no dispatch");
    let mut used: Vec<(&str, &str)> = real
        .dispatches
        .iter()
        .map(|d| (d.kernel, d.entry))
        .collect();
    used.dedup();
    let named: Vec<(&str, &str)> = dry.pipelines().iter().map(|s| (s.0.name, s.1)).collect();
    assert!(!named.is_empty());
    for pair in &used {
        assert!(
            named.contains(pair),
            "{pair:?} used but not named: {named:?}"
        );
    }
    // The repeated shape is named once; the GELU one is a pipeline of its own.
    let specs = dry.pipelines();
    for (i, a) in specs.iter().enumerate() {
        for b in &specs[i + 1..] {
            assert!(
                !(a.0.name == b.0.name && a.1 == b.1 && a.2 == b.2),
                "{}:{} {:?} named twice",
                a.0.name,
                a.1,
                a.2
            );
        }
    }
    assert!(
        specs.len() >= 2,
        "the GELU product should be a pipeline of its own"
    );
}
