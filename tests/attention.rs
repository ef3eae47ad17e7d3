mod common;

use common::{assert_close, gpu, random};
use vit_hybrid::ops::{Program, attention};

/// Runs attention on uniform q/k values in [-qk, qk) and v in [-1, 1), against the CPU.
fn check(batch: usize, seq: usize, heads: usize, head_dim: usize, qk: f32, atol: f32) {
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
    for (t, v) in random(8, tokens * hidden, -1.0, 1.0).chunks(hidden).enumerate() {
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
        atol,
        1e-4,
    );
}

#[test]
fn awkward_sizes() {
    check(2, 17, 3, 8, 1.0, 1e-5);
    check(1, 70, 2, 12, 1.0, 1e-5);
    check(3, 5, 4, 64, 1.0, 1e-5);
}

#[test]
fn head_dim_and_seq_past_one_tile() {
    // Two 64-wide tiles along both the keys and head_dim.
    check(1, 67, 2, 72, 1.0, 1e-5);
}

#[test]
fn single_token() {
    // softmax over one key is 1: the output is v itself.
    check(2, 1, 2, 8, 1.0, 1e-5);
}

#[test]
fn large_scores_stay_finite() {
    // Scores up to ~30, and up to ~100 where exp would overflow without the max subtracted.
    // An f32 score carries an absolute error of ~1e-7 of its terms' sum (up to ~1e-5 here),
    // which moves the near one-hot probabilities by as much: atol widened to match.
    check(2, 19, 2, 16, 6.0, 5e-5);
    check(1, 23, 3, 8, 10.0, 5e-5);
}

#[test]
fn many_rows_fold_the_grid() {
    // 1100 heads * 60 rows = 66000 softmax workgroups, past the 65535 per-dimension limit.
    check(1, 60, 1100, 1, 1.0, 1e-5);
}
