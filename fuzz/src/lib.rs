//! What the fuzz targets share: the fixture configs they parse against, and one function per
//! parser that drives it the way the CLI does.

use vit_hybrid::config::ModelConfig;
use vit_hybrid::model::weights::HostWeights;
use vit_hybrid::preprocess::{self, PreprocessConfig};

/// The tiny fixture's config: the safetensors target checks tensors against it.
pub fn tiny_config() -> ModelConfig {
    ModelConfig::from_json_str(include_str!("../../tests/fixtures/tiny/config.json"))
        .expect("the tiny fixture's config parses")
}

pub fn tiny_preprocess() -> PreprocessConfig {
    PreprocessConfig::from_json_str(include_str!(
        "../../tests/fixtures/tiny/preprocessor_config.json"
    ))
    .expect("the tiny fixture's preprocessor config parses")
}

/// config.json as `Model::load` reads it, then every size the loader derives from it.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return; // read_to_string refuses it before parsing
    };
    if let Ok(cfg) = ModelConfig::from_json_str(text) {
        let tensors = cfg.expected_tensors();
        assert!(!tensors.is_empty());
        let _ = (
            cfg.multiply_adds(),
            cfg.seq_len(),
            cfg.head_dim(),
            cfg.parameter_count(),
        );
    }
}

/// preprocessor_config.json, then the preprocessing it configures on a few small images
/// whose shapes exercise the resize and crop arithmetic.
pub fn preprocessor_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(cfg) = PreprocessConfig::from_json_str(text) else {
        return;
    };
    for (w, h) in [(7, 5), (1, 3), (40, 1)] {
        let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let _ = preprocess::preprocess_rgb(&img, &cfg);
    }
}

/// model.safetensors as `HostWeights::load` reads it (after the memory map), against the tiny
/// fixture's config.
pub fn safetensors(data: &[u8], config: &ModelConfig) {
    let _ = HostWeights::from_bytes(data, config, "model.safetensors");
}

/// A .npy input as `input::load` reads it.
pub fn npy(data: &[u8]) {
    let _ = vit_hybrid::npy::read_f32_from(
        &mut std::io::Cursor::new(data),
        data.len() as u64,
        &"input.npy",
    );
}

/// An image input as `preprocess_file` (`load_image` then `preprocess`) reads it. With
/// `only`, inputs that are not that format are skipped so the fuzzer's time goes to its
/// decoder.
pub fn image(data: &[u8], only: Option<image::ImageFormat>, pre: &PreprocessConfig) {
    // TGA has no magic number: it is whatever no other format claims.
    let guessed = image::guess_format(data).unwrap_or(image::ImageFormat::Tga);
    if only.is_some_and(|format| format != guessed) {
        return;
    }
    if let Ok(img) = preprocess::decode_image(data) {
        let _ = preprocess::preprocess(&img, pre);
    }
}
