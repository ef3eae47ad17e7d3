//! The `vit-hybrid` command line: classify images or tensors, preprocess, describe a model.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use serde_json::json;
use vit_hybrid::{Classification, Gpu, GpuOptions, Model, hub, npy, preprocess};

#[cfg(feature = "gui")]
mod gui;
mod inputs;

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
    /// Model folder (config.json, preprocessor_config.json, model.safetensors) or Hugging Face
    /// hub id, downloaded once into the hub cache (HF_HOME / HF_HUB_CACHE; HF_HUB_OFFLINE=1
    /// uses the cache only).
    #[arg(long, default_value = hub::DEFAULT_MODEL)]
    model: String,
    /// Adapter to run on: a substring of its name or its index (see `info`).
    #[arg(long)]
    adapter: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Classify image files, folders of images (recursively) or .npy float32 tensors
    /// [3,H,W] / [1,3,H,W].
    Classify {
        #[command(flatten)]
        model: ModelArgs,
        /// How many classes to print per input.
        #[arg(long, default_value_t = 5)]
        top_k: usize,
        /// One JSON object per line per input.
        #[arg(long)]
        json: bool,
        /// Include all logits in the output.
        #[arg(long)]
        logits: bool,
        /// Images per forward pass (default: chosen from the adapter).
        #[arg(long)]
        batch_size: Option<usize>,
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
    },
    /// Write the float32 [1, 3, H, W] tensor the network would get for an image.
    Preprocess {
        /// Model folder or hub id (only its preprocessor_config.json is read).
        #[arg(long, default_value = hub::DEFAULT_MODEL)]
        model: String,
        image: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Open the desktop app: drop images, see the classes and where the GPU time goes.
    #[cfg(feature = "gui")]
    Gui(GuiArgs),
    /// Show the adapter, the model's configuration, parameter count and tensor dtypes.
    Info {
        #[command(flatten)]
        model: ModelArgs,
    },
}

/// Arguments of `vit-hybrid gui`.
#[cfg(feature = "gui")]
#[derive(Args, Clone, Debug)]
pub struct GuiArgs {
    /// Model folder or hub id.
    #[arg(long, default_value = hub::DEFAULT_MODEL)]
    pub model: String,
    /// Images to open (the first is shown and classified; the others can be stepped through).
    pub images: Vec<PathBuf>,
    /// Render the window to this PNG once the first result is shown (headless checks).
    #[arg(long)]
    pub screenshot: Option<PathBuf>,
    /// Quit once the first result is shown (and the screenshot, if asked for, is written).
    #[arg(long)]
    pub exit_after_first_result: bool,
}

fn open(args: &ModelArgs) -> Result<Model> {
    let gpu = Gpu::new(&GpuOptions {
        adapter: args.adapter.clone(),
        backends: None,
    })?;
    Model::from_pretrained(Arc::new(gpu), &args.model)
        .with_context(|| format!("loading model {}", args.model))
}

/// Batch size when none is given: several images per pass on a GPU, few on a CPU adapter
/// where a batch gains little and delays the first result.
fn default_batch(model: &Model) -> Result<usize> {
    let cpu = model.gpu().info.device_type == wgpu::DeviceType::Cpu;
    Ok(model.max_chunk()?.min(if cpu { 2 } else { 16 }))
}

struct Printer {
    json: bool,
    logits: bool,
    failures: usize,
}

impl Printer {
    fn print(
        &mut self,
        out: &mut impl Write,
        path: &Path,
        result: Result<Classification, String>,
    ) -> Result<()> {
        let name = path.display().to_string();
        match result {
            Ok(c) if self.json => {
                let top: Vec<_> = c
                    .top
                    .iter()
                    .map(|p| json!({"index": p.index, "label": p.label, "probability": p.probability}))
                    .collect();
                let mut obj = json!({"input": name, "top": top});
                if self.logits {
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
                if self.logits {
                    writeln!(out, "  logits: {:?}", c.logits)?;
                }
            }
            Err(e) => {
                self.failures += 1;
                eprintln!("error: {name}: {e}");
                if self.json {
                    writeln!(out, "{}", json!({"input": name, "error": e}))?;
                }
            }
        }
        Ok(())
    }
}

/// Classifies every input in order, streaming: a decoder thread reads ahead while the GPU runs,
/// each batch is printed as soon as it is done, and a bad input is reported in its place.
fn classify(
    model: &Model,
    paths: &[PathBuf],
    top_k: usize,
    printer: &mut Printer,
    batch: usize,
) -> Result<()> {
    let files = inputs::expand(paths);
    let total = files.len() as u64;
    let bar = if std::io::stderr().is_terminal() && total > 1 {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} images {per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut out = std::io::stdout().lock();
    let decoded = inputs::decode_ahead(files, model, 2 * batch);
    let mut pending: Vec<(PathBuf, Result<Vec<f32>, String>)> = Vec::with_capacity(batch);
    let mut flush = |pending: &mut Vec<(PathBuf, Result<Vec<f32>, String>)>,
                     out: &mut std::io::StdoutLock<'_>|
     -> Result<()> {
        let ok: Vec<&Vec<f32>> = pending
            .iter()
            .filter_map(|(_, r)| r.as_ref().ok())
            .collect();
        let mut results = if ok.is_empty() {
            Vec::new()
        } else {
            let pixels: Vec<f32> = ok.iter().flat_map(|p| p.iter().copied()).collect();
            model.classify(&pixels, ok.len(), top_k)?
        }
        .into_iter();
        for (path, r) in pending.drain(..) {
            let r = match r {
                Ok(_) => Ok(results.next().expect("one result per decoded input")),
                Err(e) => Err(e),
            };
            bar.suspend(|| printer.print(out, &path, r))?;
            bar.inc(1);
        }
        out.flush()?;
        Ok(())
    };
    for item in decoded {
        pending.push(item);
        if pending.len() == batch {
            flush(&mut pending, &mut out)?;
        }
    }
    flush(&mut pending, &mut out)?;
    bar.finish_and_clear();
    Ok(())
}

fn info(model: &Model) -> Result<()> {
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
    println!(
        "max batch:    {} images per pass within the adapter's binding limit",
        model.max_chunk()?
    );
    Ok(())
}

fn preprocess_cmd(model: &str, image: &Path, out: &Path) -> Result<()> {
    let dir = hub::resolve(model)?;
    let cfg = preprocess::PreprocessConfig::load(&dir.join("preprocessor_config.json"))?;
    let px = preprocess::preprocess_file(image, &cfg)?;
    npy::write_f32(out, &[1, 3, px.height, px.width], &px.data)
        .with_context(|| format!("writing {}", out.display()))?;
    eprintln!(
        "wrote {} ([1, 3, {}, {}] float32)",
        out.display(),
        px.height,
        px.width
    );
    Ok(())
}

/// Ok(true): everything worked; Ok(false): some inputs failed.
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
            let batch = match batch_size {
                Some(b) => b.max(1),
                None => default_batch(&model)?,
            };
            let mut printer = Printer {
                json,
                logits,
                failures: 0,
            };
            classify(&model, &inputs, top_k, &mut printer, batch)?;
            Ok(printer.failures == 0)
        }
        Command::Preprocess { model, image, out } => {
            preprocess_cmd(&model, &image, &out).map(|_| true)
        }
        Command::Info { model } => info(&open(&model)?).map(|_| true),
        #[cfg(feature = "gui")]
        Command::Gui(args) => gui::run(args).map(|_| true),
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
