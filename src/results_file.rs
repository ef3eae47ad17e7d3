//! `classify --output FILE [--resume]`: one JSON line per input appended as it finishes, so a
//! killed run loses at most the line it was writing, and a resumed run skips what is there.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};

/// The results file, open for appending.
pub struct ResultsFile {
    file: File,
}

/// What an existing results file already holds.
pub struct Existing {
    /// How many complete lines (answers and errors alike) each `"input"` has: an input given
    /// twice is answered twice.
    pub answered: HashMap<String, usize>,
    /// Bytes of a cut last line that were removed.
    pub cut: u64,
}

impl Existing {
    /// Whether `input` is answered, counting it off: inputs given more than once are answered
    /// in order, so its first occurrences are the ones done.
    pub fn take(&mut self, input: &str) -> bool {
        match self.answered.get_mut(input) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }
}

impl ResultsFile {
    /// Opens (or creates) `path` for appending. A last line without its newline (a run killed
    /// while writing it) is cut off first, since the next line would otherwise be glued to
    /// it. With `resume`, the inputs its complete lines answer are returned.
    pub fn open(path: &Path, resume: bool) -> Result<(Self, Existing)> {
        let shown = path.display();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .with_context(|| format!("opening results file {shown}"))?;
        let cut = cut_partial_line(&mut file).with_context(|| format!("repairing {shown}"))?;
        let mut answered = HashMap::new();
        if resume {
            file.seek(SeekFrom::Start(0))
                .with_context(|| format!("reading {shown}"))?;
            for (i, line) in BufReader::new(&file).lines().enumerate() {
                let line = line.with_context(|| format!("reading {shown}"))?;
                if line.trim().is_empty() {
                    continue;
                }
                let input = serde_json::from_str::<serde_json::Value>(&line)
                    .ok()
                    .and_then(|v| v.get("input").and_then(|i| i.as_str()).map(str::to_owned));
                let Some(input) = input else {
                    bail!(
                        "{shown} line {} is not a result of `classify` (a JSON object with \
                         \"input\"); is this the right file?",
                        i + 1
                    );
                };
                *answered.entry(input).or_insert(0) += 1;
            }
        }
        file.seek(SeekFrom::End(0))
            .with_context(|| format!("opening results file {shown}"))?;
        Ok((Self { file }, Existing { answered, cut }))
    }

    /// Appends one line in a single write (no buffering), so it reaches the file at once.
    pub fn append(&mut self, line: &serde_json::Value) -> Result<()> {
        let mut text = line.to_string();
        text.push('\n');
        self.file
            .write_all(text.as_bytes())
            .context("writing the results file")
    }
}

/// Truncates `file` after its last newline; returns how many bytes went.
fn cut_partial_line(file: &mut File) -> Result<u64> {
    let len = file.metadata()?.len();
    let mut end = len;
    let mut buf = vec![0u8; 64 * 1024];
    // Scan back from the end for the last newline, a block at a time.
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let block = &mut buf[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(block)?;
        if let Some(i) = block.iter().rposition(|&b| b == b'\n') {
            end = start + i as u64 + 1;
            break;
        }
        end = start;
    }
    if end < len {
        file.set_len(end)?;
    }
    Ok(len - end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_line_is_removed_and_complete_lines_count() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        std::fs::write(
            &path,
            "{\"input\":\"a.png\",\"top\":[]}\n{\"input\":\"b.png\",\"error\":\"x\"}\n\
             {\"input\":\"a.png\",\"top\":[]}\n{\"input\":\"c.p",
        )
        .unwrap();
        let (mut f, mut existing) = ResultsFile::open(&path, true).unwrap();
        assert_eq!(existing.cut, "{\"input\":\"c.p".len() as u64);
        let mut answered: Vec<_> = existing.answered.clone().into_iter().collect();
        answered.sort();
        assert_eq!(
            answered,
            [("a.png".to_string(), 2), ("b.png".to_string(), 1)]
        );
        // a.png given three times: two of them are answered.
        let left: Vec<_> = ["a.png", "b.png", "a.png", "c.png", "a.png"]
            .into_iter()
            .filter(|i| !existing.take(i))
            .collect();
        assert_eq!(left, ["c.png", "a.png"]);
        f.append(&serde_json::json!({"input": "c.png", "top": []}))
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 4);
        assert!(
            text.ends_with("{\"input\":\"c.png\",\"top\":[]}\n"),
            "{text}"
        );
    }

    #[test]
    fn a_file_of_one_cut_line_becomes_empty_and_garbage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        std::fs::write(&path, "{\"inp").unwrap();
        let (_, existing) = ResultsFile::open(&path, true).unwrap();
        assert!(existing.answered.is_empty());
        assert_eq!(std::fs::read(&path).unwrap().len(), 0);
        std::fs::write(&path, "hello\n").unwrap();
        let e = ResultsFile::open(&path, true).err().unwrap();
        assert!(format!("{e:#}").contains("line 1"), "{e:#}");
    }
}
