mod common;

use common::{assert_close, gpu, random};
use vit_hybrid::ops::Program;
use vit_hybrid::ops::attention::{self, Attention, TextureVariant, Variant};

/// Runs attention on uniform q/k values in [-qk, qk) and v in [-1, 1) against the CPU, through
/// `record` and through every variant that fits the shape (both run on any adapter); returns
/// the largest score magnitude |q . k| / sqrt(head_dim) that the inputs produced.
fn check(batch: usize, seq: usize, heads: usize, head_dim: usize, qk: f32) -> f64 {
    let g = gpu();
    let shape = Attention {
        batch,
        seq,
        heads,
        head_dim,
    };
    let hidden = shape.hidden();
    let tokens = batch * seq;
    let mut qkv = random(7, tokens * 3 * hidden, -qk, qk);
    for (t, v) in random(8, tokens * hidden, -1.0, 1.0)
        .chunks(hidden)
        .enumerate()
    {
        qkv[t * 3 * hidden + 2 * hidden..][..hidden].copy_from_slice(v);
    }
    let want = attention::cpu(shape, &qkv);
    let qkv_b = g.upload("qkv", &qkv);
    let mut picks = vec![None, Some(Variant::Tiled)];
    if head_dim.is_multiple_of(4) {
        picks.push(Some(Variant::Cpu));
    }
    for pick in picks {
        // Stale scratch must not leak into the result: fill it with NaN first.
        let scratch = g.upload("scratch", &vec![f32::NAN; shape.scratch_len()]);
        let out = g.storage("out", tokens * hidden);
        let mut p = Program::new();
        match pick {
            Some(v) => attention::record_variant(&g, &mut p, shape, v, &qkv_b, &scratch, &out),
            None => attention::record(&g, &mut p, shape, &qkv_b, &scratch, &out),
        }
        p.run(&g).unwrap();
        let got = g.read(&out, tokens * hidden).unwrap();
        assert_close(
            &format!("attention {pick:?} b{batch} seq{seq} heads{heads} hd{head_dim} |qk|<{qk}"),
            &got,
            &want,
            1e-5,
            1e-4,
        );
    }
    if attention::textures_fit(&g, shape) {
        // The CPU adapters' texture paths, from a QKV texture into a context texture.
        let mut variants = vec![TextureVariant::Products];
        if attention::fused_fits(&g, shape) {
            variants.push(TextureVariant::Fused);
        } else {
            assert!(
                !g.info.name.contains("llvmpipe") || head_dim > 128,
                "lavapipe has subgroups: the fused kernel must run hd{head_dim}"
            );
        }
        for variant in variants {
            let qkv_t = attention::qkv_texture(&g, shape).unwrap();
            let scratch = attention::TextureScratch::new(&g, shape, variant).unwrap();
            let out = vit_hybrid::ops::linear::texture_for(&g, "out", tokens, hidden).unwrap();
            let mut p = Program::new();
            vit_hybrid::ops::to_texture::record(&g, &mut p, &qkv_b, 3 * hidden, &qkv_t);
            attention::record_textures(&g, &mut p, shape, &qkv_t, &scratch, &out);
            p.run(&g).unwrap();
            assert_close(
                &format!(
                    "attention textures {variant:?} b{batch} seq{seq} heads{heads} hd{head_dim} \
                     |qk|<{qk}"
                ),
                &out.read(&g).unwrap(),
                &want,
                1e-5,
                1e-4,
            );
        }
    } else if g.cpu_kernels() && head_dim.is_multiple_of(4) {
        eprintln!("b{batch} seq{seq} heads{heads} hd{head_dim}: past the texture limits");
    }
    let mut largest = 0.0f64;
    for b in 0..batch {
        for h in 0..heads {
            let at = |t: usize, part: usize| {
                &qkv[(b * seq + t) * 3 * hidden + part * hidden + h * head_dim..][..head_dim]
            };
            for i in 0..seq {
                for j in 0..seq {
                    let dot: f64 = at(i, 0)
                        .iter()
                        .zip(at(j, 1))
                        .map(|(&x, &y)| x as f64 * y as f64)
                        .sum();
                    largest = largest.max(dot.abs() / (head_dim as f64).sqrt());
                }
            }
        }
    }
    largest
}

#[test]
fn awkward_sizes() {
    check(2, 17, 3, 8, 1.0);
    check(1, 70, 2, 12, 1.0);
    check(3, 5, 4, 64, 1.0);
    // head_dim not a multiple of 4: only the tiled variant.
    check(2, 9, 2, 6, 1.0);
}

#[test]
fn head_dim_and_seq_past_one_tile() {
    // Two 64-wide tiles along the keys and head_dim (both variants), two 128-query tiles
    // (the CPU variant's), a row stride padded from 133 to 136.
    check(2, 67, 2, 72, 1.0);
    check(1, 133, 1, 8, 1.0);
    // The fused kernel's widest heads (4 quads of dims a lane), and one past them (the
    // products instead), over several 32-key blocks and a partial last row tile.
    check(2, 41, 2, 128, 1.0);
    check(1, 35, 1, 132, 1.0);
}

#[test]
fn single_token() {
    // softmax over one key is 1: the output is v itself.
    check(2, 1, 2, 8, 1.0);
}

#[test]
fn large_scores_stay_finite() {
    // Scores past ~30, and past 88 where exp(score) overflows f32 unless the max is subtracted.
    let largest = check(2, 19, 2, 16, 6.0);
    assert!(largest > 30.0, "largest score only {largest}");
    let largest = check(1, 23, 3, 8, 10.0);
    assert!(largest > 88.0, "largest score only {largest}");
}

#[test]
fn many_rows_fold_the_grid() {
    // 1100 heads * 60 rows = 66000 softmax workgroups, past the 65535 per-dimension limit.
    check(1, 60, 1100, 1, 1.0);
    // 66000 heads of one token: 66000 workgroups of every multiply, in both variants.
    check(1, 1, 66000, 4, 1.0);
}
