mod common;

use common::{assert_close, gpu, random};
use vit_hybrid::ops::{Program, attention};

/// Runs attention on uniform q/k values in [-qk, qk) and v in [-1, 1) against the CPU;
/// returns the largest score magnitude |q . k| / sqrt(head_dim) that the inputs produced.
fn check(batch: usize, seq: usize, heads: usize, head_dim: usize, qk: f32) -> f64 {
    let g = gpu();
    let shape = attention::Attention {
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
    let qkv_b = g.upload("qkv", &qkv);
    let scratch = g.storage("scratch", shape.scratch_len());
    let out = g.storage("out", tokens * hidden);
    let mut p = Program::new();
    attention::record(&g, &mut p, shape, &qkv_b, &scratch, &out);
    p.run(&g).unwrap();
    let got = g.read(&out, tokens * hidden).unwrap();
    let want = attention::cpu(shape, &qkv);
    assert_close(
        &format!("attention b{batch} seq{seq} heads{heads} hd{head_dim} |qk|<{qk}"),
        &got,
        &want,
        1e-5,
        1e-4,
    );
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
}

#[test]
fn head_dim_and_seq_past_one_tile() {
    // Two 64-wide tiles along both the keys and head_dim.
    check(2, 67, 2, 72, 1.0);
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
}
