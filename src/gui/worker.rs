//! The inference thread: loads the model, decodes each opened image, classifies it and times
//! every shader, so that the window's thread never waits for any of it.
//!
//! The UI sends `Job`s; replies come back through a channel tagged with the job's id, and
//! each reply wakes the UI with `request_repaint`. Jobs that are overtaken by a newer one
//! (stepping quickly through a folder) are dropped instead of queued.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use eframe::egui;
use vit_hybrid::model::{INTERACTIVE_SUBMISSION_FLOPS, Precision};
use vit_hybrid::profile::{DispatchTime, Method};
use vit_hybrid::{Gpu, Model, Prediction, input, preprocess};

/// How many classes a result lists.
pub const TOP_K: usize = 5;

/// The longest side of the preview texture (the window never shows the photo larger).
const PREVIEW_SIDE: u32 = 1024;

/// One image to classify; `id` tells the replies of the current image from stale ones.
pub struct Job {
    pub id: u64,
    pub path: PathBuf,
    pub precision: Precision,
}

/// What the model is, once loaded.
#[derive(Clone, Debug)]
pub struct ModelSummary {
    pub adapter: String,
    pub labels: usize,
    pub image_size: (usize, usize),
    pub parameters: usize,
}

/// A classification and what it cost.
pub struct Classified {
    pub top: Vec<Prediction>,
    /// Decoding the file and preprocessing the pixels, on the CPU.
    pub preprocess: Duration,
    /// Upload, the forward pass and the logits' readback.
    pub forward: Duration,
}

/// Every dispatch of one forward pass and how it was timed.
pub struct Profile {
    pub dispatches: Vec<DispatchTime>,
    pub method: Method,
}

pub enum Reply {
    Model(Result<ModelSummary, String>),
    /// News about the image of job `id`.
    Image {
        id: u64,
        update: Update,
    },
}

/// What is known about an image, in the order it becomes known.
pub enum Update {
    /// The image as decoded for display, and its size in the file.
    Preview(Result<(egui::ColorImage, [u32; 2]), String>),
    Classified(Result<Classified, String>),
    Profiled(Result<Profile, String>),
}

/// The UI's end of the inference thread.
pub struct Worker {
    jobs: Sender<Job>,
    pub replies: Receiver<Reply>,
}

impl Worker {
    /// Starts loading `model` on `gpu` and the thread that serves jobs.
    pub fn spawn(gpu: Arc<Gpu>, model: String, ctx: egui::Context) -> Self {
        let (jobs, job_rx) = mpsc::channel();
        let (reply_tx, replies) = mpsc::channel();
        let out = Outbox { tx: reply_tx, ctx };
        std::thread::Builder::new()
            .name("vit-hybrid inference".into())
            .spawn(move || serve(gpu, model, job_rx, out))
            .expect("spawning the inference thread");
        Self { jobs, replies }
    }

    pub fn open(&self, job: Job) {
        // The thread only ends when this sender is dropped, so sending cannot fail.
        let _ = self.jobs.send(job);
    }
}

/// Sends a reply and wakes the UI to show it.
#[derive(Clone)]
struct Outbox {
    tx: Sender<Reply>,
    ctx: egui::Context,
}

impl Outbox {
    fn send(&self, reply: Reply) {
        let _ = self.tx.send(reply);
        self.ctx.request_repaint();
    }

    fn update(&self, id: u64, update: Update) {
        self.send(Reply::Image { id, update });
    }
}

/// Runs `f`, turning an error or a panic into the message the window shows.
fn guarded<T>(f: impl FnOnce() -> anyhow::Result<T>) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(anyhow::anyhow!("internal error (see the terminal)")))
        .map_err(|e| format!("{e:#}"))
}

fn load(gpu: Arc<Gpu>, name: &str, precision: Precision) -> anyhow::Result<Model> {
    use anyhow::Context;
    let mut model = Model::from_pretrained_with(gpu, name, precision)
        .with_context(|| format!("loading model {name} ({precision})"))?;
    // The window shares the queue: slices awaited one by one let its frames in between, so
    // it keeps repainting during a pass that takes seconds on a CPU adapter.
    model.set_submission_flops(Some(INTERACTIVE_SUBMISSION_FLOPS));
    // One pass on a blank image builds the one-image plan (buffers, pipelines) and lets the
    // driver finish compiling, so the first image's latency is that of a forward pass alone.
    pollster::block_on(model.forward_async(&vec![0.0; model.image_len()], 1))
        .context("a first forward pass")?;
    Ok(model)
}

fn serve(gpu: Arc<Gpu>, name: String, jobs: Receiver<Job>, out: Outbox) {
    let mut server = Server::start(gpu, name, out);
    let mut pending = None;
    while let Some(mut job) = pending.take().or_else(|| jobs.recv().ok()) {
        // Only the newest request matters: skip the ones it overtook.
        while let Ok(newer) = jobs.try_recv() {
            job = newer;
        }
        let Some(pixels) = server.classify(&job) else {
            continue;
        };
        // Profiling runs the network again: skip it when the user has already moved on.
        match jobs.try_recv() {
            Ok(newer) => pending = Some(newer),
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => server.profile(job.id, job.precision, &pixels),
        }
    }
}

