//! The `vit-hybrid` command line: classify images or tensors, preprocess, describe a model.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, ensure};
use clap::builder::TypedValueParser;
use clap::{Args, Parser, Subcommand};
use vit_hybrid::model::Precision;
use vit_hybrid::{Classification, Gpu, GpuOptions, Model, hub, npy, preprocess};

#[cfg(feature = "gui")]
mod gui;
mod inputs;
mod result_json;
mod results_file;
#[cfg(not(target_arch = "wasm32"))]
mod serve;
mod shard;

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

/// A count that must be at least 1 (clap refuses 0 with its usage error, exit 2).
fn at_least_one() -> impl clap::builder::TypedValueParser<Value = usize> {
    clap::builder::NonEmptyStringValueParser::new().try_map(|s| match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_string()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{s:?}: {e}")),
    })
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
    /// Kernels to run: those shaped for the adapter's class (default), or `cpu` / `gpu` to run
    /// the other family on it (to profile it, or to check the GPU kernels on a CPU adapter).
    #[arg(long, value_parser = ["cpu", "gpu"])]
    kernels: Option<String>,
    /// How the encoder's and head's linear weights are stored on the GPU: f16 halves their
    /// upload and memory at ~1e-3 relative error in the logits (sums, activations and the
    /// backbone's convs stay f32).
    #[arg(
        long,
        default_value = "f32",
        value_parser = clap::builder::PossibleValuesParser::new(["f32", "f16"])
            .map(|s| s.parse::<Precision>().expect("one of the possible values")),
    )]
    precision: Precision,
}

