mod common;

use common::{assert_close, gpu, random};
use vit_hybrid::ops::{Program, add_relu};

fn check(n: usize, acc: Vec<f32>, other: Vec<f32>) {
    let g = gpu();
    let (ab, ob) = (g.upload("acc", &acc), g.upload("other", &other));
    let mut p = Program::new();
    add_relu::record(&g, &mut p, n, &ab, &ob);
    p.run(&g).unwrap();
    let got = g.read(&ab, n).unwrap();
    let want = add_relu::cpu(&acc, &other);
    // One f32 add and a max: the GPU must match exactly.
    assert_close(&format!("add_relu n {n}"), &got, &want, 0.0, 0.0);
}

#[test]
fn awkward_sizes() {
    for (seed, n) in [1, 255, 257, 10_007, 300_001].into_iter().enumerate() {
        let seed = 2 * seed as u64;
        check(
            n,
            random(seed, n, -1.0, 1.0),
            random(seed + 1, n, -1.0, 1.0),
        );
    }
}

#[test]
fn more_than_65535_workgroups() {
    // 65537 workgroups: grid_1d folds them into two rows, with one spare workgroup to skip.
    let n = 65535 * 256 + 300;
    let acc: Vec<f32> = (0..n).map(|i| (i % 1001) as f32 - 500.0).collect();
    let other: Vec<f32> = (0..n).map(|i| (i % 997) as f32 * 0.5 - 250.0).collect();
    check(n, acc, other);
}
