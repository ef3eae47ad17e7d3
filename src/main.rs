//! The `vit-hybrid` command line: classify images or tensors, and describe a model.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use serde_json::json;
use vit_hybrid::{Gpu, GpuOptions, Model, input};

#[derive(Parser)]
#[command(
    name = "vit-hybrid",
    version,
    about = "ViT-Hybrid image classification on any GPU (wgpu + WGSL)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct ModelArgs {
    /// Model folder holding config.json, preprocessor_config.json and model.safetensors.
    #[arg(long)]
    model: PathBuf,
    /// Adapter to run on: a substring of its name or its index (see `info`).
    #[arg(long)]
    adapter: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Classify image files (PNG, JPEG, ...) or .npy float32 tensors [3,H,W] / [1,3,H,W].
    Classify {
        #[command(flatten)]
        model: ModelArgs,
        /// How many classes to print per input.
        #[arg(long, default_value_t = 5)]
        top_k: usize,
        /// One JSON object per line per input.
        #[arg(long)]
        json: bool,
        /// Include all logits in the JSON output.
        #[arg(long)]
        logits: bool,
        /// Images per forward pass.
        #[arg(long, default_value_t = 8)]
        batch_size: usize,
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
    },
    /// Show the adapter, the model's configuration, parameter count and tensor dtypes.
    Info {
        #[command(flatten)]
        model: ModelArgs,
    },
}

fn open(args: &ModelArgs) -> Result<Model> {
    let gpu = Gpu::new(&GpuOptions {
        adapter: args.adapter.clone(),
        backends: None,
    })?;
    Model::load(Arc::new(gpu), &args.model)
        .with_context(|| format!("loading model {}", args.model.display()))
}

/// Classifies every input in order; a bad input is reported in its place and the rest still run.
fn classify(
    model: &Model,
    inputs: &[PathBuf],
    top_k: usize,
    json_out: bool,
    with_logits: bool,
    batch_size: usize,
) -> Result<bool> {
    let mut all_ok = true;
    let mut out = std::io::stdout().lock();
    for group in inputs.chunks(batch_size.max(1)) {
        let mut pixels = Vec::new();
        let mut loaded = Vec::new();
        let mut results: Vec<Result<vit_hybrid::Classification, String>> = Vec::new();
        for path in group {
            match input::load(path, model) {
                Ok(p) => {
                    pixels.extend(p);
                    loaded.push(results.len());
                    results.push(Err(String::new()));
                }
                Err(e) => results.push(Err(format!("{e:#}"))),
            }
        }
        if !loaded.is_empty() {
            let classified = model.classify(&pixels, loaded.len(), top_k)?;
            for (slot, c) in loaded.into_iter().zip(classified) {
                results[slot] = Ok(c);
            }
        }
        for (path, result) in group.iter().zip(results) {
            let name = path.display().to_string();
            match result {
                Ok(c) if json_out => {
                    let top: Vec<_> = c
                        .top
                        .iter()
                        .map(|p| json!({"index": p.index, "label": p.label, "probability": p.probability}))
                        .collect();
                    let mut obj = json!({"input": name, "top": top});
                    if with_logits {
                        obj["logits"] = json!(c.logits);
                    }
                    writeln!(out, "{obj}")?;
                }
                Ok(c) => {
                    writeln!(out, "{name}")?;
                    for (rank, p) in c.top.iter().enumerate() {
                        writeln!(
                            out,
                            "  {:>2}. {:>6.2}%  {} [{}]",
                            rank + 1,
                            p.probability * 100.0,
                            p.label,
                            p.index
                        )?;
                    }
                    if with_logits {
                        writeln!(out, "  logits: {:?}", c.logits)?;
                    }
                }
                Err(e) => {
                    all_ok = false;
                    eprintln!("error: {name}: {e}");
                    if json_out {
                        writeln!(out, "{}", json!({"input": name, "error": e}))?;
                    }
                }
            }
        }
        out.flush()?;
    }
    Ok(all_ok)
}

fn info(model: &Model) {
    let c = &model.config;
    let b = &c.backbone;
    println!("adapter:      {}", model.gpu().describe());
    println!(
        "image size:   {}x{} (patch {}x{})",
        c.image_size.0, c.image_size.1, c.patch_size.0, c.patch_size.1
    );
    println!(
        "backbone:     BiT bottleneck, stem {} ch, stages {:?} layers, {:?} channels, {} groups",
        b.embedding_size, b.depths, b.stage_channels, b.num_groups
    );
    let (fh, fw) = c.feature_size();
    println!(
        "feature map:  {}x{}x{} -> {} tokens + CLS",
        c.feature_channels(),
        fh,
        fw,
        c.num_patches()
    );
    println!(
        "encoder:      {} layers, hidden {}, {} heads, MLP {}, LayerNorm eps {:e}",
        c.num_hidden_layers,
        c.hidden_size,
        c.num_attention_heads,
        c.intermediate_size,
        c.layer_norm_eps
    );
    println!("labels:       {}", c.num_labels());
    println!(
        "parameters:   {} in {} tensors",
        model.info.parameter_count, model.info.tensor_count
    );
    let dtypes: Vec<String> = model
        .info
        .dtypes
        .iter()
        .map(|(d, n)| format!("{d} x{n}"))
        .collect();
    println!("dtypes:       {}", dtypes.join(", "));
    if !model.info.unused_tensors.is_empty() {
        println!(
            "unused:       {} tensors ({})",
            model.info.unused_tensors.len(),
            model.info.unused_tensors.join(", ")
        );
    }
    println!(
        "work:         {:.2} GFLOP per image",
        2.0 * c.multiply_adds() / 1e9
    );
}

fn run() -> Result<bool> {
    match Cli::parse().command {
        Command::Classify {
            model,
            top_k,
            json,
            logits,
            batch_size,
            inputs,
        } => {
            let model = open(&model)?;
            classify(&model, &inputs, top_k, json, logits, batch_size)
        }
        Command::Info { model } => {
            info(&open(&model)?);
            Ok(true)
        }
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