/// The inference thread's state: the model (or why there is none) and where replies go.
struct Server {
    out: Outbox,
    loader: Option<JoinHandle<Result<Model, String>>>,
    model: Option<Result<Model, String>>,
    gpu: Arc<Gpu>,
    name: String,
    f16: Option<Result<Model, String>>,
}

impl Server {
    /// Starts loading the model on a thread of its own, so that the first image is decoded
    /// and shown while the weights are read and uploaded.
    fn start(gpu: Arc<Gpu>, name: String, out: Outbox) -> Self {
        let loader_out = out.clone();
        let (loader_gpu, loader_name) = (gpu.clone(), name.clone());
        let loader = std::thread::spawn(move || {
            let model = guarded(|| load(loader_gpu, &loader_name, Precision::F32));
            let summary = model.as_ref().map(summary).map_err(Clone::clone);
            loader_out.send(Reply::Model(summary));
            model
        });
        Self {
            out,
            loader: Some(loader),
            model: None,
            gpu,
            name,
            f16: None,
        }
    }

    /// The model at `precision`: f32 is loaded at start, f16 the first time it is asked for
    /// (on this thread, so the window stays live meanwhile).
    fn model_at(&mut self, precision: Precision) -> Result<&Model, String> {
        if precision == Precision::F32 {
            return self.model();
        }
        let (gpu, name) = (self.gpu.clone(), self.name.clone());
        self.f16
            .get_or_insert_with(|| guarded(|| load(gpu, &name, Precision::F16)))
            .as_ref()
            .map_err(|e| format!("no f16 model: {e}"))
    }

    /// The model, waiting for the loader the first time it is needed.
    fn model(&mut self) -> Result<&Model, String> {
        let loader = &mut self.loader;
        let model = self.model.get_or_insert_with(|| {
            let loading = loader.take().expect("the loader is joined once");
            loading
                .join()
                .unwrap_or_else(|_| Err("loading the model crashed".into()))
        });
        model
            .as_ref()
            .map_err(|e| format!("no model to classify with: {e}"))
    }

    /// Decodes, shows and classifies one image; returns its pixels if it was classified.
    fn classify(&mut self, job: &Job) -> Option<Vec<f32>> {
        let id = job.id;
        let t = Instant::now();
        let decoded = guarded(|| preprocess::load_image(&job.path));
        let decode = t.elapsed();
        let shown = decoded
            .as_ref()
            .map(|i| (preview(i), [i.width(), i.height()]))
            .map_err(Clone::clone);
        self.out.update(id, Update::Preview(shown));
        let mut pixels = Vec::new();
        let result = decoded.and_then(|image| {
            let model = self.model_at(job.precision)?;
            guarded(|| {
                let t = Instant::now();
                pixels = input::from_image(&image, model)?;
                let preprocess = decode + t.elapsed();
                let t = Instant::now();
                let mut results = pollster::block_on(model.classify_async(&pixels, 1, TOP_K))?;
                let forward = t.elapsed();
                let top = match results.pop() {
                    Some(r) => r?.top,
                    None => Vec::new(),
                };
                Ok(Classified {
                    top,
                    preprocess,
                    forward,
                })
            })
        });
        let classified = result.is_ok();
        self.out.update(id, Update::Classified(result));
        classified.then_some(pixels)
    }

    /// Times every dispatch of a forward pass of `pixels` (already classified, so the model
    /// is there).
    fn profile(&mut self, id: u64, precision: Precision, pixels: &[f32]) {
        let result = self.model_at(precision).and_then(|model| {
            guarded(|| {
                let (dispatches, method) = pollster::block_on(model.profile_async(pixels, 1))?;
                Ok(Profile { dispatches, method })
            })
        });
        self.out.update(id, Update::Profiled(result));
    }
}

fn summary(model: &Model) -> ModelSummary {
    let gpu = model.gpu();
    ModelSummary {
        adapter: format!("{} ({:?})", gpu.info.name, gpu.info.backend),
        labels: model.config.num_labels(),
        image_size: model.config.image_size,
        parameters: model.info.parameter_count,
    }
}

/// The decoded image, shrunk to at most `PREVIEW_SIDE`, as an egui texture source.
fn preview(image: &image::DynamicImage) -> egui::ColorImage {
    let small = if image.width().max(image.height()) > PREVIEW_SIDE {
        image.thumbnail(PREVIEW_SIDE, PREVIEW_SIDE)
    } else {
        image.clone()
    };
    let rgba = small.to_rgba8();
    egui::ColorImage::from_rgba_unmultiplied(
        [rgba.width() as usize, rgba.height() as usize],
        rgba.as_raw(),
    )
}
