//! The inference thread: loads the model, decodes each opened image, classifies it and times
//! every shader, so that the window keeps drawing while the GPU (or lavapipe's CPU) works.
//!
//! The UI sends `Job`s; replies come back through a channel tagged with the job's id, and
//! each reply wakes the UI with `request_repaint`. Jobs that are overtaken by a newer one
//! (stepping quickly through a folder) are dropped instead of queued.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::time::{Duration, Instant};

use eframe::egui;
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
    /// The image as decoded for display (sent before the slower classification).
    Preview {
        id: u64,
        image: Result<egui::ColorImage, String>,
    },
    Classified {
        id: u64,
        result: Result<Classified, String>,
    },
    Profiled {
        id: u64,
        result: Result<Profile, String>,
    },
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
            .spawn(move || serve(gpu, &model, job_rx, out))
            .expect("spawning the inference thread");
        Self { jobs, replies }
    }

    pub fn open(&self, job: Job) {
        // The thread only ends when this sender is dropped, so sending cannot fail.
        let _ = self.jobs.send(job);
    }
}

/// Sends a reply and wakes the UI to show it.
struct Outbox {
    tx: Sender<Reply>,
    ctx: egui::Context,
}

impl Outbox {
    fn send(&self, reply: Reply) {
        let _ = self.tx.send(reply);
        self.ctx.request_repaint();
    }
}

/// Runs `f`, turning an error or a panic into the message the window shows.
fn guarded<T>(f: impl FnOnce() -> anyhow::Result<T>) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(anyhow::anyhow!("internal error (see the terminal)")))
        .map_err(|e| format!("{e:#}"))
}

fn load(gpu: Arc<Gpu>, name: &str) -> anyhow::Result<Model> {
    use anyhow::Context;
    let model = Model::from_pretrained(gpu, name).with_context(|| format!("loading model {name}"))?;
    // Build the one-image plan (buffers, pipelines) now, so the first image's latency is that
    // of a forward pass and not of setting one up.
    model.prepare(1)?;
    Ok(model)
}

fn serve(gpu: Arc<Gpu>, name: &str, jobs: Receiver<Job>, out: Outbox) {
    let model = guarded(|| load(gpu, name));
    out.send(Reply::Model(model.as_ref().map(summary).map_err(Clone::clone)));
    let mut pending = None;
    while let Some(mut job) = pending.take().or_else(|| jobs.recv().ok()) {
        // Only the newest request matters: skip the ones it overtook.
        while let Ok(newer) = jobs.try_recv() {
            job = newer;
        }
        let Some(pixels) = classify(&job, model.as_ref(), &out) else {
            continue;
        };
        // Profiling runs the network again, one dispatch at a time: skip it when the user has
        // already moved on to another image.
        match jobs.try_recv() {
            Ok(newer) => pending = Some(newer),
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => {
                let model = model.as_ref().expect("classify succeeded");
                let result = guarded(|| {
                    let (dispatches, method) = model.profile(&pixels, 1)?;
                    Ok(Profile { dispatches, method })
                });
                out.send(Reply::Profiled { id: job.id, result });
            }
        }
    }
}

/// Decodes, shows and classifies one image; returns its pixel tensor if it was classified.
fn classify(job: &Job, model: Result<&Model, &String>, out: &Outbox) -> Option<Vec<f32>> {
    let id = job.id;
    let t = Instant::now();
    let decoded = guarded(|| preprocess::load_image(&job.path));
    let decode = t.elapsed();
    out.send(Reply::Preview {
        id,
        image: decoded.as_ref().map(preview).map_err(Clone::clone),
    });
    let mut pixels = Vec::new();
    let result = match (decoded, model) {
        (Err(e), _) => Err(e),
        (_, Err(e)) => Err(format!("no model to classify with: {e}")),
        (Ok(image), Ok(model)) => guarded(|| {
            let t = Instant::now();
            pixels = input::from_image(&image, model)?;
            let preprocess = decode + t.elapsed();
            let t = Instant::now();
            let mut results = model.classify(&pixels, 1, TOP_K)?;
            let forward = t.elapsed();
            Ok(Classified {
                top: results.pop().map(|c| c.top).unwrap_or_default(),
                preprocess,
                forward,
            })
        }),
    };
    let ok = result.is_ok();
    out.send(Reply::Classified { id, result });
    ok.then_some(pixels)
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
