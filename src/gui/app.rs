//! The window: what is on screen, the worker's replies, and the layout (toolbar, image,
//! results, status bar).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use eframe::egui::{self, Align2, Color32, FontId, RichText, TextureOptions};
use vit_hybrid::Gpu;
use vit_hybrid::model::Precision;
use vit_hybrid::profile::{Method, Row};

use super::chart;
use super::headless::{First, Headless};
use super::playlist::Playlist;
use super::worker::{Classified, Job, ModelSummary, Reply, TOP_K, Update, Worker};
use crate::GuiArgs;

pub struct App {
    worker: Worker,
    model_name: String,
    model: ModelState,
    playlist: Playlist,
    shown: Option<Shown>,
    /// The id of the newest job; replies for older ones are dropped.
    last_job: u64,
    /// The toolbar's path box.
    path_box: String,
    headless: Option<Headless>,
    /// The weights' precision the next job runs at (the f32/f16 switch).
    precision: Precision,
}

enum ModelState {
    Loading,
    Ready(ModelSummary),
    Failed(String),
}

/// The image on screen and what the worker has said about it so far (`None`: not yet).
struct Shown {
    id: u64,
    path: PathBuf,
    /// The texture and the image's size in its file.
    preview: Option<Result<(egui::TextureHandle, [u32; 2]), String>>,
    classified: Option<Result<Classified, String>>,
    timing: Option<Result<Timing, String>>,
}

/// The per-shader chart's data for one forward pass.
struct Timing {
    kernels: Vec<Row>,
    dispatches: usize,
    method: Method,
}

impl App {
    pub fn new(
        cc: &eframe::CreationContext<'_>,
        args: GuiArgs,
        failure: Arc<Mutex<Option<String>>>,
    ) -> anyhow::Result<Self> {
        // The one device: eframe opened it for the window; the classifier gets clones of the
        // same handles, so its buffers and the window's textures live on one device.
        let rs = cc
            .wgpu_render_state
            .as_ref()
            .context("eframe started without a wgpu device")?;
        let gpu = Gpu::from_device(rs.device.clone(), rs.queue.clone(), rs.adapter.get_info());
        let worker = Worker::spawn(Arc::new(gpu), args.model.clone(), cc.egui_ctx.clone());
        cc.egui_ctx.all_styles_mut(|style| {
            // One step larger than egui's defaults: labels and numbers are the point here.
            for font in style.text_styles.values_mut() {
                font.size += 1.5;
            }
        });
        let mut app = Self {
            worker,
            model_name: args.model,
            model: ModelState::Loading,
            playlist: Playlist::new(&args.images),
            shown: None,
            last_job: 0,
            path_box: String::new(),
            headless: Headless::new(args.screenshot, args.exit_after_first_result, failure),
            precision: args.precision,
        };
        app.open_current();
        Ok(app)
    }

    /// Sends the playlist's current image to the worker and shows it as pending.
    fn open_current(&mut self) {
        let Some(path) = self.playlist.current().map(Path::to_path_buf) else {
            return;
        };
        self.last_job += 1;
        self.path_box = path.display().to_string();
        self.shown = Some(Shown {
            id: self.last_job,
            path: path.clone(),
            preview: None,
            classified: None,
            timing: None,
        });
        self.worker.open(Job {
            id: self.last_job,
            path,
            precision: self.precision,
        });
    }

    fn open(&mut self, paths: &[PathBuf]) {
        self.playlist = Playlist::new(paths);
        if self.playlist.current().is_none() {
            let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            self.shown = None;
            self.path_box = names.join(" ");
            return;
        }
        self.open_current();
    }

    fn step(&mut self, delta: isize) {
        if self.playlist.step(delta).is_some() {
            self.open_current();
        }
    }

    fn receive(&mut self, ctx: &egui::Context) {
        while let Ok(reply) = self.worker.replies.try_recv() {
            let (id, update) = match reply {
                Reply::Model(Ok(m)) => {
                    self.model = ModelState::Ready(m);
                    continue;
                }
                Reply::Model(Err(e)) => {
                    self.model = ModelState::Failed(e);
                    continue;
                }
                Reply::Image { id, update } => (id, update),
            };
            let Some(s) = self.shown.as_mut().filter(|s| s.id == id) else {
                continue; // about an image the user already left
            };
            match update {
                Update::Preview(image) => {
                    s.preview = Some(image.map(|(img, size)| {
                        let texture = ctx.load_texture("preview", img, TextureOptions::LINEAR);
                        (texture, size)
                    }));
                }
                Update::Classified(result) => s.classified = Some(result),
                Update::Profiled(result) => {
                    s.timing = Some(result.map(|p| Timing {
                        kernels: chart::per_kernel(&p.dispatches),
                        dispatches: p.dispatches.len(),
                        method: p.method,
                    }));
                }
            }
        }
    }

