//! The whole classifier: weights uploaded once at load, one recorded program per batch size,
//! and a forward pass that submits once (or in slices, see [`Model::set_submission_flops`])
//! and reads the logits back once.
//!
//! The forward pass is async (`forward_async`, `classify_async`...): the browser must never
//! block on the GPU. Natively the plain methods wrap those with `pollster`.

pub mod bit;
pub mod vit;
pub mod weights;

use std::collections::HashMap;
#[cfg(not(target_arch = "wasm32"))]
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail, ensure};

use crate::config::ModelConfig;
use crate::gpu::Gpu;
use crate::ops::linear::{Variant, WeightFormat};
use crate::ops::{BufferCopy, Program, encode_copy};
use crate::preprocess::PreprocessConfig;
use bit::{Backbone, BackboneBuffers, Tap};
use vit::{Vit, VitBuffers};
use weights::HostWeights;

/// How the encoder's and head's linear weights (85M of the full-size model's 99M parameters)
/// are stored on the GPU. Convolutions, norms, embeddings, biases and every activation stay
/// f32, and so do the linears' sums.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    #[default]
    F32,
    /// f16 weights: half their upload and memory; logits within 1e-3 relative L2 error of
    /// float64 on the test fixtures.
    F16,
}

impl Precision {
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
        }
    }

    /// The format the linears' weights are uploaded in.
    pub fn linear_format(self) -> WeightFormat {
        match self {
            Precision::F32 => WeightFormat::F32,
            Precision::F16 => WeightFormat::F16,
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Precision {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f32" => Ok(Precision::F32),
            "f16" => Ok(Precision::F16),
            _ => bail!("unknown precision {s:?}: expected f32 or f16"),
        }
    }
}

/// Facts about the loaded checkpoint, for `info`.
#[derive(Clone, Debug)]
pub struct LoadInfo {
    pub tensor_count: usize,
    pub parameter_count: usize,
    pub dtypes: Vec<(String, usize)>,
    pub unused_tensors: Vec<String>,
}

/// One image's result.
#[derive(Clone, Debug)]
pub struct Classification {
    pub logits: Vec<f32>,
    pub top: Vec<Prediction>,
}

/// One class of a result.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    pub index: usize,
    pub label: String,
    pub probability: f32,
}

pub struct Model {
    pub config: ModelConfig,
    pub preprocess: PreprocessConfig,
    pub info: LoadInfo,
    gpu: Arc<Gpu>,
    backbone: Backbone,
    vit: Vit,
    precision: Precision,
    plans: Mutex<HashMap<PlanKey, Arc<AsyncMutex<Plan>>>>,
    /// Split a forward pass into submissions of about this many flops (None: one).
    submission_flops: Option<f64>,
}

/// A submission size for interactive use ([`Model::set_submission_flops`]): about 0.1-0.3 s
/// on a CPU adapter, and a few dozen submissions for the full-size model.
pub const INTERACTIVE_SUBMISSION_FLOPS: f64 = 2e9;

/// Held across the awaits of a forward pass: two calls on one thread (two promises in a
/// page) wait for each other instead of sharing a plan's buffers or deadlocking.
type AsyncMutex<T> = futures_util::lock::Mutex<T>;

/// (batch size, whether stage outputs are captured).
type PlanKey = (usize, bool);

/// Everything one batch size needs, created once and reused by every call of that size.
struct Plan {
    batch: usize,
    chunk: usize,
    /// The whole batch's pixels; each chunk is copied from here into `chunk_input`.
    input: wgpu::Buffer,
    chunk_input: wgpu::Buffer,
    program: Program,
    logits: wgpu::Buffer,
    staging: wgpu::Buffer,
    captures: Vec<Capture>,
    vit: VitBuffers,
    _backbone: BackboneBuffers,
}

struct Capture {
    name: String,
    shape: Vec<usize>,
    len: usize,
    buffer: wgpu::Buffer,
}

