//! The CLI's inputs: folders expanded to their image files, and a decoder thread that reads
//! ahead so decoding overlaps the GPU's work.

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use vit_hybrid::Model;

/// Extensions taken from folders (other files there are skipped).
const IMAGE_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "bmp", "gif", "tif", "tiff", "webp", "pnm", "ppm", "pgm", "tga", "qoi",
    "ico",
];

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Files in argument order; a folder becomes its image files, recursively, sorted by path.
/// Anything else (including paths that do not exist, and a folder holding no image file) is
/// kept so its error is reported in place.
pub fn expand(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found = Vec::new();
            walk(p, &mut found);
            if found.is_empty() {
                out.push(p.clone());
            }
            found.sort();
            out.extend(found);
        } else {
            out.push(p.clone());
        }
    }
    out
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        eprintln!("warning: cannot read folder {}", dir.display());
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        // file_type() does not follow symlinks, so a link loop cannot recurse forever.
        match e.file_type() {
            Ok(t) if t.is_dir() => walk(&p, found),
            Ok(_) if is_image(&p) && p.is_file() => found.push(p),
            _ => {}
        }
    }
}

/// Decodes `files` in order on a background thread, at most `ahead` items in front of the
/// consumer; each item is the file and its pixels or the reason it failed.
pub fn decode_ahead(
    files: Vec<PathBuf>,
    model: &Model,
    ahead: usize,
) -> impl Iterator<Item = (PathBuf, Result<Vec<f32>, String>)> {
    let (tx, rx) = mpsc::sync_channel(ahead.max(1));
    let config = model.config.clone();
    let pre = model.preprocess.clone();
    std::thread::spawn(move || {
        for f in files {
            // A decoder bug must cost one input, not silently end the stream.
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                if f.is_dir() {
                    // `expand` keeps a folder only when it found no image file in it.
                    return Err(format!(
                        "{} is a folder with no image file in it (looked for .{})",
                        f.display(),
                        IMAGE_EXTENSIONS.join(", .")
                    ));
                }
                vit_hybrid::input::load(&f, &config, &pre).map_err(|e| format!("{e:#}"))
            }))
            .unwrap_or_else(|_| Err("the decoder crashed on this file".to_string()));
            if tx.send((f, r)).is_err() {
                break;
            }
        }
    });
    rx.into_iter()
}
