//! The main kernels alone at the full-size model's shapes (batch 1), with GFLOP/s, so a
//! kernel change can be judged without the whole network: `cargo bench --bench kernels
//! [-- FILTER]`. Each line: median of 5 runs after a warm-up, one submission per run.

use std::time::Instant;

use vit_hybrid::gpu::{Gpu, GpuOptions};
use vit_hybrid::ops::attention::{self, Attention, TextureVariant};
use vit_hybrid::ops::conv2d::{self, Conv2d};
use vit_hybrid::ops::group_norm::{self, GroupNorm};
use vit_hybrid::ops::linear::{
    self, Input, Linear, Output, Variant, Weight, WeightFormat, WeightLayout,
};
use vit_hybrid::ops::matrix_texture::{MatrixTexture, Place, TexelFormat};
use vit_hybrid::ops::{Program, layer_norm};

fn time(gpu: &Gpu, p: &Program) -> f64 {
    p.run(gpu).expect("warm-up");
    let mut t: Vec<f64> = (0..5)
        .map(|_| {
            let s = Instant::now();
            p.run(gpu).expect("run");
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[2]
}

fn report(name: &str, seconds: f64, flops: f64) {
    println!(
        "{name:<64} {:>9.3} ms {:>8.2} GFLOP/s",
        seconds * 1e3,
        flops / seconds / 1e9
    );
}

fn main() {
    // SAFETY: first thing in main, before any thread exists. As `vit-hybrid` runs them.
    unsafe { vit_hybrid::gpu::spread_lavapipe_threads() };
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_default();
    let gpu = Gpu::new(&GpuOptions::default()).expect("a GPU adapter (lavapipe will do)");
    println!("adapter: {}", gpu.describe());
    let buf = |n: usize| gpu.upload("bench", &vec![0.01f32; n]);
    let tokens = 577;

    // Every linear variant this adapter can run, at the encoder's four shapes; texture
    // variants read x from a matrix texture, as the encoder gives it to them.
    let native_f16 = gpu.device.features().contains(wgpu::Features::SHADER_F16);
    for (name, n, k, gelu, residual) in [
        ("linear qkv 577x768 -> 2304", 2304, 768, false, false),
        ("linear attn-out 577x768 -> 768 +res", 768, 768, false, true),
        ("linear fc1 577x768 -> 3072 +gelu", 3072, 768, true, false),
        ("linear fc2 577x3072 -> 768 +res", 768, 3072, false, true),
    ] {
        for v in Variant::ALL {
            // The kernel too: linear and linear_subgroup share their entry points' names.
            let name = format!("{name} {}:{}", v.kernel().name, v.entry());
            if !name.contains(&filter)
                || (v.needs_shader_f16() && !native_f16)
                || (v.needs_subgroups() && !linear::subgroups_fit(&gpu))
                || (v.format() == WeightFormat::F16
                    && v.layout() == WeightLayout::Buffer
                    && !linear::f16_supported(&gpu))
            {
                continue;
            }
            let shape = Linear {
                gelu,
                ..Linear::new(tokens, n, k)
            };
            let w = Weight::upload_in(
                &gpu,
                "bench",
                &vec![0.01f32; n * k],
                (n, k),
                v.format(),
                v.layout(),
            )
            .expect("weights in this layout");
            let (x, b, r, y) = (buf(tokens * k), buf(n), buf(tokens * n), buf(tokens * n));
            let xt = linear::texture_for(&gpu, "bench.x", tokens, k).expect("x texture");
            let mut p = Program::new();
            let input = if v.layout() == WeightLayout::Texture {
                // Filled once, outside the timed program.
                let mut fill = Program::new();
                vit_hybrid::ops::to_texture::record(&gpu, &mut fill, &x, k, &xt);
                fill.run(&gpu).expect("filling x");
                Input::Texture(&xt)
            } else {
                Input::Buffer(&x)
            };
            let res = residual.then_some(Place::Buffer(&r));
            linear::record_io(
                &gpu,
                &mut p,
                shape,
                v,
                input,
                &w,
                Some(&b),
                res,
                Output::Buffer(&y),
            );
            let flops = 2.0 * (tokens * n * k) as f64;
            report(&name, time(&gpu, &p), flops);
            if residual && v.layout() == WeightLayout::Texture {
                // As the encoder runs it on CPU adapters: the residual stream in textures.
                let (rt, yt) = (
                    linear::texture_for(&gpu, "bench.r", tokens, n).expect("r texture"),
                    linear::texture_for(&gpu, "bench.y", tokens, n).expect("y texture"),
                );
                let mut p = Program::new();
                let (res, out) = (Some(Place::Texture(&rt)), Output::Texture(&yt));
                linear::record_io(&gpu, &mut p, shape, v, input, &w, Some(&b), res, out);
                report(
                    &format!("{name}, stream in textures"),
                    time(&gpu, &p),
                    flops,
                );
            }
        }
    }

    for (name, cin, hw, cout, k, stride) in [
        ("conv stem 7x7/2 3->64 @384", 3, 384, 64, 7, 2),
        ("conv 1x1 256->64 @96", 256, 96, 64, 1, 1),
        ("conv 3x3 64->64 @96", 64, 96, 64, 3, 1),
        ("conv 1x1 64->256 @96", 64, 96, 256, 1, 1),
        ("conv 3x3/2 128->128 @96", 128, 96, 128, 3, 2),
        ("conv 1x1/2 256->512 @96", 256, 96, 512, 1, 2),
        ("conv 3x3 256->256 @24", 256, 24, 256, 3, 1),
        ("conv 1x1 1024->256 @24", 1024, 24, 256, 1, 1),
        ("conv 1x1 projection 1024->768 @24", 1024, 24, 768, 1, 1),
    ] {
        if !name.contains(&filter) {
            continue;
        }
        let c = Conv2d::same(1, cin, hw, hw, cout, k, stride);
        let (x, w, y) = (
            buf(cin * hw * hw),
            buf(cout * cin * k * k),
            buf(c.out_len()),
        );
        let flops = 2.0 * (c.out_len() * cin * k * k) as f64;
        let variant = conv2d::Variant::choose(&gpu, c);
        let mut p = Program::new();
        conv2d::record_variant(&gpu, &mut p, c, variant, &x, &w, None, &y);
        report(
            &format!("{name} {}", variant.entry()),
            time(&gpu, &p),
            flops,
        );
        // The texture paths, from the input in a buffer (a copy into a texture, or im2col
        // loads from the buffer) and from a texture as the backbone's norms now store it, into
        // a texture as the backbone's norms read it.
        let path = conv2d::Path::choose(&gpu, c, true);
        if path == conv2d::Path::Buffer {
            continue;
        }
        let wt = conv2d::texture_weight(&gpu, "w", &vec![0.01; c.weight_len()], cout, c.k())
            .expect("conv weight texture");
        let plane = hw * hw;
        // The stem's input is too wide for one texture row per channel (the model reads it from
        // its buffer): only the buffer input is timed there.
        let xt = MatrixTexture::new_padded(
            &gpu,
            "x",
            (cin, plane),
            (cin, conv2d::input_texture_width(plane)),
            TexelFormat::F32,
        )
        .ok();
        let (oc, ohw) = (cout, c.oh * c.ow);
        let yt = MatrixTexture::new(&gpu, "y", oc, ohw, oc, TexelFormat::F32).expect("y texture");
        let record = match path {
            conv2d::Path::Texture1x1 => conv2d::record_1x1_texture,
            _ => conv2d::record_im2col_texture,
        };
        let what = match path {
            conv2d::Path::Texture1x1 => "texture product",
            _ => "im2col + texture product",
        };
        let inputs = [
            Some(("buffer", Place::Buffer(&x))),
            xt.as_ref().map(|t| ("texture", Place::Texture(t))),
        ];
        for (from, x) in inputs.into_iter().flatten() {
            let mut p = Program::new();
            record(&gpu, &mut p, c, x, &wt, None, Place::Texture(&yt));
            report(
                &format!("{name} as {what}, x from a {from}"),
                time(&gpu, &p),
                flops,
            );
        }
    }

    if "attention 12 heads x 577".contains(&filter) {
        let a = Attention {
            batch: 1,
            seq: tokens,
            heads: 12,
            head_dim: 64,
        };
        let (qkv, s, o) = (
            buf(tokens * 3 * 768),
            buf(a.scratch_len().max(1)),
            buf(tokens * 768),
        );
        let flops = 4.0 * (tokens * tokens * 768) as f64;
        for v in [attention::Variant::Tiled, attention::Variant::Cpu] {
            let mut p = Program::new();
            attention::record_variant(&gpu, &mut p, a, v, &qkv, &s, &o);
            report(
                &format!("attention 12 heads x 577 {v:?}"),
                time(&gpu, &p),
                flops,
            );
        }
        if attention::textures_fit(&gpu, a) {
            let mut variants = vec![TextureVariant::Products];
            if attention::fused_fits(&gpu, a) {
                variants.push(TextureVariant::Fused);
            }
            for v in variants {
                let qkv_t = attention::qkv_texture(&gpu, a).expect("qkv texture");
                let scratch =
                    attention::TextureScratch::new(&gpu, a, v).expect("attention textures");
                let out = linear::texture_for(&gpu, "out", tokens, 768).expect("out texture");
                let mut p = Program::new();
                attention::record_textures(&gpu, &mut p, a, &qkv_t, &scratch, &out);
                report(
                    &format!("attention 12 heads x 577 textures {v:?}"),
                    time(&gpu, &p),
                    flops,
                );
            }
        }
    }

    if "norms group_norm 256x96x96 / layer_norm 577x768".contains(&filter) {
        let x = buf(256 * 96 * 96);
        let (g, b) = (buf(256), buf(256));
        let mut p = Program::new();
        let shape = GroupNorm {
            batch: 1,
            c: 256,
            hw: 96 * 96,
            groups: 32,
            eps: 1e-5,
            relu: true,
        };
        group_norm::record(&gpu, &mut p, shape, &x, &g, &b, None);
        let t = time(&gpu, &p);
        println!(
            "{:<44} {:>9.3} ms {:>8.2} GB/s",
            "group_norm 256x96x96",
            t * 1e3,
            3.0 * 4.0 * (256 * 96 * 96) as f64 / t / 1e9
        );
        let x = buf(tokens * 768);
        let affine = layer_norm::Affine::upload(&gpu, "ln", &[1.0; 768], &[0.0; 768])
            .expect("layer norm weights");
        let xt = MatrixTexture::new(&gpu, "x", tokens, 768, tokens, TexelFormat::F32)
            .expect("x texture");
        let yt = linear::texture_for(&gpu, "y", tokens, 768).expect("y texture");
        let shape = layer_norm::LayerNorm {
            rows: tokens,
            dim: 768,
            eps: 1e-12,
        };
        for (from, x) in [
            ("buffer", Place::Buffer(&x)),
            ("texture", Place::Texture(&xt)),
        ] {
            let mut p = Program::new();
            layer_norm::record(&gpu, &mut p, shape, x, &affine, Place::Texture(&yt));
            let t = time(&gpu, &p);
            println!(
                "{:<44} {:>9.3} ms {:>8.2} GB/s",
                format!("layer_norm 577x768 from a {from}"),
                t * 1e3,
                3.0 * 4.0 * (tokens * 768) as f64 / t / 1e9
            );
        }
    }
}
