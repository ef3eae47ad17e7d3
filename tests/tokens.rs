mod common;

use common::{assert_close, gpu, random};
use vit_hybrid::ops::{Program, tokens};

fn check(batch: usize, dim: usize, patches: usize) {
    let g = gpu();
    let shape = tokens::Tokens {
        batch,
        dim,
        patches,
    };
    let seed = (batch * 101 + dim * 7 + patches) as u64;
    let proj = random(seed, batch * dim * patches, -1.0, 1.0);
    let cls = random(seed + 1, dim, -1.0, 1.0);
    let pos = random(seed + 2, (patches + 1) * dim, -1.0, 1.0);
    let (pb, cb, qb) = (
        g.upload("proj", &proj),
        g.upload("cls", &cls),
        g.upload("pos", &pos),
    );
    let len = batch * (patches + 1) * dim;
    let ob = g.storage("out", len);
    let mut p = Program::new();
    tokens::record(&g, &mut p, shape, &pb, &cb, &qb, &ob);
    p.run(&g).unwrap();
    let got = g.read(&ob, len).unwrap();
    let want = tokens::cpu(shape, &proj, &cls, &pos);
    // One f32 add per element: exact.
    assert_close(&format!("tokens {shape:?}"), &got, &want, 0.0, 0.0);
}

#[test]
fn odd_sizes_batch_2() {
    check(2, 13, 37);
    check(2, 35, 5 * 5);
    check(3, 17, 15);
}

#[test]
fn tiny() {
    check(1, 1, 1);
    check(2, 1, 0);
}

#[test]
fn cpu_reference_layout() {
    // dim 2, patches 2: out[b, 1 + p, d] = proj[b, d, p] + pos[1 + p, d].
    let shape = tokens::Tokens {
        batch: 1,
        dim: 2,
        patches: 2,
    };
    let proj = [1.0, 2.0, 3.0, 4.0]; // [d0: p0 p1, d1: p0 p1]
    let cls = [10.0, 20.0];
    let pos = [0.0; 6];
    assert_eq!(
        tokens::cpu(shape, &proj, &cls, &pos),
        vec![10.0, 20.0, 1.0, 3.0, 2.0, 4.0]
    );
}
