//! The whole network against transformers' float64 run, stage by stage, on every fixture
//! model that tools/make_fixtures.py wrote.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{gpu, rel_l2};
use safetensors::{Dtype, SafeTensors};
use vit_hybrid::gpu::KernelClass;
use vit_hybrid::model::Model;
use vit_hybrid::{Gpu, GpuOptions};

const FIXTURES: &[&str] = &["tiny", "odd", "patch2", "no_layers"];
/// Largest relative L2 error against float64 at any stage (issue: 1e-4).
const STAGE_TOLERANCE: f64 = 1e-4;
const LOGIT_TOLERANCE: f64 = 1e-4;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A float64 reference tensor and its shape.
fn reference(st: &SafeTensors, name: &str) -> (Vec<usize>, Vec<f64>) {
    let t = st
        .tensor(name)
        .unwrap_or_else(|e| panic!("reference tensor {name}: {e}"));
    assert_eq!(
        t.dtype(),
        Dtype::F64,
        "reference tensor {name} should be float64"
    );
    let data = t
        .data()
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
        .collect();
    (t.shape().to_vec(), data)
}

/// The fixture's input batch as the f32 pixels the model takes, and its size.
fn input_pixels(st: &SafeTensors) -> (usize, Vec<f32>) {
    let (shape, pixels) = reference(st, "pixel_values");
    (shape[0], pixels.iter().map(|&v| v as f32).collect())
}

fn check_fixture(name: &str) {
    check_fixture_on(gpu(), name);
}