    fn handle_input(&mut self, ctx: &egui::Context) {
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .collect()
        });
        if !dropped.is_empty() {
            self.open(&dropped);
        }
        if !ctx.egui_wants_keyboard_input() {
            let (left, right) = ctx.input(|i| {
                (
                    i.key_pressed(egui::Key::ArrowLeft),
                    i.key_pressed(egui::Key::ArrowRight),
                )
            });
            if left {
                self.step(-1);
            }
            if right {
                self.step(1);
            }
        }
    }

    fn toolbar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.label(RichText::new("vit-hybrid").strong());
            ui.separator();
            let (pos, count) = self.playlist.position();
            let many = count > 1;
            if ui
                .add_enabled(many, egui::Button::new("‹ Previous"))
                .clicked()
            {
                self.step(-1);
            }
            if ui.add_enabled(many, egui::Button::new("Next ›")).clicked() {
                self.step(1);
            }
            if count > 0 {
                ui.label(format!("{pos} / {count}"));
            }
            let open = ui
                .button("Open")
                .on_hover_text("Open the file or folder typed here");
            let field = ui.add(
                egui::TextEdit::singleline(&mut self.path_box)
                    .hint_text("image or folder path (or drop images on the window)")
                    .desired_width(f32::INFINITY),
            );
            let entered = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            let typed = self.path_box.trim();
            if (open.clicked() || entered) && !typed.is_empty() {
                let path = PathBuf::from(typed);
                self.open(&[path]);
            }
        });
    }

    fn status_bar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            match &self.model {
                ModelState::Loading => {
                    ui.spinner();
                    ui.label(format!("loading model {} …", self.model_name));
                }
                ModelState::Ready(m) => {
                    let (h, w) = m.image_size;
                    ui.label(format!(
                        "model {} · {} classes · {w}×{h} input · {:.1} M parameters",
                        self.model_name,
                        m.labels,
                        m.parameters as f64 / 1e6
                    ));
                    ui.separator();
                    ui.label(format!("adapter {}", m.adapter));
                }
                ModelState::Failed(_) => {
                    ui.colored_label(ui.visuals().error_fg_color, "the model did not load");
                }
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if precision_switch(ui, &mut self.precision) {
                    self.open_current();
                }
            });
        });
    }

    fn image_view(&self, ui: &mut egui::Ui) {
        let Some(s) = &self.shown else {
            let text = if self.path_box.is_empty() {
                "Drop images here, or type a path above".to_string()
            } else {
                format!("no images in {}", self.path_box)
            };
            ui.centered_and_justified(|ui| ui.label(RichText::new(text).size(18.0).weak()));
            return;
        };
        let name = s.path.file_name().map_or_else(
            || s.path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        ui.horizontal(|ui| {
            ui.label(RichText::new(name).strong())
                .on_hover_text(s.path.display().to_string());
            if let Some(Ok((_, [w, h]))) = &s.preview {
                ui.weak(format!("{w}×{h}"));
            }
        });
        match &s.preview {
            None => {
                ui.spinner();
            }
            Some(Err(e)) => error_box(ui, e),
            Some(Ok((texture, _))) => {
                ui.centered_and_justified(|ui| {
                    ui.add(egui::Image::new(texture).shrink_to_fit().corner_radius(4));
                });
            }
        }
    }

    fn results(&self, ui: &mut egui::Ui) {
        if let ModelState::Failed(e) = &self.model {
            ui.heading("Model");
            error_box(ui, e);
            return;
        }
        let Some(s) = &self.shown else {
            ui.heading(format!("Top {TOP_K}"));
            ui.weak("no image yet");
            return;
        };
        ui.heading(format!("Top {TOP_K}"));
        match &s.classified {
            None => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label(match self.model {
                        ModelState::Loading => "waiting for the model …",
                        _ => "classifying …",
                    });
                });
                return;
            }
            // The image's own error is already shown where the image would be.
            Some(Err(_)) if matches!(s.preview, Some(Err(_))) => {
                ui.weak("no result: the image could not be read");
                return;
            }
            Some(Err(e)) => {
                error_box(ui, e);
                return;
            }
            Some(Ok(c)) => {
                ui.add_space(4.0);
                let bars = chart::Bars {
                    name_width: (ui.available_width() * 0.45).max(120.0),
                    value_width: 72.0,
                };
                for p in &c.top {
                    let value = format!("{:.2}%", p.probability * 100.0);
                    let fraction = p.probability as f64;
                    bars.row(ui, &p.label, fraction, &value, chart::PROBABILITY)
                        .on_hover_text(format!("{} (class {})", p.label, p.index));
                }
                ui.add_space(8.0);
                ui.label(format!(
                    "latency {}: decode + preprocess {}, forward {}",
                    chart::format_seconds((c.preprocess + c.forward).as_secs_f64()),
                    chart::format_seconds(c.preprocess.as_secs_f64()),
                    chart::format_seconds(c.forward.as_secs_f64()),
                ))
                .on_hover_text(
                    "forward: upload the pixels, run every shader, read the logits back",
                );
            }
        }
        ui.add_space(8.0);
        ui.separator();
        ui.heading("GPU time per shader");
        match &s.timing {
            None => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("timing every dispatch …");
                });
            }
            Some(Err(e)) => error_box(ui, e),
            Some(Ok(t)) => {
                let total: f64 = t.kernels.iter().map(|k| k.seconds).sum();
                ui.weak(format!(
                    "{} in {} dispatches · {}",
                    chart::format_seconds(total),
                    t.dispatches,
                    t.method.describe()
                ));
                ui.add_space(4.0);
                egui::ScrollArea::vertical().show(ui, |ui| chart::kernel_bars(ui, &t.kernels));
            }
        }
    }
}

