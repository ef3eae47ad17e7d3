//! The images the window steps through (arrow keys, Previous/Next) and which one is shown.
//!
//! Opening one file makes its folder's images the list, so a photo opened from the command
//! line, a drop or the path box is the way into stepping through that folder. Several paths,
//! or a folder, become the list the `classify` command would read (folders recursively).

use std::path::{Path, PathBuf};

use crate::inputs;

#[derive(Default)]
pub struct Playlist {
    paths: Vec<PathBuf>,
    index: usize,
}

impl Playlist {
    /// The list for paths given together (command line, a drop of several files).
    pub fn new(paths: &[PathBuf]) -> Self {
        match paths {
            [one] if !one.is_dir() => Self::around(one),
            _ => Self {
                paths: inputs::expand(paths),
                index: 0,
            },
        }
    }

    /// `file` among the images of its folder, in name order. The path is kept as given, so
    /// that it prints as the `classify` command prints it.
    fn around(file: &Path) -> Self {
        let parent = file.parent().unwrap_or(Path::new(""));
        let listed = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        let mut paths: Vec<PathBuf> = std::fs::read_dir(listed)
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                    .map(|e| parent.join(e.file_name()))
                    .filter(|p| is_image(p))
                    .collect()
            })
            .unwrap_or_default();
        paths.sort();
        // A file that does not look like an image (or a missing one) is still opened, alone,
        // so that its error is shown.
        match paths.iter().position(|p| p == file) {
            Some(index) => Self { paths, index },
            None => Self {
                paths: vec![file.to_path_buf()],
                index: 0,
            },
        }
    }

    pub fn current(&self) -> Option<&Path> {
        self.paths.get(self.index).map(PathBuf::as_path)
    }

    /// Moves by `delta` images, wrapping around; returns the new current image.
    pub fn step(&mut self, delta: isize) -> Option<&Path> {
        let n = self.paths.len() as isize;
        if n == 0 {
            return None;
        }
        self.index = (self.index as isize + delta).rem_euclid(n) as usize;
        self.current()
    }

    /// (1-based position, count) for "3 / 12".
    pub fn position(&self) -> (usize, usize) {
        (self.index + 1, self.paths.len())
    }
}

/// Files the `image` crate can decode, judged by extension.
fn is_image(path: &Path) -> bool {
    image::ImageFormat::from_path(path).is_ok_and(|f| f.reading_enabled())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_file_opens_its_folder_and_steps_around_it() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.png", "a.jpg", "c.PNG", "notes.txt"] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        std::fs::create_dir(dir.path().join("sub.png")).unwrap();
        let b = dir.path().join("b.png");
        let mut list = Playlist::new(std::slice::from_ref(&b));
        assert_eq!(list.current(), Some(b.as_path()));
        assert_eq!(list.position(), (2, 3));
        assert_eq!(list.step(1), Some(dir.path().join("c.PNG").as_path()));
        assert_eq!(list.step(1), Some(dir.path().join("a.jpg").as_path()));
        assert_eq!(list.step(-1), Some(dir.path().join("c.PNG").as_path()));
    }

    #[test]
    fn a_file_that_is_not_an_image_is_opened_alone() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.png"), b"").unwrap();
        let notes = dir.path().join("notes.txt");
        std::fs::write(&notes, b"").unwrap();
        let missing = dir.path().join("missing.png");
        for path in [notes, missing] {
            let list = Playlist::new(std::slice::from_ref(&path));
            assert_eq!(list.current(), Some(path.as_path()));
            assert_eq!(list.position(), (1, 1));
        }
    }

    #[test]
    fn a_bare_file_name_keeps_its_spelling() {
        // `classify chelsea.png` prints `chelsea.png`; so must the window.
        let list = Playlist::new(&[PathBuf::from("Cargo.toml")]);
        assert_eq!(list.current(), Some(Path::new("Cargo.toml")));
    }

    #[test]
    fn nothing_to_step_through() {
        let mut list = Playlist::new(&[]);
        assert_eq!(list.current(), None);
        assert_eq!(list.step(1), None);
    }
}
