//! The full-size architecture (google/vit-hybrid-base-bit-384's config.json) with random
//! weights: tensor and parameter counts equal the real checkpoint's, and a forward pass on
//! the GPU gives 1000 finite logits.

mod common;

use std::path::Path;

use vit_hybrid::config::ModelConfig;
use vit_hybrid::model::Model;
use vit_hybrid::model::weights::HostWeights;
use vit_hybrid::preprocess::PreprocessConfig;

fn data(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

#[test]
fn full_size_counts_and_forward() {
    let config = ModelConfig::load(&data("vit-hybrid-base-bit-384.config.json")).unwrap();
    assert_eq!(config.image_size, (384, 384));
    assert_eq!(config.seq_len(), 577);
    assert_eq!(config.feature_channels(), 1024);
    assert_eq!(config.num_labels(), 1000);
    let expected = config.expected_tensors();
    assert_eq!(expected.len(), 356, "tensor count of the real checkpoint");
    let params: usize = expected
        .iter()
        .map(|(_, s)| s.iter().product::<usize>())
        .sum();
    assert_eq!(params, 98_950_952, "parameter count of the real checkpoint");
    // SPEC.md: 67.2 G multiply-adds per 384x384 image.
    let gmacs = config.multiply_adds() / 1e9;
    assert!(
        (gmacs - 67.2).abs() < 0.1,
        "{gmacs} G multiply-adds, expected about 67.2"
    );

    let weights = HostWeights::random(&config, 7);
    assert_eq!(weights.tensor_count(), 356);
    assert_eq!(weights.parameter_count(), 98_950_952);
    let pre =
        PreprocessConfig::load(&data("vit-hybrid-base-bit-384.preprocessor_config.json")).unwrap();
    let model = Model::from_weights(common::gpu(), config, pre, &weights).unwrap();
    let pixels = common::random(3, model.image_len(), -1.0, 1.0);
    let logits = model.forward(&pixels, 1).unwrap();
    assert_eq!(logits.len(), 1000);
    assert!(logits.iter().all(|l| l.is_finite()), "non-finite logits");
    let spread = logits.iter().copied().fold(f32::MIN, f32::max)
        - logits.iter().copied().fold(f32::MAX, f32::min);
    assert!(
        spread > 1e-3,
        "logits are all equal ({spread}): the network collapsed"
    );
}