/// The first result once all of it is on screen (for `--screenshot`/`--exit-...`).
fn first_result<'a>(model: &ModelState, shown: Option<&'a Shown>) -> Option<First<'a>> {
    let Some(s) = shown else {
        return match model {
            ModelState::Loading => None,
            ModelState::Ready(_) => Some(First::NoImage),
            ModelState::Failed(e) => Some(First::Failed(e.clone())),
        };
    };
    let failed = |what: &str, e: &str| First::Failed(format!("{what}{}: {e}", s.path.display()));
    match (&s.classified, &s.timing) {
        (None, _) | (Some(Ok(_)), None) => None,
        (Some(Err(e)), _) => Some(failed("", e)),
        (Some(Ok(_)), Some(Err(e))) => Some(failed("timing ", e)),
        (Some(Ok(c)), Some(Ok(_))) => Some(First::Classified {
            path: &s.path,
            top: &c.top,
        }),
    }
}

/// The f32/f16 switch: f16 stores the encoder's linear weights as halves (see the README);
/// switching reruns the current image. Returns whether the choice changed.
fn precision_switch(ui: &mut egui::Ui, precision: &mut Precision) -> bool {
    let before = *precision;
    for p in [Precision::F16, Precision::F32] {
        ui.selectable_value(precision, p, p.as_str())
            .on_hover_text("weights of the encoder's linears: f32, or f16 (half the memory)");
    }
    ui.label("precision");
    *precision != before
}

fn error_box(ui: &mut egui::Ui, message: &str) {
    egui::Frame::group(ui.style())
        .stroke(egui::Stroke::new(1.0, ui.visuals().error_fg_color))
        .show(ui, |ui| {
            ui.colored_label(ui.visuals().error_fg_color, message);
        });
}

/// A veil over the window while files are dragged over it.
fn drop_hint(ctx: &egui::Context, ui: &egui::Ui) {
    if ctx.input(|i| i.raw.hovered_files.is_empty()) {
        return;
    }
    let rect = ui.max_rect();
    let painter = ctx.layer_painter(egui::LayerId::new(
        egui::Order::Foreground,
        egui::Id::unique("drop"),
    ));
    painter.rect_filled(rect, 0, Color32::from_black_alpha(180));
    painter.text(
        rect.center(),
        Align2::CENTER_CENTER,
        "Drop to classify",
        FontId::proportional(28.0),
        Color32::WHITE,
    );
}

impl eframe::App for App {
    fn raw_input_hook(&mut self, _ctx: &egui::Context, raw: &mut egui::RawInput) {
        if self.headless.as_ref().is_some_and(Headless::capturing) {
            // The picture must not depend on where the pointer happens to be (Xvfb puts it
            // in the middle of the screen, over some tooltip).
            raw.events.retain(|e| {
                !matches!(
                    e,
                    egui::Event::PointerMoved(_)
                        | egui::Event::MouseMoved(_)
                        | egui::Event::PointerButton { .. }
                        | egui::Event::MouseWheel { .. }
                        | egui::Event::Touch { .. }
                )
            });
        }
    }

    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.receive(ctx);
        self.handle_input(ctx);
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        egui::Panel::top("toolbar").show(ui, |ui| {
            ui.add_space(4.0);
            self.toolbar(ui);
            ui.add_space(2.0);
        });
        egui::Panel::bottom("status").show(ui, |ui| self.status_bar(ui));
        // A fixed share of the window: a side panel would otherwise shrink to its content
        // while a result is pending and jump when it arrives.
        let results_width = (ui.available_width() * 0.44).clamp(380.0, 620.0);
        egui::Panel::right("results")
            .exact_size(results_width)
            .show(ui, |ui| {
                ui.add_space(6.0);
                self.results(ui);
            });
        egui::CentralPanel::default().show(ui, |ui| self.image_view(ui));
        let ctx = ui.ctx().clone();
        drop_hint(&ctx, ui);
        let first = first_result(&self.model, self.shown.as_ref());
        if let Some(h) = &mut self.headless {
            h.frame(&ctx, first);
        }
    }
}