/// A named intermediate tensor read back by [`Model::forward_stages`].
#[derive(Clone, Debug)]
pub struct StageOutput {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Refuses a preprocessor whose every tensor has a size other than the model's image size
/// (a crop, or an exact resize without one): no image could ever run, so that is the model's
/// error, said once at load, not each image's.
fn preprocess_fits(config: &ModelConfig, preprocess: &PreprocessConfig) -> Result<()> {
    if let Some((h, w)) = preprocess.output_size() {
        let (mh, mw) = config.image_size;
        ensure!(
            (h, w) == (mh, mw),
            "preprocessor_config.json makes every image {h}x{w} pixels (height x width) but \
             config.json's image_size is {mh}x{mw}"
        );
    }
    Ok(())
}

impl Model {
    /// Loads `config.json`, `preprocessor_config.json` and `model.safetensors` from `dir`.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn load(gpu: Arc<Gpu>, dir: &Path) -> Result<Self> {
        Self::load_with(gpu, dir, Precision::F32)
    }

    /// [`Model::load`] with the linears' weights stored in `precision`.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn load_with(gpu: Arc<Gpu>, dir: &Path, precision: Precision) -> Result<Self> {
        ensure!(
            dir.is_dir(),
            "model folder {} does not exist or is not a folder",
            dir.display()
        );
        let config = ModelConfig::load(&dir.join("config.json"))?;
        let pre_path = dir.join("preprocessor_config.json");
        let preprocess = if pre_path.exists() {
            PreprocessConfig::load(&pre_path)?
        } else {
            bail!("{} is missing", pre_path.display());
        };
        preprocess_fits(&config, &preprocess)
            .with_context(|| format!("model folder {}", dir.display()))?;
        let single = dir.join("model.safetensors");
        let index = dir.join("model.safetensors.index.json");
        let weights = if single.exists() || !index.exists() {
            if !single.exists() && dir.join("pytorch_model.bin").exists() {
                bail!(
                    "{} is missing; the folder has only pytorch_model.bin, which this tool does \
                     not read (convert it: transformers' \
                     `model.save_pretrained(folder, safe_serialization=True)`)",
                    single.display()
                );
            }
            HostWeights::load(&single, &config)?
        } else {
            HostWeights::load_sharded(&index, &config)?
        };
        Self::from_weights_with(gpu, config, preprocess, &weights, precision)
    }

    /// The three files' contents (fetched by a page, say), checked as [`Model::load`] checks
    /// them; GPU errors while uploading (a model past the adapter's limits) are this call's
    /// error.
    pub async fn from_bytes(
        gpu: Arc<Gpu>,
        config_json: &str,
        preprocessor_json: &str,
        safetensors: &[u8],
        precision: Precision,
    ) -> Result<Self> {
        let config = ModelConfig::from_json_str(config_json).context("in config.json")?;
        let preprocess = PreprocessConfig::from_json_str(preprocessor_json)
            .context("in preprocessor_config.json")?;
        preprocess_fits(&config, &preprocess)?;
        let weights = HostWeights::from_bytes(safetensors, &config, "model.safetensors")?;
        let checker = gpu.clone();
        checker
            .checked("uploading the model", async || {
                Self::from_weights_with(gpu, config, preprocess, &weights, precision)
            })
            .await
    }

    /// Loads a model folder or a Hugging Face hub id (see [`crate::hub::resolve`]).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn from_pretrained(gpu: Arc<Gpu>, model: &str) -> Result<Self> {
        Self::from_pretrained_with(gpu, model, Precision::F32)
    }

    /// [`Model::from_pretrained`] with the linears' weights stored in `precision`.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn from_pretrained_with(gpu: Arc<Gpu>, model: &str, precision: Precision) -> Result<Self> {
        let dir = crate::hub::resolve(model)?;
        Self::load_with(gpu, &dir, precision)
    }

    /// Uploads checked host weights (weight standardisation and QKV stacking happen here).
    pub fn from_weights(
        gpu: Arc<Gpu>,
        config: ModelConfig,
        preprocess: PreprocessConfig,
        weights: &HostWeights,
    ) -> Result<Self> {
        Self::from_weights_with(gpu, config, preprocess, weights, Precision::F32)
    }

    /// [`Model::from_weights`] with the linears' weights stored in `precision`.
    pub fn from_weights_with(
        gpu: Arc<Gpu>,
        config: ModelConfig,
        preprocess: PreprocessConfig,
        weights: &HostWeights,
        precision: Precision,
    ) -> Result<Self> {
        // A tensor past the adapter's buffer limits is this model's error, said here: as a
        // GPU validation error it would be less clear (and in the browser, uncatchable).
        let limits = gpu.limits();
        let limit = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size);
        for (name, shape) in config.expected_tensors() {
            let bytes = 4 * shape.iter().product::<usize>() as u64;
            ensure!(
                bytes <= limit,
                "tensor {name} {shape:?} needs {bytes} bytes on the GPU but adapter {} binds \
                 at most {limit} bytes: the model is too large for it",
                gpu.info.name
            );
        }
        let backbone = Backbone::load(&gpu, &config, weights)?;
        let vit = Vit::load(&gpu, &config, weights, precision.linear_format())?;
        let info = LoadInfo {
            tensor_count: weights.tensor_count(),
            parameter_count: weights.parameter_count(),
            dtypes: weights.dtype_counts(),
            unused_tensors: weights.unused.clone(),
        };
        Ok(Self {
            config,
            preprocess,
            info,
            gpu,
            backbone,
            vit,
            precision,
            plans: Mutex::new(HashMap::new()),
            submission_flops: None,
        })
    }

    /// Splits every forward pass into submissions of about `flops` floating-point operations
    /// each, waiting for each before the next, so that a window sharing the queue can present
    /// frames in between (a CPU adapter takes seconds per pass). `None`: one submission.
    pub fn set_submission_flops(&mut self, flops: Option<f64>) {
        self.submission_flops = flops.filter(|f| *f > 0.0);
    }

    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The linear entry point the encoder runs on this adapter (weight format and loads).
    pub fn linear_variant(&self) -> Variant {
        self.vit.linear_variant(&self.gpu)
    }

    /// The encoder's and head's linear weights: (parameters, bytes on the GPU).
    pub fn linear_weights(&self) -> (usize, usize) {
        self.vit.linear_weights()
    }

    /// Bytes of all weights on the GPU: the linears' in their format, every other parameter
    /// as f32.
    pub fn weight_bytes(&self) -> usize {
        let (params, bytes) = self.linear_weights();
        4 * self.info.parameter_count.saturating_sub(params) + bytes
    }

    /// f32 values of one input image [3, H, W].
    pub fn image_len(&self) -> usize {
        let (h, w) = self.config.image_size;
        3 * h * w
    }

    /// The most images one recorded program takes, so that no buffer passes the device's
    /// binding limit; larger batches run as several chunks within one submission.
    pub fn max_chunk(&self) -> Result<usize> {
        let (ab, m1, m2, sc) = Backbone::buffer_lens(&self.config);
        let per_image = [
            ab,
            m1,
            m2,
            sc,
            self.vit.max_buffer_len_per_image(),
            self.image_len(),
        ]
        .into_iter()
        .max()
        .unwrap_or(1) as u64
            * 4;
        let limit = self.gpu.max_binding_bytes();
        ensure!(
            per_image <= limit,
            "one image needs a {per_image}-byte buffer but adapter {} binds at most {limit} bytes",
            self.gpu.info.name
        );
        let by_binding = (limit / per_image).max(1) as usize;
        Ok(by_binding.min(self.vit.max_images_per_chunk(&self.gpu)))
    }

    // In the browser wgpu's handles are not Send (one thread there); the Arc serves native
    // callers on several threads.
    #[cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]
    fn plan(&self, batch: usize, capture: bool) -> Result<Arc<AsyncMutex<Plan>>> {
        let mut plans = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = plans.get(&(batch, capture)) {
            return Ok(p.clone());
        }
        let max = self.max_chunk()?;
        // Equal chunks waste at most one image's work per chunk in the last one.
        let chunks = batch.div_ceil(max);
        let chunk = batch.div_ceil(chunks);
        ensure!(
            !capture || chunks == 1,
            "capturing stages needs the batch ({batch}) in one chunk (at most {max} here)"
        );
        let gpu = &*self.gpu;
        let chunk_input = gpu.storage("pixels.chunk", chunk * self.image_len());
        let backbone_bufs = Backbone::alloc(gpu, &self.config, chunk);
        let vit_bufs = self.vit.alloc(gpu, chunk)?;
        // A dry run names the pipelines, which then compile side by side (a cold start's
        // largest part after the weights) before the real recording. Without threads (wasm)
        // there is nothing to gain from it.
        let mut program = if cfg!(target_arch = "wasm32") {
            Program::new()
        } else {
            let mut dry = Program::collecting();
            let mut no_tap = |_: &mut Program, _: Tap<'_>| {};
            let (features, shape) = self.backbone.record(
                gpu,
                &mut dry,
                chunk,
                &chunk_input,
                &backbone_bufs,
                &mut no_tap,
            );
            self.vit.record(
                gpu,
                &mut dry,
                chunk,
                &features,
                shape,
                &vit_bufs,
                &mut no_tap,
            );
            gpu.precompile(dry.pipelines());
            Program::after(dry)
        };
        let mut captures = Vec::new();
        let mut tap = |p: &mut Program, t: Tap<'_>| {
            if capture {
                let buffer = gpu.storage(&t.name, t.len);
                t.value.record_copy(gpu, p, &buffer, t.len);
                captures.push(Capture {
                    name: t.name,
                    shape: t.shape,
                    len: t.len,
                    buffer,
                });
            }
        };
        let (features, shape) = self.backbone.record(
            gpu,
            &mut program,
            chunk,
            &chunk_input,
            &backbone_bufs,
            &mut tap,
        );
        self.vit.record(
            gpu,
            &mut program,
            chunk,
            &features,
            shape,
            &vit_bufs,
            &mut tap,
        );
        let labels = self.config.num_labels();
        let logits = gpu.storage("logits.all", batch * labels);
        let staging = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("logits.readback"),
            size: (batch * labels * 4) as u64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let plan = Arc::new(AsyncMutex::new(Plan {
            batch,
            chunk,
            input: gpu.storage("pixels", batch * self.image_len()),
            chunk_input,
            program,
            logits,
            staging,
            captures,
            vit: vit_bufs,
            _backbone: backbone_bufs,
        }));
        plans.insert((batch, capture), plan.clone());
        Ok(plan)
    }

    /// Runs the network on `pixels` [batch, 3, H, W] and returns the logits [batch, labels].
    #[cfg(not(target_arch = "wasm32"))]
    pub fn forward(&self, pixels: &[f32], batch: usize) -> Result<Vec<f32>> {
        pollster::block_on(self.forward_async(pixels, batch))
    }

    /// [`Model::forward`], awaiting the GPU.
    pub async fn forward_async(&self, pixels: &[f32], batch: usize) -> Result<Vec<f32>> {
        Ok(self.run(pixels, batch, false).await?.0)
    }

    /// Like `forward`, but also reads back every stage's output (stem, stages.N, embeddings,
    /// layers.N, layernorm) for comparison with a reference.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn forward_stages(
        &self,
        pixels: &[f32],
        batch: usize,
    ) -> Result<(Vec<f32>, Vec<StageOutput>)> {
        pollster::block_on(self.forward_stages_async(pixels, batch))
    }

    /// [`Model::forward_stages`], awaiting the GPU.
    pub async fn forward_stages_async(
        &self,
        pixels: &[f32],
        batch: usize,
    ) -> Result<(Vec<f32>, Vec<StageOutput>)> {
        self.run(pixels, batch, true).await
    }

    async fn run(
        &self,
        pixels: &[f32],
        batch: usize,
        capture: bool,
    ) -> Result<(Vec<f32>, Vec<StageOutput>)> {
        ensure!(batch > 0, "empty batch");
        let (h, w) = self.config.image_size;
        ensure!(
            pixels.len() == batch * self.image_len(),
            "pixel tensor has {} values, expected {batch} x 3 x {h} x {w} = {}",
            pixels.len(),
            batch * self.image_len()
        );
        let plan = self.plan(batch, capture)?;
        let plan = plan.lock().await;
        let gpu = &*self.gpu;
        gpu.checked("running the forward pass", async || {
            self.submit(&plan, pixels).await?;
            let len = plan.batch * self.config.num_labels();
            let logits = gpu
                .map_read_async(&plan.staging, len)
                .await
                .context("reading logits back")?;
            let mut stages = Vec::new();
            for c in &plan.captures {
                stages.push(StageOutput {
                    name: c.name.clone(),
                    shape: c.shape.clone(),
                    data: gpu.read_async(&c.buffer, c.len).await?,
                });
            }
            Ok((logits, stages))
        })
        .await
    }

    /// Uploads `pixels` and submits every chunk's program, the last submission ending with
    /// the logits' copy into the plan's staging buffer.
    async fn submit(&self, plan: &Plan, pixels: &[f32]) -> Result<()> {
        let gpu = &*self.gpu;
        gpu.queue
            .write_buffer(&plan.input, 0, bytemuck::cast_slice(pixels));
        let labels = self.config.num_labels();
        let img = self.image_len() as u64 * 4;
        let spans = self.spans(&plan.program);
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        for start in (0..plan.batch).step_by(plan.chunk) {
            let n = plan.chunk.min(plan.batch - start) as u64;
            encode_copy(
                &mut encoder,
                &BufferCopy {
                    src: plan.input.clone(),
                    src_offset: start as u64 * img,
                    dst: plan.chunk_input.clone(),
                    dst_offset: 0,
                    bytes: n * img,
                },
            );
            for (i, span) in spans.iter().enumerate() {
                plan.program.encode_span(&mut encoder, span.clone());
                if i + 1 < spans.len() {
                    // Wait for this slice before the next, so the queue is free in between.
                    gpu.queue.submit([encoder.finish()]);
                    gpu.work_done().await?;
                    encoder = gpu.device.create_command_encoder(&Default::default());
                }
            }
            encode_copy(
                &mut encoder,
                &BufferCopy {
                    src: plan.vit.logits.clone(),
                    src_offset: 0,
                    dst: plan.logits.clone(),
                    dst_offset: (start * labels * 4) as u64,
                    bytes: n * labels as u64 * 4,
                },
            );
        }
        let len = plan.batch * labels;
        encoder.copy_buffer_to_buffer(&plan.logits, 0, &plan.staging, 0, (len * 4) as u64);
        gpu.queue.submit([encoder.finish()]);
        Ok(())
    }

    /// The dispatch ranges submitted one after another: the whole program, or slices of
    /// about [`Model::set_submission_flops`] each.
    fn spans(&self, program: &Program) -> Vec<std::ops::Range<usize>> {
        let n = program.dispatches.len();
        let Some(limit) = self.submission_flops else {
            return std::iter::once(0..n).collect();
        };
        let mut spans = Vec::new();
        let (mut start, mut flops) = (0, 0.0);
        for (i, d) in program.dispatches.iter().enumerate() {
            if i > start && flops + d.flops > limit {
                spans.push(start..i);
                (start, flops) = (i, 0.0);
            }
            flops += d.flops;
        }
        spans.push(start..n);
        spans
    }

    /// Times every dispatch of one forward pass of `pixels` (see [`crate::profile`]).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn profile(
        &self,
        pixels: &[f32],
        batch: usize,
    ) -> Result<(Vec<crate::profile::DispatchTime>, crate::profile::Method)> {
        pollster::block_on(self.profile_async(pixels, batch))
    }

    /// [`Model::profile`], awaiting the GPU.
    pub async fn profile_async(
        &self,
        pixels: &[f32],
        batch: usize,
    ) -> Result<(Vec<crate::profile::DispatchTime>, crate::profile::Method)> {
        // The real pass leaves every dispatch's inputs in place and warms the pipelines.
        self.forward_async(pixels, batch).await?;
        let plan = self.plan(batch, false)?;
        let plan = plan.lock().await;
        ensure!(
            plan.chunk == plan.batch,
            "profiling needs the batch in one chunk"
        );
        let spans = self.spans(&plan.program);
        self.gpu
            .checked("profiling the forward pass", async || {
                crate::profile::time_program_async(&self.gpu, &plan.program, &spans).await
            })
            .await
    }

    /// Creates the buffers and pipelines for `batch` ahead of the first forward pass.
    pub fn prepare(&self, batch: usize) -> Result<()> {
        self.plan(batch, false).map(|_| ())
    }

    /// Logits and the `k` most probable classes of every image in `pixels` [batch, 3, H, W].
    /// An image whose logits are not all finite (an input or activations past float32's
    /// range) is that image's error, never an answer; the others in the batch still count.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn classify(
        &self,
        pixels: &[f32],
        batch: usize,
        k: usize,
    ) -> Result<Vec<Result<Classification>>> {
        pollster::block_on(self.classify_async(pixels, batch, k))
    }

    /// [`Model::classify`], awaiting the GPU.
    pub async fn classify_async(
        &self,
        pixels: &[f32],
        batch: usize,
        k: usize,
    ) -> Result<Vec<Result<Classification>>> {
        let logits = self.forward_async(pixels, batch).await?;
        let labels = self.config.num_labels();
        Ok(logits
            .chunks(labels)
            .map(|l| {
                let bad = l.iter().filter(|v| !v.is_finite()).count();
                anyhow::ensure!(
                    bad == 0,
                    "{bad} of its {labels} logits are NaN or infinite (the input or an \
                     activation is outside float32's range), so there is no answer"
                );
                Ok(Classification {
                    top: self.top_k(l, k),
                    logits: l.to_vec(),
                })
            })
            .collect())
    }

    /// Preprocesses decoded images as the checkpoint's processor does and classifies them.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn classify_images(
        &self,
        images: &[image::DynamicImage],
        k: usize,
    ) -> Result<Vec<Result<Classification>>> {
        pollster::block_on(self.classify_images_async(images, k))
    }

    /// [`Model::classify_images`], awaiting the GPU.
    pub async fn classify_images_async(
        &self,
        images: &[image::DynamicImage],
        k: usize,
    ) -> Result<Vec<Result<Classification>>> {
        let mut pixels = Vec::with_capacity(images.len() * self.image_len());
        for (i, img) in images.iter().enumerate() {
            pixels
                .extend(crate::input::from_image(img, self).with_context(|| format!("image {i}"))?);
        }
        self.classify_async(&pixels, images.len(), k).await
    }

    /// The `k` most probable classes of one image's logits (softmax in f64).
    pub fn top_k(&self, logits: &[f32], k: usize) -> Vec<Prediction> {
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let exps: Vec<f64> = logits.iter().map(|&l| (l as f64 - max).exp()).collect();
        let sum: f64 = exps.iter().sum();
        let mut order: Vec<usize> = (0..logits.len()).collect();
        // Stable sort: ties keep index order, like torch.topk on CPU in practice.
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
        order
            .into_iter()
            .take(k)
            .map(|i| Prediction {
                index: i,
                label: self
                    .config
                    .labels
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| format!("LABEL_{i}")),
                probability: (exps[i] / sum) as f32,
            })
            .collect()
    }
}
