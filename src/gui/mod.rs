//! The desktop app (`vit-hybrid gui`): open, drop or step through images and see the top-5
//! classes, the latency and the GPU time per shader.
//!
//! eframe runs egui on winit + wgpu; the classifier shares eframe's wgpu device (one device,
//! one queue for the window and the network) and runs on its own thread ([`worker`]).
//! Sharing the queue means a frame of the window waits for the work submitted before it, so
//! the worker submits a forward pass in slices, each awaited before the next
//! (`Model::set_submission_flops`): the window's frames get in between, and it keeps
//! repainting during the seconds a full-size pass takes on lavapipe's CPU "GPU".
//!
//! | file | job |
//! |---|---|
//! | `mod.rs` | window options, the shared device, exit status |
//! | `app.rs` | the window's state and layout |
//! | `worker.rs` | the inference thread: load, decode, classify, profile |
//! | `chart.rs` | probability and per-shader time bars |
//! | `playlist.rs` | the images the arrows step through |
//! | `headless.rs` | `--screenshot` / `--exit-after-first-result` for scripted checks |

mod app;
mod chart;
mod headless;
mod playlist;
mod worker;

use std::sync::{Arc, Mutex};

use anyhow::{Result, anyhow, bail};
use eframe::{egui, egui_wgpu, wgpu};

use crate::GuiArgs;

pub fn run(args: GuiArgs) -> Result<()> {
    // The headless mode reports the first result's failure here, after the window closed.
    let failure: Arc<Mutex<Option<String>>> = Arc::default();
    let reported = failure.clone();
    eframe::run_native(
        "vit-hybrid",
        native_options(),
        Box::new(move |cc| Ok(Box::new(app::App::new(cc, args, reported)?))),
    )
    .map_err(|e| anyhow!("running the window: {e}"))?;
    let failure = failure.lock().unwrap_or_else(|e| e.into_inner()).take();
    match failure {
        Some(e) => bail!(e),
        None => Ok(()),
    }
}

fn native_options() -> eframe::NativeOptions {
    eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("vit-hybrid")
            .with_inner_size([1040.0, 640.0])
            .with_min_inner_size([640.0, 400.0])
            .with_drag_and_drop(true),
        renderer: eframe::Renderer::Wgpu,
        wgpu_options: wgpu_options(),
        // Dithering adds noise to every gradient: no use for flat widgets, and it makes
        // screenshots compress worse.
        dithering: false,
        ..Default::default()
    }
}

/// egui's device setup, asking for what the classifier wants: the adapter's own limits (so
/// large activations fit where the adapter allows it, as `Gpu::new` does) and timestamp
/// queries where the adapter has them (exact per-shader times).
fn wgpu_options() -> egui_wgpu::WgpuConfiguration {
    let mut setup = egui_wgpu::WgpuSetupCreateNew::without_display_handle();
    setup.device_descriptor = Arc::new(|adapter: &wgpu::Adapter| wgpu::DeviceDescriptor {
        label: Some("vit-hybrid gui"),
        // The same optional features as `Gpu::new`: exact profiles and the f16 path.
        required_features: adapter.features()
            & (wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::SHADER_F16),
        required_limits: adapter.limits(),
        memory_hints: wgpu::MemoryHints::Performance,
        ..Default::default()
    });
    egui_wgpu::WgpuConfiguration {
        wgpu_setup: setup.into(),
        ..Default::default()
    }
}
