//! One CLI/library input file turned into the model's pixel tensor: an image (preprocessed
//! as the checkpoint's processor would) or a `.npy` float32 tensor used as is.

use std::path::Path;

use anyhow::{Context, Result, ensure};

use crate::config::ModelConfig;
use crate::model::Model;
use crate::preprocess::PreprocessConfig;
use crate::{npy, preprocess};

/// Reads `path` into a [3, H, W] tensor of the size the model of `config` takes.
pub fn load(path: &Path, config: &ModelConfig, pre: &PreprocessConfig) -> Result<Vec<f32>> {
    let (h, w) = config.image_size;
    let is_npy = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"));
    if is_npy {
        let (shape, data) = npy::read_f32(path)?;
        let ok = matches!(shape.as_slice(), [3, a, b] | [1, 3, a, b] if *a == h && *b == w);
        ensure!(
            ok,
            "{}: tensor shape {shape:?}, expected [3, {h}, {w}] or [1, 3, {h}, {w}]",
            path.display()
        );
        ensure!(
            data.iter().all(|v| v.is_finite()),
            "{}: the tensor holds NaN or infinite values",
            path.display()
        );
        return Ok(data);
    }
    let pixels = preprocess::preprocess_file(path, pre)?;
    ensure!(
        (pixels.height, pixels.width) == (h, w),
        "{}: preprocessing gives {}x{} pixels but the model takes {h}x{w} (check preprocessor_config.json)",
        path.display(),
        pixels.height,
        pixels.width
    );
    Ok(pixels.data)
}

/// Preprocesses a decoded image for `model`.
pub fn from_image(img: &image::DynamicImage, model: &Model) -> Result<Vec<f32>> {
    let (h, w) = model.config.image_size;
    let pixels = preprocess::preprocess(img, &model.preprocess).context("preprocessing image")?;
    ensure!(
        (pixels.height, pixels.width) == (h, w),
        "preprocessing gives {}x{} pixels but the model takes {h}x{w}",
        pixels.height,
        pixels.width
    );
    Ok(pixels.data)
}
