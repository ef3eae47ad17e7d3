//! Seconds per image of the full-size architecture (random weights from
//! tests/data/vit-hybrid-base-bit-384.config.json) and the slowest kernels:
//! `cargo run --release --example full_size_timing -- [BATCH...]`
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use vit_hybrid::config::ModelConfig;
use vit_hybrid::model::{Model, weights::HostWeights};
use vit_hybrid::preprocess::PreprocessConfig;
use vit_hybrid::{Gpu, GpuOptions, profile};

fn main() -> Result<()> {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let config = ModelConfig::load(&data.join("vit-hybrid-base-bit-384.config.json"))?;
    let pre =
        PreprocessConfig::load(&data.join("vit-hybrid-base-bit-384.preprocessor_config.json"))?;
    let gpu = Arc::new(Gpu::new(&GpuOptions::default())?);
    println!("adapter: {}", gpu.describe());
    let t = Instant::now();
    let model = Model::from_weights(gpu, config.clone(), pre, &HostWeights::random(&config, 1))?;
    println!(
        "load (random weights, upload): {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let batches: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let gflop = 2.0 * config.multiply_adds() / 1e9;
    for batch in if batches.is_empty() {
        vec![1, 4]
    } else {
        batches
    } {
        let pixels = vec![0.1f32; batch * model.image_len()];
        let t = Instant::now();
        model.forward(&pixels, batch)?;
        let first = t.elapsed().as_secs_f64();
        let t = Instant::now();
        model.forward(&pixels, batch)?;
        let warm = t.elapsed().as_secs_f64();
        println!(
            "batch {batch}: first {first:.2} s, warm {warm:.2} s = {:.2} s/image, {:.2} GFLOP/s",
            warm / batch as f64,
            gflop * batch as f64 / warm
        );
        let (times, _) = model.profile(&pixels, batch)?;
        let total: f64 = times.iter().map(|t| t.seconds).sum();
        println!("  per kernel (dispatches timed one by one, total {total:.2} s):");
        for (k, s, f, n) in profile::aggregate(&times, |t| format!("{}:{}", t.kernel, t.entry)) {
            println!(
                "  {k:<22} {s:7.3} s {:5.1}%  {n:4} dispatches  {:6.2} GFLOP/s",
                100.0 * s / total,
                f / s / 1e9
            );
        }
    }
    Ok(())
}
