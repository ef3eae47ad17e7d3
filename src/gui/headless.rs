//! `--screenshot FILE` and `--exit-after-first-result`: once the first result (or error) is
//! on screen, print it as `vit-hybrid classify` would, write the window to a PNG and quit.
//! This is what `scripts/gui_check.sh` runs under Xvfb.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use eframe::egui;
use vit_hybrid::{Classification, Prediction};

/// Frames drawn with the result before the screenshot: egui lays some widgets out over two
/// frames, and the picture must show the settled layout.
const SETTLE_FRAMES: u32 = 3;

pub struct Headless {
    screenshot: Option<PathBuf>,
    exit: bool,
    /// Read by `gui::run` after the window closed, to exit non-zero.
    failure: Arc<Mutex<Option<String>>>,
    stage: Stage,
    shots: (
        Sender<Arc<egui::ColorImage>>,
        Receiver<Arc<egui::ColorImage>>,
    ),
}

enum Stage {
    Waiting,
    /// The first result is shown; `error` is the failure to exit with, if any.
    Settling {
        frames: u32,
        error: Option<String>,
    },
    Capturing {
        error: Option<String>,
    },
    Done,
}

impl Headless {
    /// `None` when neither flag was given (the normal, interactive window).
    pub fn new(
        screenshot: Option<PathBuf>,
        exit: bool,
        failure: Arc<Mutex<Option<String>>>,
    ) -> Option<Self> {
        (screenshot.is_some() || exit).then(|| Self {
            screenshot,
            exit,
            failure,
            stage: Stage::Waiting,
            shots: mpsc::channel(),
        })
    }

    /// Whether the screenshot is still to come (user input would change it).
    pub fn capturing(&self) -> bool {
        self.screenshot.is_some() && !matches!(self.stage, Stage::Done)
    }

    /// Called after every frame is laid out, with the first result once it is complete.
    pub fn frame(&mut self, ctx: &egui::Context, first: Option<First<'_>>) {
        match &mut self.stage {
            Stage::Waiting => {
                let Some(first) = first else { return };
                let error = match first {
                    First::Classified { path, top } => {
                        if self.exit {
                            print_result(path, top);
                        }
                        None
                    }
                    First::NoImage => None,
                    // Only a scripted run ends with it (`main` prints it when `run` returns
                    // it); a person sees it in the window and carries on.
                    First::Failed(e) => self.exit.then_some(e),
                };
                self.stage = Stage::Settling { frames: 0, error };
                ctx.request_repaint();
            }
            Stage::Settling { frames, error } => {
                *frames += 1;
                if *frames < SETTLE_FRAMES {
                    ctx.request_repaint();
                    return;
                }
                let error = error.take();
                if self.screenshot.is_some() {
                    let tx = self.shots.0.clone();
                    let waker = ctx.clone();
                    ctx.request_screenshot(move |image| {
                        let _ = tx.send(image);
                        waker.request_repaint();
                    });
                    self.stage = Stage::Capturing { error };
                } else {
                    self.finish(ctx, error);
                }
            }
            Stage::Capturing { error } => {
                let Ok(image) = self.shots.1.try_recv() else {
                    return;
                };
                let mut error = error.take();
                let path = self.screenshot.as_deref().expect("capturing");
                if let Err(e) = save_png(&image, path) {
                    eprintln!("error: {e:#}");
                    error.get_or_insert(format!("{e:#}"));
                }
                self.finish(ctx, error);
            }
            Stage::Done => {}
        }
    }

    fn finish(&mut self, ctx: &egui::Context, error: Option<String>) {
        if let Some(e) = error {
            *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
        }
        if self.exit {
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        }
        self.stage = Stage::Done;
    }
}

/// The first result of the window, once it is all on screen.
pub enum First<'a> {
    Classified {
        path: &'a Path,
        top: &'a [Prediction],
    },
    /// The model loaded and no image was given.
    NoImage,
    /// The model, the image or the classification failed with this message.
    Failed(String),
}

/// Prints a result with the `classify` command's own printer, so a script can compare the two.
fn print_result(path: &Path, top: &[Prediction]) {
    let mut printer = crate::Printer {
        json: false,
        logits: false,
        failures: 0,
        file: None,
    };
    let result = Classification {
        logits: Vec::new(),
        top: top.to_vec(),
    };
    let mut out = std::io::stdout().lock();
    if let Err(e) = printer
        .print(&mut out, path, Ok(result))
        .and_then(|()| Ok(out.flush()?))
    {
        eprintln!("error: printing the result: {e:#}");
    }
}

fn save_png(image: &egui::ColorImage, path: &Path) -> Result<()> {
    let [w, h] = image.size;
    let rgb: Vec<u8> = image
        .pixels
        .iter()
        .flat_map(|c| [c.r(), c.g(), c.b()])
        .collect();
    let buffer = image::RgbImage::from_raw(w as u32, h as u32, rgb)
        .context("the screenshot's size does not match its pixels")?;
    buffer
        .save(path)
        .with_context(|| format!("writing the screenshot {}", path.display()))?;
    eprintln!("wrote {} ({w}x{h})", path.display());
    Ok(())
}
