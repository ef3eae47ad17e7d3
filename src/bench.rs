//! `vit-hybrid bench`: cold start broken into its steps, then warm latency over many runs.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Result, ensure};
use serde::Serialize;

use crate::config::ModelConfig;
use crate::gpu::Gpu;
use crate::model::weights::HostWeights;
use crate::model::{Model, Precision};
use crate::preprocess::PreprocessConfig;

/// Where the weights come from.
pub enum Source<'a> {
    /// A model folder or hub id.
    Pretrained(&'a str),
    /// Seeded random weights for this `config.json` (benchmarks without the checkpoint).
    RandomConfig(&'a Path),
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub adapter: String,
    /// How the linears' weights were stored (`f32`/`f16`) and the entry point that ran them.
    pub precision: String,
    pub linear_entry: String,
    /// Bytes of weights uploaded to the GPU.
    pub weight_bytes: usize,
    pub batch_size: usize,
    pub iters: usize,
    /// Reading and checking the weights (or generating random ones).
    pub load_weights_s: f64,
    /// Weight standardisation and upload to the GPU.
    pub upload_s: f64,
    /// Pipelines, buffers and the recorded program for this batch size.
    pub prepare_s: f64,
    pub first_inference_s: f64,
    pub cold_start_s: f64,
    pub median_s: f64,
    pub min_s: f64,
    pub max_s: f64,
    pub median_s_per_image: f64,
    pub images_per_s: f64,
    pub gflop_per_image: f64,
    pub gflops_per_s: f64,
}

/// Loads, prepares and times the model; `progress` hears what is happening.
pub fn run(
    gpu: Arc<Gpu>,
    source: Source<'_>,
    precision: Precision,
    batch: usize,
    iters: usize,
    progress: &dyn Fn(&str),
) -> Result<Report> {
    ensure!(
        batch > 0 && iters > 0,
        "batch size and iterations must be positive"
    );
    progress("loading weights");
    let t = Instant::now();
    let (config, pre, weights) = match source {
        Source::Pretrained(m) => {
            let dir = crate::hub::resolve(m)?;
            let config = ModelConfig::load(&dir.join("config.json"))?;
            let pre = PreprocessConfig::load(&dir.join("preprocessor_config.json"))?;
            let weights = HostWeights::load(&dir.join("model.safetensors"), &config)?;
            (config, pre, weights)
        }
        Source::RandomConfig(path) => {
            let config = ModelConfig::load(path)?;
            let weights = HostWeights::random(&config, 0);
            (config, PreprocessConfig::default(), weights)
        }
    };
    let load_weights_s = t.elapsed().as_secs_f64();
    progress("uploading weights");
    let t = Instant::now();
    let model = Model::from_weights_with(gpu.clone(), config, pre, &weights, precision)?;
    gpu.device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let upload_s = t.elapsed().as_secs_f64();
    drop(weights);
    progress("compiling pipelines");
    let t = Instant::now();
    model.prepare(batch)?;
    let prepare_s = t.elapsed().as_secs_f64();
    let pixels: Vec<f32> = (0..batch * model.image_len())
        .map(|i| ((i % 255) as f32 / 127.5) - 1.0)
        .collect();
    progress("first inference");
    let t = Instant::now();
    model.forward(&pixels, batch)?;
    let first_inference_s = t.elapsed().as_secs_f64();
    let mut times = Vec::with_capacity(iters);
    for i in 0..iters {
        progress(&format!("run {}/{iters}", i + 1));
        let t = Instant::now();
        model.forward(&pixels, batch)?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let median_s = if iters % 2 == 1 {
        times[iters / 2]
    } else {
        0.5 * (times[iters / 2 - 1] + times[iters / 2])
    };
    let gflop_per_image = 2.0 * model.config.multiply_adds() / 1e9;
    Ok(Report {
        adapter: gpu.describe(),
        precision: precision.to_string(),
        linear_entry: model.linear_variant().shader(),
        weight_bytes: model.weight_bytes(),
        batch_size: batch,
        iters,
        load_weights_s,
        upload_s,
        prepare_s,
        first_inference_s,
        cold_start_s: load_weights_s + upload_s + prepare_s + first_inference_s,
        median_s,
        min_s: times[0],
        max_s: times[iters - 1],
        median_s_per_image: median_s / batch as f64,
        images_per_s: batch as f64 / median_s,
        gflop_per_image,
        gflops_per_s: gflop_per_image * batch as f64 / median_s,
    })
}

impl Report {
    pub fn to_text(&self) -> String {
        format!(
            "adapter:          {}\n\
             weights:          {:.1} MB on the GPU, {} linears ({})\n\
             batch size:       {}\n\
             cold start:       {:.3} s (weights {:.3} s, upload {:.3} s, pipelines {:.3} s, first inference {:.3} s)\n\
             warm latency:     median {:.4} s, min {:.4} s, max {:.4} s per batch over {} runs\n\
             per image:        {:.4} s ({:.2} images/s)\n\
             throughput:       {:.2} GFLOP/s ({:.1} GFLOP per image)\n",
            self.adapter,
            self.weight_bytes as f64 / 1e6,
            self.precision,
            self.linear_entry,
            self.batch_size,
            self.cold_start_s,
            self.load_weights_s,
            self.upload_s,
            self.prepare_s,
            self.first_inference_s,
            self.median_s,
            self.min_s,
            self.max_s,
            self.iters,
            self.median_s_per_image,
            self.images_per_s,
            self.gflops_per_s,
            self.gflop_per_image
        )
    }
}