fn check_fixture_on(gpu: Arc<Gpu>, name: &str) {
    let dir = fixture(name);
    let name = &format!("{name} ({} kernels)", gpu.kernels().name());
    let model = Model::load(gpu, &dir).unwrap_or_else(|e| panic!("loading fixture {name}: {e:#}"));
    let bytes = std::fs::read(dir.join("reference.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (batch, pixels) = input_pixels(&st);
    let (logits, stages) = model.forward_stages(&pixels, batch).unwrap();

    let mut first_drift = None;
    for stage in &stages {
        let (want_shape, want) = reference(&st, &stage.name);
        assert_eq!(
            stage.shape, want_shape,
            "{name}: stage {} shape",
            stage.name
        );
        let err = rel_l2(&stage.data, &want);
        eprintln!("{name}: {:<12} relative L2 error {err:.3e}", stage.name);
        if (err.is_nan() || err > STAGE_TOLERANCE) && first_drift.is_none() {
            first_drift = Some((stage.name.clone(), err));
        }
    }
    if let Some((stage, err)) = first_drift {
        panic!(
            "{name}: first stage to drift from transformers is {stage}: relative L2 error {err:.3e} > {STAGE_TOLERANCE:e}"
        );
    }
    assert!(
        stages.len() >= 6,
        "{name}: only {} stages were captured",
        stages.len()
    );

    let (lshape, want_logits) = reference(&st, "logits");
    assert_eq!(logits.len(), lshape.iter().product::<usize>());
    let labels = lshape[1];
    let (mut worst, mut at) = (0.0f64, 0);
    for (i, (&g, &w)) in logits.iter().zip(&want_logits).enumerate() {
        let d = (g as f64 - w).abs();
        if d > worst || d.is_nan() {
            (worst, at) = (d, i);
        }
    }
    eprintln!(
        "{name}: logits largest |diff| {worst:.3e} (image {}, class {})",
        at / labels,
        at % labels
    );
    assert!(
        worst <= LOGIT_TOLERANCE,
        "{name}: logit {} of image {} is {} but transformers gives {} (|diff| {worst:e} > {LOGIT_TOLERANCE:e})",
        at % labels,
        at / labels,
        logits[at],
        want_logits[at]
    );
    for b in 0..batch {
        let ours: Vec<usize> = model
            .top_k(&logits[b * labels..(b + 1) * labels], 5)
            .iter()
            .map(|p| p.index)
            .collect();
        let mut order: Vec<usize> = (0..labels).collect();
        let row = &want_logits[b * labels..(b + 1) * labels];
        order.sort_by(|&x, &y| row[y].total_cmp(&row[x]));
        order.truncate(5);
        assert_eq!(
            ours, order,
            "{name}: top-5 of image {b} differs from transformers"
        );
    }

    // The plain forward pass (no captures) and a batch of one give the same logits.
    let plain = model.forward(&pixels, batch).unwrap();
    assert_eq!(plain, logits, "{name}: forward and forward_stages disagree");
    let img = pixels.len() / batch;
    let single = model.forward(&pixels[img..2 * img], 1).unwrap();
    for (j, (&s, &b)) in single.iter().zip(&logits[labels..2 * labels]).enumerate() {
        assert!(
            (s - b).abs() <= 1e-5,
            "{name}: image 1 alone gives logit {j} = {s}, in a batch {b}"
        );
    }
}

/// The other adapter class's kernels through the whole network (the per-fixture tests run
/// the adapter's own): on a CPU adapter such as lavapipe, the GPU kernels' only end-to-end check.
#[test]
fn the_other_kernel_class_matches_transformers_on_every_fixture() {
    let other = match gpu().kernels() {
        KernelClass::Cpu => KernelClass::Gpu,
        KernelClass::Gpu => KernelClass::Cpu,
    };
    let opts = GpuOptions {
        kernels: Some(other),
        ..Default::default()
    };
    let gpu = Gpu::new(&opts)
        .unwrap_or_else(|e| panic!("these tests need a GPU adapter (lavapipe will do): {e:#}"));
    assert_eq!(gpu.kernels(), other);
    let gpu = Arc::new(gpu);
    for name in FIXTURES {
        check_fixture_on(gpu.clone(), name);
    }
}

#[test]
fn tiny_matches_transformers() {
    check_fixture(FIXTURES[0]);
}

#[test]
fn odd_sizes_match_transformers() {
    check_fixture(FIXTURES[1]);
}

#[test]
fn patch2_matches_transformers() {
    check_fixture(FIXTURES[2]);
}

/// `num_hidden_layers: 0`: the embeddings go straight to the final norm.
#[test]
fn no_encoder_layers_match_transformers() {
    check_fixture(FIXTURES[3]);
}

/// An adapter whose binding limit holds one image's activations at a time runs a batch of
/// three as three chunks inside one submission, with the same logits.
#[test]
fn batches_split_under_a_small_binding_limit() {
    let dir = fixture("tiny");
    let gpu = vit_hybrid::gpu::Gpu::new(&Default::default()).unwrap();
    let full = Model::load(std::sync::Arc::new(gpu), &dir).unwrap();
    let bytes = std::fs::read(dir.join("reference.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (batch, pixels) = input_pixels(&st);
    let want = full.forward(&pixels, batch).unwrap();

    // The largest per-image buffer of the tiny model, found by asking for chunks of 1.
    let one_image = 4 * 16 * 48 * 48;
    let gpu = vit_hybrid::gpu::Gpu::new(&Default::default())
        .unwrap()
        .with_binding_cap(one_image as u64 + 4);
    let small = Model::load(std::sync::Arc::new(gpu), &dir).unwrap();
    assert_eq!(
        small.max_chunk().unwrap(),
        1,
        "the cap should leave room for one image"
    );
    let got = small.forward(&pixels, batch).unwrap();
    assert_eq!(got, want, "chunked batch differs from the single pass");
    let err = {
        let gpu = vit_hybrid::gpu::Gpu::new(&Default::default())
            .unwrap()
            .with_binding_cap(1000);
        let m = Model::load(std::sync::Arc::new(gpu), &dir).unwrap();
        m.forward(&pixels[..pixels.len() / batch], 1)
            .unwrap_err()
            .to_string()
    };
    assert!(err.contains("binds at most 1000 bytes"), "{err}");
}

/// Relative L2 error bounds for f16 linear weights against float64. Measured on lavapipe:
/// encoder stages 1.5e-4 to 3.5e-4, logits 2.4e-4 (tiny), 8.5e-4 (odd), 2.5e-4 (patch2); the
/// bounds leave ~6x headroom. (f16 keeps 11 significant bits: 2.4e-4 relative per weight.)
const F16_STAGE_TOLERANCE: f64 = 5e-3;
const F16_LOGIT_TOLERANCE: f64 = 5e-3;

/// f16 linear weights on every fixture: every stage and the logits stay within a stated
/// relative L2 error of float64, and every image keeps its top-1 class.
#[test]
fn f16_weights_stay_close_and_keep_top1() {
    use vit_hybrid::model::Precision;
    for &name in FIXTURES {
        let dir = fixture(name);
        let model = Model::load_with(gpu(), &dir, Precision::F16)
            .unwrap_or_else(|e| panic!("loading fixture {name} as f16: {e:#}"));
        assert_eq!(model.precision(), Precision::F16);
        let bytes = std::fs::read(dir.join("reference.safetensors")).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let (batch, pixels) = input_pixels(&st);
        let (logits, stages) = model.forward_stages(&pixels, batch).unwrap();
        for stage in &stages {
            let (_, want) = reference(&st, &stage.name);
            let err = rel_l2(&stage.data, &want);
            eprintln!("{name} f16: {:<12} relative L2 error {err:.3e}", stage.name);
            assert!(
                err <= F16_STAGE_TOLERANCE,
                "{name} f16: stage {} relative L2 error {err:.3e} > {F16_STAGE_TOLERANCE:e}",
                stage.name
            );
        }
        let (lshape, want_logits) = reference(&st, "logits");
        let err = rel_l2(&logits, &want_logits);
        eprintln!("{name} f16: logits       relative L2 error {err:.3e}");
        assert!(
            err <= F16_LOGIT_TOLERANCE,
            "{name} f16: logits relative L2 error {err:.3e} > {F16_LOGIT_TOLERANCE:e}"
        );
        let labels = lshape[1];
        let argmax = |row: &[f64]| {
            (0..row.len())
                .max_by(|&a, &b| row[a].total_cmp(&row[b]).then(b.cmp(&a)))
                .unwrap()
        };
        for b in 0..batch {
            let row = &want_logits[b * labels..(b + 1) * labels];
            let ours = model.top_k(&logits[b * labels..(b + 1) * labels], 1)[0].index;
            let want = argmax(row);
            // How far the runner-up is behind, to show how safe the agreement is.
            let second = (0..labels)
                .filter(|&i| i != want)
                .map(|i| row[i])
                .fold(f64::NEG_INFINITY, f64::max);
            eprintln!(
                "{name} f16: image {b} top-1 {ours} (transformers {want}, margin {:.3e})",
                row[want] - second
            );
            assert_eq!(ours, want, "{name} f16: top-1 of image {b} changed");
        }
    }
}

/// A non-finite image is its own error only: the images batched with it get the logits they
/// get alone. (Attention's context product reads values in steps of 4 keys; with 37 tokens
/// the last step reached the next image's first values, weighted by zero probabilities, and
/// 0 x inf is NaN: a bad image turned the image before it into NaN, layer by layer.)
#[test]
fn a_non_finite_image_does_not_reach_its_batch_mates() {
    let model = Model::load(gpu(), &fixture("tiny")).unwrap();
    let n = model.image_len();
    let good = |seed| common::random(seed, n, -2.0, 2.0);
    let (a, c) = (good(1), good(2));
    // Finite pixels whose conv products overflow float32.
    let bad = vec![3e38f32; n];
    let batch = [a.clone(), bad, c.clone(), a.clone()].concat();
    let logits = model.forward(&batch, 4).unwrap();
    let labels = logits.len() / 4;
    let image = |i: usize| &logits[i * labels..(i + 1) * labels];
    assert!(
        image(1).iter().any(|v| !v.is_finite()),
        "the overflowing image should have non-finite logits: {:?}",
        image(1)
    );
    for (i, alone) in [(0, &a), (2, &c), (3, &a)] {
        let want = model.forward(alone, 1).unwrap();
        common::assert_close(
            &format!("image {i} batched with a bad one"),
            image(i),
            &want,
            1e-6,
            1e-5,
        );
    }
}

/// A forward pass submitted in slices (each dispatch alone, as `set_submission_flops` with a
/// tiny budget makes it) gives the same logits and stage captures (buffer copies recorded
/// between dispatches) as one submission, and the profile still times every dispatch.
#[test]
fn sliced_submissions_match_one_submission() {
    let dir = fixture("tiny");
    let mut model = Model::load(gpu(), &dir).unwrap();
    let bytes = std::fs::read(dir.join("reference.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (batch, pixels) = input_pixels(&st);
    let (logits, stages) = model.forward_stages(&pixels, batch).unwrap();
    let (whole, _) = model.profile(&pixels, batch).unwrap();

    model.set_submission_flops(Some(1.0));
    let (sliced_logits, sliced_stages) = model.forward_stages(&pixels, batch).unwrap();
    assert_eq!(sliced_logits, logits, "sliced logits differ");
    assert_eq!(sliced_stages.len(), stages.len());
    for (a, b) in sliced_stages.iter().zip(&stages) {
        assert_eq!(a.name, b.name);
        assert_eq!(a.data, b.data, "stage {} differs when sliced", a.name);
    }
    assert_eq!(model.forward(&pixels, batch).unwrap(), logits);
    let (sliced, _) = model.profile(&pixels, batch).unwrap();
    assert_eq!(
        sliced.len(),
        whole.len(),
        "the sliced profile lost dispatches"
    );
}
