//! Classify images with a model folder: `cargo run --example classify -- MODEL_DIR IMAGE...`
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use vit_hybrid::{Gpu, GpuOptions, Model};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (model_dir, images) = args
        .split_first()
        .context("usage: classify MODEL_DIR IMAGE...")?;

    // One GPU context; an app that already has a wgpu device would use Gpu::from_device.
    let gpu = Arc::new(Gpu::new(&GpuOptions::default())?);
    let model = Model::load(gpu, Path::new(model_dir))?;

    let decoded = images
        .iter()
        .map(|p| vit_hybrid::preprocess::load_image(Path::new(p)))
        .collect::<Result<Vec<_>>>()?;
    // One batch, one submission, one readback.
    let results = model.classify_images(&decoded, 3)?;

    for (path, result) in images.iter().zip(results) {
        println!("{path}");
        let result = match result {
            Ok(r) => r,
            Err(e) => {
                println!("  error: {e:#}");
                continue;
            }
        };
        for p in result.top {
            println!("  {:5.1}%  {}", p.probability * 100.0, p.label);
        }
    }
    Ok(())
}
