//! `vit-hybrid serve`: an HTTP classification service speaking the Open Inference Protocol
//! (KServe v2 REST), plus `POST /classify` for curl, `/metrics` for Prometheus.
//!
//! The listener is up first so that liveness answers at once; readiness follows once the
//! model is loaded and every batch size it will run is warmed. One worker thread owns the
//! model (see `batcher`); handlers decode images on the blocking pool and wait for their
//! logits on a channel. SIGTERM/SIGINT stop the listener, every accepted request is still
//! answered, then the worker drains and the process exits 0.

mod batcher;
mod metrics;
mod oip;
mod routes;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use clap::Args;
use vit_hybrid::Model;

use batcher::{Queue, Worker};
use metrics::Metrics;

/// Arguments of `vit-hybrid serve` (besides the model's).
#[derive(Args, Clone, Debug)]
pub struct ServeArgs {
    /// Address to listen on (0.0.0.0 for every interface, as in a container).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// TCP port; 0 picks a free one (the address is printed on stderr: "listening on ...").
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// The model's name in the protocol's paths (/v2/models/{name}/...).
    #[arg(long, default_value = "vit-hybrid")]
    pub name: String,
    /// Most images in one forward pass; requests waiting together are batched up to this.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub max_batch: u32,
    /// Longest a request waits for others to join its batch, in milliseconds.
    #[arg(long, default_value_t = 5)]
    pub max_delay_ms: u64,
    /// Requests waiting for the GPU before new ones get 503 (with Retry-After).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_queue: u32,
    /// Largest request body in bytes; larger ones get 413, from their Content-Length before
    /// they are read.
    #[arg(long, default_value_t = 32 << 20, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_body_bytes: u64,
}

/// What the handlers share.
pub struct App {
    name: String,
    model: OnceLock<Arc<Model>>,
    ready: AtomicBool,
    queue: Arc<Queue>,
    metrics: Arc<Metrics>,
    max_body: usize,
    /// Inference requests between their arrival and their answer.
    in_flight: std::sync::atomic::AtomicUsize,
}

/// Why the server stops.
enum Stop {
    Signal(&'static str),
    LoadFailed(String),
}

/// Runs the server until a signal; `load` opens the model (on the worker thread, so that the
/// listener answers liveness meanwhile).
pub fn run(args: ServeArgs, load: impl FnOnce() -> Result<Model> + Send + 'static) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_io()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(serve(args, load))
}

async fn serve(
    args: ServeArgs,
    load: impl FnOnce() -> Result<Model> + Send + 'static,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
        .await
        .with_context(|| format!("listening on {}:{}", args.host, args.port))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let max_batch = args.max_batch as usize;
    let app = Arc::new(App {
        name: args.name.clone(),
        model: OnceLock::new(),
        ready: AtomicBool::new(false),
        queue: Arc::new(Queue::new(args.max_queue as usize)),
        metrics: Arc::new(Metrics::new(max_batch)),
        max_body: usize::try_from(args.max_body_bytes).unwrap_or(usize::MAX),
        in_flight: Default::default(),
    });
    eprintln!(
        "vit-hybrid serve: listening on http://{addr} (model {:?} loading)",
        args.name
    );

    let (stop_tx, mut stop_rx) = tokio::sync::mpsc::unbounded_channel::<Stop>();
    let worker = {
        let app = app.clone();
        let stop = stop_tx.clone();
        let max_delay = Duration::from_millis(args.max_delay_ms);
        std::thread::Builder::new()
            .name("gpu-worker".into())
            .spawn(move || {
                let model = match load().and_then(|m| {
                    batcher::warm_up(&m, max_batch).context("warming up")?;
                    Ok(m)
                }) {
                    Ok(m) => Arc::new(m),
                    Err(e) => {
                        let _ = stop.send(Stop::LoadFailed(format!("{e:#}")));
                        return;
                    }
                };
                let (h, w) = model.config.image_size;
                eprintln!(
                    "vit-hybrid serve: model {:?} ready ({} labels, {h}x{w} input, batches of up to {max_batch}, on {})",
                    app.name,
                    model.config.num_labels(),
                    model.gpu().info.name
                );
                let _ = app.model.set(model.clone());
                app.ready.store(true, Ordering::SeqCst);
                Worker {
                    model,
                    queue: app.queue.clone(),
                    metrics: app.metrics.clone(),
                    max_batch,
                    max_delay,
                }
                .run();
            })
            .context("starting the GPU worker thread")?
    };

    {
        let stop = stop_tx.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                let _ = stop.send(Stop::Signal("SIGINT"));
            }
        });
    }
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("handling SIGTERM")?;
        let stop = stop_tx.clone();
        tokio::spawn(async move {
            if term.recv().await.is_some() {
                let _ = stop.send(Stop::Signal("SIGTERM"));
            }
        });
    }
    drop(stop_tx);

    let stopped: Arc<OnceLock<Stop>> = Arc::new(OnceLock::new());
    let shutdown = {
        let stopped = stopped.clone();
        let app = app.clone();
        async move {
            let why = stop_rx
                .recv()
                .await
                .unwrap_or(Stop::Signal("no signal source"));
            app.ready.store(false, Ordering::SeqCst);
            if let Stop::Signal(name) = &why {
                eprintln!(
                    "vit-hybrid serve: {name}: no new connections; answering the requests already accepted"
                );
            }
            let _ = stopped.set(why);
        }
    };
    axum::serve(listener, routes::router(app.clone()))
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving HTTP")?;
    app.queue.close();
    let _ = tokio::task::spawn_blocking(move || worker.join()).await;
    match stopped.get() {
        Some(Stop::LoadFailed(e)) => Err(anyhow!("the model did not load: {e}")),
        _ => {
            eprintln!("vit-hybrid serve: every request answered; exiting");
            Ok(())
        }
    }
}