#[derive(Subcommand)]
enum Command {
    /// Classify image files, folders of images (recursively) or .npy float32 tensors
    /// [3,H,W] / [1,3,H,W].
    Classify {
        #[command(flatten)]
        model: ModelArgs,
        /// How many classes to print per input.
        #[arg(long, default_value_t = 5, value_parser = at_least_one())]
        top_k: usize,
        /// One JSON object per line per input.
        #[arg(long)]
        json: bool,
        /// Include all logits in the output.
        #[arg(long)]
        logits: bool,
        /// Images per forward pass (default: chosen from the adapter).
        #[arg(long, value_parser = at_least_one())]
        batch_size: Option<usize>,
        /// Classify only shard K of N (1-based, e.g. 2/8): the inputs whose path, as given or
        /// found in a folder, hashes to K. The N shards are disjoint and cover every input.
        #[arg(long, value_name = "K/N")]
        shard: Option<shard::Shard>,
        /// Append one JSON line per input to FILE as each finishes (instead of printing).
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Skip the inputs --output's FILE already answers (a cut last line is removed first).
        #[arg(long, requires = "output")]
        resume: bool,
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
    },
    /// Serve the model over HTTP: the Open Inference Protocol (KServe v2 REST), POST /classify
    /// and Prometheus /metrics, with dynamic batching.
    #[cfg(not(target_arch = "wasm32"))]
    Serve {
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        serve: serve::ServeArgs,
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
    /// Time cold start and warm inference; GFLOP/s from the model's operation count.
    Bench {
        #[command(flatten)]
        model: ModelArgs,
        /// Bench random weights for this config.json instead of loading --model's weights
        /// (e.g. tests/data/vit-hybrid-base-bit-384.config.json: the full-size model).
        #[arg(long)]
        random_config: Option<PathBuf>,
        #[arg(long, default_value_t = 1, value_parser = at_least_one())]
        batch_size: usize,
        /// Timed runs after the first.
        #[arg(long, default_value_t = 5, value_parser = at_least_one())]
        iters: usize,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// GPU time of every dispatch, per shader and per layer; optionally a Chrome trace.
    Profile {
        #[command(flatten)]
        model: ModelArgs,
        /// Profile random weights for this config.json instead of --model's weights.
        #[arg(long)]
        random_config: Option<PathBuf>,
        /// Image (or .npy) to run; random pixels if absent.
        image: Option<PathBuf>,
        #[arg(long, default_value_t = 1, value_parser = at_least_one())]
        batch_size: usize,
        /// Write a Chrome trace-event file (open it in Perfetto or chrome://tracing).
        #[arg(long)]
        trace: Option<PathBuf>,
    },
    /// Show the adapter, the model's configuration, parameter count and tensor dtypes.
    Info {
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Print a shader as the GPU gets it (its `#for` blocks expanded), or list the shaders.
    Shader {
        /// Shader name (e.g. linear, conv2d); without it, the list.
        name: Option<String>,
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
    /// Weights of the encoder's linears to start with (switchable in the window).
    #[arg(long, default_value = "f32")]
    pub precision: vit_hybrid::model::Precision,
}

fn gpu(args: &ModelArgs) -> Result<Arc<Gpu>> {
    let opts = GpuOptions {
        adapter: args.adapter.clone(),
        backends: None,
        kernels: args.kernels.as_deref().map(str::parse).transpose()?,
    };
    Ok(Arc::new(Gpu::new(&opts)?))
}

fn open(args: &ModelArgs) -> Result<Model> {
    Model::from_pretrained_with(gpu(args)?, &args.model, args.precision)
        .with_context(|| format!("loading model {}", args.model))
}

/// `--model`, or random weights for `--random-config`.
fn open_or_random(args: &ModelArgs, random_config: Option<&Path>) -> Result<Model> {
    match random_config {
        None => open(args),
        Some(path) => {
            let config = vit_hybrid::config::ModelConfig::load(path)?;
            let weights = vit_hybrid::model::weights::HostWeights::random(&config, 0);
            let pre = preprocess::PreprocessConfig::default();
            Model::from_weights_with(gpu(args)?, config, pre, &weights, args.precision)
        }
    }
}

fn bench_cmd(
    args: &ModelArgs,
    random_config: Option<&Path>,
    batch: usize,
    iters: usize,
    json_out: bool,
) -> Result<()> {
    let source = match random_config {
        Some(p) => vit_hybrid::bench::Source::RandomConfig(p),
        None => vit_hybrid::bench::Source::Pretrained(&args.model),
    };
    let tty = std::io::stderr().is_terminal();
    let progress = |what: &str| {
        if tty {
            eprint!("\r\x1b[2Kbench: {what}");
        } else {
            eprintln!("bench: {what}");
        }
    };
    let report =
        vit_hybrid::bench::run(gpu(args)?, source, args.precision, batch, iters, &progress)?;
    if tty {
        eprint!("\r\x1b[2K");
    }
    if json_out {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}

fn profile_cmd(
    model: &Model,
    image: Option<&Path>,
    batch: usize,
    trace: Option<&Path>,
) -> Result<()> {
    use vit_hybrid::profile::{aggregate, chrome_trace, table};
    let one = match image {
        Some(p) => vit_hybrid::input::load(p, &model.config, &model.preprocess)?,
        None => (0..model.image_len())
            .map(|i| ((i * 7919 % 255) as f32 / 127.5) - 1.0)
            .collect(),
    };
    let batch = batch.max(1);
    let pixels: Vec<f32> = (0..batch).flat_map(|_| one.iter().copied()).collect();
    let (times, method) = model.profile(&pixels, batch)?;
    let total: f64 = times.iter().map(|t| t.seconds).sum();
    println!("adapter: {}", model.gpu().describe());
    println!("timing:  {}", method.describe());
    println!(
        "weights: {} linears ({})",
        model.precision(),
        model.linear_variant().shader()
    );
    println!(
        "batch {batch}: {} dispatches, {:.3} ms of GPU time\n",
        times.len(),
        total * 1e3
    );
    let per_shader = aggregate(&times, |t| format!("{}:{}", t.kernel, t.entry));
    println!("{}", table("shader", &per_shader, total));
    let per_layer = aggregate(&times, |t| t.layer.clone());
    println!("{}", table("layer", &per_layer, total));
    if let Some(path) = trace {
        let text = serde_json::to_string(&chrome_trace(&times, method))?;
        std::fs::write(path, text).with_context(|| format!("writing trace {}", path.display()))?;
        eprintln!(
            "wrote {} (open in https://ui.perfetto.dev or chrome://tracing)",
            path.display()
        );
    }
    Ok(())
}

/// Batch size when none is given: several images per pass on a GPU, few on a CPU adapter
/// where a batch gains little and delays the first result.
fn default_batch(model: &Model) -> Result<usize> {
    let cpu = model.gpu().cpu_kernels();
    Ok(model.max_chunk()?.min(if cpu { 2 } else { 16 }))
}

struct Printer {
    json: bool,
    logits: bool,
    failures: usize,
    /// `--output`: every result goes there as a JSON line, nothing to stdout.
    file: Option<results_file::ResultsFile>,
}

impl Printer {
    fn print(
        &mut self,
        out: &mut impl Write,
        path: &Path,
        result: Result<Classification, String>,
    ) -> Result<()> {
        let name = path.display().to_string();
        if let Some(file) = &mut self.file {
            let line = match &result {
                Ok(c) => result_json::classification(&name, c, self.logits),
                Err(e) => {
                    self.failures += 1;
                    eprintln!("{}", error_line(&name, e));
                    result_json::error(&name, e)
                }
            };
            return file.append(&line);
        }
        match result {
            Ok(c) if self.json => {
                let obj = result_json::classification(&name, &c, self.logits);
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
                eprintln!("{}", error_line(&name, &e));
                if self.json {
                    writeln!(out, "{}", result_json::error(&name, &e))?;
                }
            }
        }
        Ok(())
    }
}

/// An input's error for stderr, naming the input once: most errors already name their file.
fn error_line(name: &str, e: &str) -> String {
    if e.contains(name) {
        format!("error: {e}")
    } else {
        format!("error: {name}: {e}")
    }
}

/// Classifies every input in order, streaming: a decoder thread reads ahead while the GPU runs,
/// each batch is printed as soon as it is done, and a bad input is reported in its place.
fn classify(
    model: &Model,
    files: Vec<PathBuf>,
    top_k: usize,
    printer: &mut Printer,
    batch: usize,
) -> Result<()> {
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
                Ok(_) => results
                    .next()
                    .expect("one result per decoded input")
                    .map_err(|e| format!("{e:#}")),
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
    let (linear_params, linear_bytes) = model.linear_weights();
    let variant = model.linear_variant();
    println!(
        "precision:    {} (encoder and head linears; convs, norms and embeddings stay f32)",
        model.precision()
    );
    println!(
        "linears:      {linear_params} parameters in {:.2} MB, run by {} ({})",
        linear_bytes as f64 / 1e6,
        variant.shader(),
        variant.describe()
    );
    println!(
        "weights:      {:.2} MB on the GPU",
        model.weight_bytes() as f64 / 1e6
    );
    // The other matrix kernels pick their block layout per adapter too.
    let c = &model.config;
    let attn = vit_hybrid::ops::attention::Attention {
        batch: 1,
        seq: c.seq_len(),
        heads: c.num_attention_heads,
        head_dim: c.head_dim(),
    };
    let cpu = model.gpu().cpu_kernels();
    // The texture products' kernel: linear, or linear_subgroup where x rows are broadcast.
    let products = vit_hybrid::ops::linear::Variant::texture(
        model.gpu(),
        vit_hybrid::ops::linear::WeightFormat::F32,
    )
    .kernel()
    .name;
    if cpu {
        println!(
            "conv2d:       texture products storing textures that the group norms read \
             ({products}:main_texture_f32_to_texture4, group_norm:*_slices_texture*); the norms \
             store the next conv's input texture, which 1x1 stride-1 convs read in place and \
             every other conv through its im2col patches (to_texture:im2col_texture*; the \
             stem's image copied row by row, to_texture:im2col_rows); buffer kernels (8x4 invocations owning 32x16 outputs) only past the texture limits"
        );
    } else {
        println!("conv2d:       GPU block layout (16x16 invocations owning 8x8 outputs)");
    }
    if vit_hybrid::ops::attention::fused_fits(model.gpu(), attn) {
        println!(
            "attention:    one dispatch per batch, online softmax over blocks of 32 keys, \
             probabilities shared across the subgroup (attention_fused:main)"
        );
    } else if vit_hybrid::ops::attention::textures_fit(model.gpu(), attn) {
        println!(
            "attention:    texture products, every head in one dispatch \
             ({products}:main_texture_f32_to_texture4, attention:softmax_texture)"
        );
    } else {
        println!(
            "attention:    {:?} variant",
            vit_hybrid::ops::attention::Variant::choose(model.gpu(), attn)
        );
    }
    println!(
        "layer_norm:   {:?} variant",
        vit_hybrid::ops::layer_norm::Variant::choose(model.gpu(), c.hidden_size)
    );
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
        "max batch:    {} images per pass within the adapter's binding and texture limits",
        model.max_chunk()?
    );
    Ok(())
}

fn shader_cmd(name: Option<&str>) -> Result<()> {
    let kernels = vit_hybrid::ops::ALL_KERNELS;
    let Some(name) = name else {
        for k in kernels {
            println!("{}", k.name);
        }
        return Ok(());
    };
    let names: Vec<&str> = kernels.iter().map(|k| k.name).collect();
    let k = kernels.iter().find(|k| k.name == name).ok_or_else(|| {
        anyhow::anyhow!("no shader named {name:?}; shaders: {}", names.join(", "))
    })?;
    print!("{}", k.source);
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
    let cli = Cli::parse();
    // tests/deploy.rs runs the deployment files' command lines through this parser, without
    // a model: the arguments that parsed, as a JSON array on stdout.
    if std::env::var_os("VIT_HYBRID_PARSE_ONLY").is_some() {
        let args: Vec<String> = std::env::args().skip(1).collect();
        println!("{}", serde_json::to_string(&args)?);
        return Ok(true);
    }
    match cli.command {
        Command::Classify {
            model,
            top_k,
            json,
            logits,
            batch_size,
            shard,
            output,
            resume,
            inputs,
        } => {
            let mut files = inputs::expand(&inputs);
            if let Some(shard) = shard {
                let all = files.len();
                files.retain(|f| shard.contains(f));
                eprintln!("shard {shard}: {} of {all} inputs", files.len());
            }
            let file = match &output {
                None => None,
                Some(path) => {
                    let (file, mut existing) = results_file::ResultsFile::open(path, resume)?;
                    if existing.cut > 0 {
                        eprintln!(
                            "{}: removed a cut last line ({} bytes)",
                            path.display(),
                            existing.cut
                        );
                    }
                    if resume {
                        let before = files.len();
                        files.retain(|f| !existing.take(&f.display().to_string()));
                        eprintln!(
                            "resume: {} of {before} inputs already in {}, {} to go",
                            before - files.len(),
                            path.display(),
                            files.len()
                        );
                    }
                    Some(file)
                }
            };
            if files.is_empty() {
                return Ok(true);
            }
            let model = open(&model)?;
            let batch = match batch_size {
                Some(b) => b.max(1),
                None => default_batch(&model)?,
            };
            let mut printer = Printer {
                json,
                logits,
                failures: 0,
                file,
            };
            classify(&model, files, top_k, &mut printer, batch)?;
            Ok(printer.failures == 0)
        }
        #[cfg(not(target_arch = "wasm32"))]
        Command::Serve { model, serve } => serve::run(serve, move || open(&model)).map(|_| true),
        Command::Preprocess { model, image, out } => {
            preprocess_cmd(&model, &image, &out).map(|_| true)
        }
        Command::Info { model } => info(&open(&model)?).map(|_| true),
        Command::Shader { name } => shader_cmd(name.as_deref()).map(|_| true),
        Command::Bench {
            model,
            random_config,
            batch_size,
            iters,
            json,
        } => bench_cmd(&model, random_config.as_deref(), batch_size, iters, json).map(|_| true),
        Command::Profile {
            model,
            random_config,
            image,
            batch_size,
            trace,
        } => {
            // A trace that cannot be written fails now, not after the whole profile.
            if let Some(t) = trace.as_deref() {
                ensure!(
                    !t.is_dir(),
                    "--trace: {} is a folder; give a file name for the trace (e.g. {})",
                    t.display(),
                    t.join("trace.json").display()
                );
                let dir = match t.parent() {
                    Some(d) if !d.as_os_str().is_empty() => d,
                    _ => Path::new("."),
                };
                ensure!(
                    dir.is_dir(),
                    "--trace: folder {} does not exist",
                    dir.display()
                );
            }
            let m = open_or_random(&model, random_config.as_deref())?;
            profile_cmd(&m, image.as_deref(), batch_size, trace.as_deref()).map(|_| true)
        }
        #[cfg(feature = "gui")]
        Command::Gui(args) => gui::run(args).map(|_| true),
    }
}

/// Mesa's implicit Vulkan layer `VK_LAYER_MESA_device_select` opens a Wayland connection
/// while wgpu enumerates adapters, only to sort them, and libwayland prints `error:
/// XDG_RUNTIME_DIR is invalid or not set` to stderr when there is no session (a server, CI,
/// ssh). A run that works must not print an error, and we pick the adapter ourselves, so
/// without a usable runtime dir the layer is turned off through its own switch. A user who
/// sets NODEVICE_SELECT keeps their choice.
fn quiet_device_select_layer() {
    let runtime_dir_ok = std::env::var_os("XDG_RUNTIME_DIR")
        .is_some_and(|d| Path::new(&d).is_absolute() && Path::new(&d).is_dir());
    if !runtime_dir_ok && std::env::var_os("NODEVICE_SELECT").is_none() {
        // SAFETY: at the start of main, before any thread exists.
        unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
    }
}

fn main() -> ExitCode {
    quiet_device_select_layer();
    // SAFETY: at the start of main, before any thread exists.
    unsafe { vit_hybrid::gpu::spread_lavapipe_threads() };
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
