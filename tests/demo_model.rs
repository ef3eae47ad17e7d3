//! The demo model (`tests/fixtures/digits`, trained by tools/train_demo.py) on its whole
//! held-out split: the same predictions, accuracy and logits as the transformers run that
//! the script recorded, and the example digit PNGs classified by the CLI as transformers
//! classified them.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::gpu;
use image::{DynamicImage, GrayImage};
use safetensors::{Dtype, SafeTensors};
use vit_hybrid::model::Model;

/// Largest |logit - transformers' float64 logit|, as in tests/reference.rs.
const LOGIT_TOLERANCE: f64 = 1e-4;
/// Held-out images per forward pass: a few batches, so batching is exercised too.
const BATCH: usize = 40;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn fixture() -> PathBuf {
    root().join("tests/fixtures/digits")
}

/// The held-out split as tools/train_demo.py recorded it.
struct Heldout {
    /// [N] 8x8 gray digits, row-major.
    images: Vec<Vec<u8>>,
    labels: Vec<usize>,
    /// transformers' float32 run.
    predicted: Vec<usize>,
    /// [N, labels] transformers' float64 run of the same weights.
    logits_f64: Vec<f64>,
    correct: usize,
}

fn tensor<'a>(st: &'a SafeTensors, name: &str, dtype: Dtype) -> (Vec<usize>, &'a [u8]) {
    let t = st
        .tensor(name)
        .unwrap_or_else(|e| panic!("heldout.safetensors: tensor {name}: {e}"));
    assert_eq!(t.dtype(), dtype, "heldout.safetensors: dtype of {name}");
    (t.shape().to_vec(), t.data())
}

fn indices(st: &SafeTensors, name: &str) -> Vec<usize> {
    let (_, data) = tensor(st, name, Dtype::I64);
    data.chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as usize)
        .collect()
}

fn heldout() -> Heldout {
    let path = fixture().join("heldout.safetensors");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let st = SafeTensors::deserialize(&bytes)
        .unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()));
    let (shape, data) = tensor(&st, "images", Dtype::U8);
    assert_eq!(&shape[1..], &[8, 8], "held-out images should be 8x8");
    let images = data.chunks_exact(64).map(<[u8]>::to_vec).collect();
    let (_, data) = tensor(&st, "logits_f64", Dtype::F64);
    let logits_f64 = data
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let correct = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get("correct"))
        .expect("heldout.safetensors metadata has no \"correct\"")
        .parse()
        .expect("\"correct\" is a count");
    Heldout {
        images,
        labels: indices(&st, "labels"),
        predicted: indices(&st, "predicted"),
        logits_f64,
        correct,
    }
}

fn accuracy(correct: usize, n: usize) -> f64 {
    correct as f64 / n as f64
}

#[test]
fn heldout_split_matches_transformers() {
    let model = Model::load(gpu(), &fixture())
        .unwrap_or_else(|e| panic!("loading the digits fixture: {e:#}"));
    let data = heldout();
    let n = data.images.len();
    let labels = model.config.num_labels();
    assert_eq!(labels, 10);
    assert_eq!(data.labels.len(), n);
    assert_eq!(data.predicted.len(), n);
    assert_eq!(data.logits_f64.len(), n * labels);

    // Decoded 8x8 gray images, preprocessed by the crate exactly as `classify` does a PNG.
    let images: Vec<DynamicImage> = data
        .images
        .iter()
        .map(|px| DynamicImage::ImageLuma8(GrayImage::from_raw(8, 8, px.clone()).unwrap()))
        .collect();
    let mut results = Vec::with_capacity(n);
    for (c, chunk) in images.chunks(BATCH).enumerate() {
        let batch = model
            .classify_images(chunk, 1)
            .unwrap_or_else(|e| panic!("classifying held-out images from {}: {e:#}", c * BATCH));
        for (i, r) in batch.into_iter().enumerate() {
            results.push(r.unwrap_or_else(|e| panic!("held-out image {}: {e:#}", c * BATCH + i)));
        }
    }

    let (mut worst, mut at) = (0.0f64, 0);
    for (i, r) in results.iter().enumerate() {
        for (j, &g) in r.logits.iter().enumerate() {
            let d = (g as f64 - data.logits_f64[i * labels + j]).abs();
            if d > worst || d.is_nan() {
                (worst, at) = (d, i * labels + j);
            }
        }
    }
    eprintln!(
        "digits: logits largest |diff| from transformers (float64) {worst:.3e} (image {}, class {})",
        at / labels,
        at % labels
    );
    assert!(
        worst <= LOGIT_TOLERANCE,
        "held-out image {}: logit {} is {} but transformers gives {} (|diff| {worst:e} > {LOGIT_TOLERANCE:e})",
        at / labels,
        at % labels,
        results[at / labels].logits[at % labels],
        data.logits_f64[at]
    );

    let ours: Vec<usize> = results.iter().map(|r| r.top[0].index).collect();
    let differ: Vec<(usize, usize, usize)> = (0..n)
        .filter(|&i| ours[i] != data.predicted[i])
        .map(|i| (i, ours[i], data.predicted[i]))
        .collect();
    assert!(
        differ.is_empty(),
        "{} of {n} held-out predictions differ from transformers' (image, ours, theirs): {differ:?}",
        differ.len()
    );
    let correct = (0..n).filter(|&i| ours[i] == data.labels[i]).count();
    eprintln!(
        "digits: {correct}/{n} held-out digits correct, accuracy {:.4} (transformers: {}/{n})",
        accuracy(correct, n),
        data.correct
    );
    assert_eq!(
        correct,
        data.correct,
        "accuracy {:.4} differs from transformers' {:.4}",
        accuracy(correct, n),
        accuracy(data.correct, n)
    );
    // The demo is only worth showing if the model learned the task.
    assert!(
        accuracy(correct, n) > 0.9,
        "held-out accuracy {:.4} is not above 0.9",
        accuracy(correct, n)
    );
}

/// The example PNGs through the binary, as the README's first command runs them.
#[test]
fn example_pngs_classify_as_transformers_did() {
    let path = fixture().join("examples.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let examples: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()));
    let examples = examples.as_array().expect("examples.json is a list");
    assert!(
        examples.len() >= 6,
        "only {} examples recorded",
        examples.len()
    );
    let files: Vec<String> = examples
        .iter()
        .map(|e| e["file"].as_str().expect("example has a file").to_string())
        .collect();
    let out = Command::new(env!("CARGO_BIN_EXE_vit-hybrid"))
        .args(["classify", "--model", "tests/fixtures/digits"])
        .args(["--json", "--logits", "--top-k", "1"])
        .args(&files)
        .current_dir(root())
        .output()
        .expect("starting vit-hybrid");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "classify failed; stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), examples.len(), "one line per PNG:\n{stdout}");
    for (line, want) in lines.iter().zip(examples) {
        let got: serde_json::Value = serde_json::from_str(line).unwrap();
        let file = want["file"].as_str().unwrap();
        assert_eq!(got["input"], file, "results out of order");
        let top = &got["top"][0];
        assert_eq!(
            top["index"], want["predicted"],
            "{file}: classified as {} but transformers said {}",
            top["index"], want["predicted"]
        );
        assert_eq!(top["label"], want["predicted"].to_string(), "{file}: label");
        let got_logits: Vec<f32> = got["logits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let want_logits: Vec<f32> = want["logits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        common::assert_close(
            &format!("{file} logits"),
            &got_logits,
            &want_logits,
            LOGIT_TOLERANCE as f32,
            0.0,
        );
    }
}
