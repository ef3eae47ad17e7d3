//! NumPy `.npy` files of little-endian float32, the format the reference fixtures are written
//! in by the `transformers` scripts (`np.save(path, array.astype(np.float32))`).
//!
//! Only what the fixtures need is supported: dtype `<f4`, C order, format versions 1 to 3.
//! Everything else is refused with an error that names the file and what was found, because
//! silently converting (say float64, or a Fortran-ordered array) would hide a fixture bug.
//!
//! The header is validated against the file's length before the data buffer is allocated,
//! so a corrupt or hostile header produces an error, never a huge allocation or a panic: the
//! header is at most [`MAX_HEADER_BYTES`] and the data exactly what the file holds.

use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, bail, ensure};

const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// NumPy aligns the start of the data to this many bytes (format v1.0 since NumPy 1.x).
const ALIGN: usize = 64;
/// Longest header read: NumPy's own default `max_header_size` (`np.load` refuses longer ones
/// unless told otherwise); ours are under 128 bytes.
pub const MAX_HEADER_BYTES: u64 = 10_000;

/// Reads a C-ordered little-endian float32 array; returns its shape and its elements in
/// row-major order. A 0-d array has shape `[]` and one element.
pub fn read_f32(path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    let shown = path.display();
    let mut file = File::open(path).with_context(|| format!("opening npy file {shown}"))?;
    let file_len = file
        .metadata()
        .with_context(|| format!("reading the size of npy file {shown}"))?
        .len();
    read_f32_from(&mut file, file_len, &shown)
}

/// [`read_f32`] on a reader holding `file_len` bytes (`shown` names it in errors): the part
/// the fuzz targets drive, without the file system.
pub fn read_f32_from(
    file: &mut impl Read,
    file_len: u64,
    shown: &dyn std::fmt::Display,
) -> Result<(Vec<usize>, Vec<f32>)> {
    // magic (6) + version (2) + header length (2 bytes in v1, 4 in v2/v3)
    let mut prefix = [0u8; 8];
    file.read_exact(&mut prefix).with_context(|| {
        format!("npy file {shown}: too short for the magic and version ({file_len} bytes)")
    })?;
    if &prefix[..6] != MAGIC {
        bail!(
            "npy file {shown}: bad magic {:02x?}, not a NumPy .npy file",
            &prefix[..6]
        );
    }
    let (major, minor) = (prefix[6], prefix[7]);
    let len_bytes = match major {
        1 => 2,
        2 | 3 => 4,
        _ => bail!("npy file {shown}: unsupported format version {major}.{minor}"),
    };
    let mut len_buf = [0u8; 4];
    file.read_exact(&mut len_buf[..len_bytes])
        .with_context(|| format!("npy file {shown}: truncated before the header length"))?;
    let header_len = u32::from_le_bytes(len_buf) as u64;
    if header_len > MAX_HEADER_BYTES {
        bail!(
            "npy file {shown}: header claims {header_len} bytes, more than the {MAX_HEADER_BYTES} \
             NumPy reads"
        );
    }
    let data_start = 8 + len_bytes as u64 + header_len;
    if data_start > file_len {
        bail!(
            "npy file {shown}: header claims {header_len} bytes but the file has only {file_len} bytes"
        );
    }

    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header)
        .with_context(|| format!("npy file {shown}: truncated header"))?;
    // v1/v2 headers are latin-1 and v3 headers UTF-8; every valid header is ASCII.
    let header = std::str::from_utf8(&header)
        .ok()
        .filter(|h| h.is_ascii())
        .with_context(|| format!("npy file {shown}: header is not ASCII text"))?;
    let header =
        parse_header(header).with_context(|| format!("npy file {shown}: bad header {header:?}"))?;

    if header.descr != "<f4" {
        bail!(
            "npy file {shown}: dtype {:?} is not supported, only little-endian float32 '<f4' \
             (save with array.astype(np.float32))",
            header.descr
        );
    }
    if header.fortran_order {
        bail!(
            "npy file {shown}: Fortran-ordered arrays are not supported (save with np.ascontiguousarray)"
        );
    }
    let count = header
        .shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .with_context(|| format!("npy file {shown}: shape {:?} overflows", header.shape))?;
    let want_bytes = (count as u64)
        .checked_mul(4)
        .with_context(|| format!("npy file {shown}: shape {:?} overflows", header.shape))?;
    let have_bytes = file_len - data_start;
    if want_bytes != have_bytes {
        bail!(
            "npy file {shown}: shape {:?} needs {want_bytes} data bytes but the file holds {have_bytes}",
            header.shape
        );
    }

    // The size now matches the file, so this allocation is bounded by the file's length.
    let mut data = vec![0f32; count];
    file.read_exact(bytemuck::cast_slice_mut(&mut data))
        .with_context(|| format!("npy file {shown}: reading {want_bytes} data bytes"))?;
    for v in &mut data {
        // no-op on little-endian hosts; keeps big-endian hosts correct
        *v = f32::from_bits(u32::from_le(v.to_bits()));
    }
    Ok((header.shape, data))
}

/// Writes `data` (row-major, `shape` product elements) as a format v1.0 `.npy` file.
///
/// The file is written beside its destination under a temporary name and renamed into place,
/// so a crash or a full disk never leaves a truncated fixture behind that a later test would
/// read as valid.
pub fn write_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    let shown = path.display();
    let count = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .with_context(|| format!("npy file {shown}: shape {shape:?} overflows"))?;
    ensure!(
        count == data.len(),
        "npy file {shown}: shape {shape:?} has {count} elements but {} were given",
        data.len()
    );

    let header = header_bytes(shape);
    ensure!(
        header.len() - 10 <= u16::MAX as usize,
        "npy file {shown}: shape {shape:?} makes a header too long for format v1.0"
    );

    let tmp = temp_path(path);
    let result = write_to(&tmp, &header, data).and_then(|()| {
        fs::rename(&tmp, path).with_context(|| format!("renaming {} to {shown}", tmp.display()))
    });
    if result.is_err() {
        // Best effort: the error that matters is the one being returned.
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The complete v1.0 preamble: magic, version, length and the padded dict literal, a multiple
/// of [`ALIGN`] bytes long so the data that follows is aligned as NumPy expects.
fn header_bytes(shape: &[usize]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_text = match dims.len() {
        1 => format!("({},)", dims[0]), // a 1-tuple needs its trailing comma in Python
        _ => format!("({})", dims.join(", ")),
    };
    let mut dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_text}, }}");
    let unpadded = MAGIC.len() + 2 + 2 + dict.len() + 1; // +1 for the final '\n'
    let padding = (ALIGN - unpadded % ALIGN) % ALIGN;
    dict.extend(std::iter::repeat_n(' ', padding));
    dict.push('\n');

    let mut out = Vec::with_capacity(10 + dict.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

fn write_to(tmp: &Path, header: &[u8], data: &[f32]) -> Result<()> {
    let shown = tmp.display();
    let file = File::create(tmp).with_context(|| format!("creating temporary npy file {shown}"))?;
    let mut w = BufWriter::new(file);
    w.write_all(header)
        .with_context(|| format!("writing npy header to {shown}"))?;
    if cfg!(target_endian = "little") {
        w.write_all(bytemuck::cast_slice(data))
    } else {
        data.iter().try_for_each(|v| w.write_all(&v.to_le_bytes()))
    }
    .with_context(|| format!("writing npy data to {shown}"))?;
    let file = w
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(|| format!("flushing npy file {shown}"))?;
    file.sync_all()
        .with_context(|| format!("syncing npy file {shown}"))?;
    Ok(())
}

/// A name in the destination's directory (so the rename stays on one filesystem) that two
/// writers in one process, or in two processes, never share.
fn temp_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "array.npy".to_owned());
    path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()))
}

#[derive(Debug, PartialEq)]
struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// Parses the header's Python dict literal, e.g.
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`, by hand: it is the only
/// Python syntax NumPy writes there, and evaluating anything would be unsafe.
fn parse_header(text: &str) -> Result<Header> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    p.expect(b'{')?;
    loop {
        if p.eat(b'}') {
            break;
        }
        let key = p.string()?;
        p.expect(b':')?;
        match key.as_str() {
            "descr" if descr.is_none() => descr = Some(p.string()?),
            "fortran_order" if fortran.is_none() => fortran = Some(p.boolean()?),
            "shape" if shape.is_none() => shape = Some(p.tuple()?),
            "descr" | "fortran_order" | "shape" => bail!("key {key:?} appears twice"),
            _ => bail!("unexpected key {key:?}"),
        }
        if !p.eat(b',') {
            p.expect(b'}')?;
            break;
        }
    }
    p.skip_ws();
    ensure!(
        p.i == p.s.len(),
        "trailing text after the dict at byte {}",
        p.i
    );
    Ok(Header {
        descr: descr.context("missing key 'descr'")?,
        fortran_order: fortran.context("missing key 'fortran_order'")?,
        shape: shape.context("missing key 'shape'")?,
    })
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.s.get(self.i).is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    /// Skips whitespace, then consumes `c` if it is next.
    fn eat(&mut self, c: u8) -> bool {
        self.skip_ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> Result<()> {
        ensure!(self.eat(c), "expected {:?} at byte {}", c as char, self.i);
        Ok(())
    }

    fn string(&mut self) -> Result<String> {
        self.skip_ws();
        let quote = match self.s.get(self.i) {
            Some(&q @ (b'\'' | b'"')) => q,
            _ => bail!("expected a quoted string at byte {}", self.i),
        };
        let start = self.i + 1;
        let len = self.s[start..]
            .iter()
            .position(|&c| c == quote)
            .with_context(|| format!("unterminated string at byte {}", self.i))?;
        self.i = start + len + 1;
        Ok(String::from_utf8_lossy(&self.s[start..start + len]).into_owned())
    }

    fn word(&mut self) -> &[u8] {
        self.skip_ws();
        let start = self.i;
        while self
            .s
            .get(self.i)
            .is_some_and(|c| c.is_ascii_alphanumeric())
        {
            self.i += 1;
        }
        &self.s[start..self.i]
    }

    fn boolean(&mut self) -> Result<bool> {
        let at = self.i;
        match self.word() {
            b"True" => Ok(true),
            b"False" => Ok(false),
            w => bail!(
                "expected True or False at byte {at}, got {:?}",
                String::from_utf8_lossy(w)
            ),
        }
    }

    /// `()`, `(5,)`, `(2, 3)`; Python 2 era files may write `3L`.
    fn tuple(&mut self) -> Result<Vec<usize>> {
        self.expect(b'(')?;
        let mut dims = Vec::new();
        loop {
            if self.eat(b')') {
                return Ok(dims);
            }
            let at = self.i;
            let word = self.word();
            let digits = word.strip_suffix(b"L").unwrap_or(word);
            ensure!(
                !digits.is_empty() && digits.iter().all(u8::is_ascii_digit),
                "expected a dimension at byte {at}, got {:?}",
                String::from_utf8_lossy(word)
            );
            // Digits only, so the parse fails only on overflow.
            let text = std::str::from_utf8(digits).unwrap_or_default();
            let dim = text
                .parse::<usize>()
                .with_context(|| format!("dimension {text} at byte {at} is too large"))?;
            dims.push(dim);
            if !self.eat(b',') {
                self.expect(b')')?;
                return Ok(dims);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh, empty directory per test so parallel tests never collide.
    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("vit-hybrid-npy-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Builds a file from a raw header dict and raw data bytes, for malformed-input tests.
    fn raw_npy(path: &Path, version: u8, dict: &str, data: &[u8]) {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&[version, 0]);
        if version == 1 {
            bytes.extend_from_slice(&(dict.len() as u16).to_le_bytes());
        } else {
            bytes.extend_from_slice(&(dict.len() as u32).to_le_bytes());
        }
        bytes.extend_from_slice(dict.as_bytes());
        bytes.extend_from_slice(data);
        fs::write(path, bytes).unwrap();
    }

    fn err_text(r: Result<(Vec<usize>, Vec<f32>)>) -> String {
        format!("{:#}", r.expect_err("expected an error"))
    }

    #[test]
    fn roundtrip_shapes() {
        let dir = scratch("roundtrip");
        for shape in [
            vec![],
            vec![0],
            vec![5],
            vec![2, 3],
            vec![1, 3, 4, 2],
            vec![7, 0, 3],
        ] {
            let n: usize = shape.iter().product();
            let data: Vec<f32> = (0..n).map(|i| i as f32 * -0.25 + 1e-7).collect();
            let path = dir.join(format!("a{}.npy", shape.len()));
            write_f32(&path, &shape, &data).unwrap();
            let bytes = fs::read(&path).unwrap();
            let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
            assert_eq!(
                (10 + header_len) % ALIGN,
                0,
                "data not aligned for {shape:?}"
            );
            assert_eq!(bytes[9 + header_len], b'\n');
            let (got_shape, got) = read_f32(&path).unwrap();
            assert_eq!(got_shape, shape);
            assert_eq!(got, data);
        }
        // no temporary files left behind
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(
            names.iter().all(|n| !n.to_string_lossy().ends_with(".tmp")),
            "{names:?}"
        );
    }

    #[test]
    fn header_text_matches_numpy() {
        // np.save writes exactly this for np.zeros((2, 3), np.float32) (NumPy 1.x and 2.x)
        let h = header_bytes(&[2, 3]);
        let text = std::str::from_utf8(&h[10..]).unwrap();
        assert!(text.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"));
        assert_eq!(h.len(), 128);
        assert!(
            std::str::from_utf8(&header_bytes(&[5])[10..])
                .unwrap()
                .contains("(5,)")
        );
    }

    #[test]
    fn reads_v2_and_v3_and_odd_spacing() {
        let dir = scratch("versions");
        let data: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        for v in [2u8, 3] {
            let path = dir.join(format!("v{v}.npy"));
            raw_npy(
                &path,
                v,
                "{\"shape\":(2L,),'fortran_order':False,  'descr':'<f4'}\n",
                &data,
            );
            assert_eq!(read_f32(&path).unwrap(), (vec![2], vec![1.5, -2.0]));
        }
    }

    #[test]
    fn truncated_file() {
        let dir = scratch("truncated");
        let path = dir.join("t.npy");
        write_f32(&path, &[4, 4], &[0.5; 16]).unwrap();
        let bytes = fs::read(&path).unwrap();
        for cut in [bytes.len() - 1, 130, 64, 9, 3] {
            fs::write(&path, &bytes[..cut]).unwrap();
            let msg = err_text(read_f32(&path));
            assert!(msg.contains("t.npy"), "{cut}: {msg}");
        }
    }

    #[test]
    fn lying_shape() {
        let dir = scratch("lying");
        let path = dir.join("l.npy");
        raw_npy(
            &path,
            1,
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 3), }\n",
            &[0; 32],
        );
        let msg = err_text(read_f32(&path));
        assert!(
            msg.contains("needs 36 data bytes but the file holds 32"),
            "{msg}"
        );
        // too many bytes is as wrong as too few
        raw_npy(
            &path,
            1,
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n",
            &[0; 12],
        );
        assert!(err_text(read_f32(&path)).contains("needs 8"));
        // header length pointing past the end of the file
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&[1, 0, 0xff, 0xff, b'{']);
        fs::write(&path, bytes).unwrap();
        assert!(err_text(read_f32(&path)).contains("header claims 65535 bytes"));
    }

    #[test]
    fn huge_shape_errors_without_allocating() {
        let dir = scratch("huge");
        let path = dir.join("h.npy");
        for shape in [
            "(4611686018427387904, 8)",
            "(1152921504606846976,)",
            "(99999999999999999999999,)",
        ] {
            let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}\n");
            raw_npy(&path, 1, &dict, &[0; 16]);
            let msg = err_text(read_f32(&path));
            assert!(msg.contains("h.npy"), "{msg}");
            assert!(
                msg.contains("overflow") || msg.contains("too large") || msg.contains("needs"),
                "{msg}"
            );
        }
    }

    #[test]
    fn wrong_dtypes() {
        let dir = scratch("dtype");
        let path = dir.join("d.npy");
        for descr in [">f4", "<f8", "<i4", "|u1", "<f2"] {
            let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': (1,), }}\n");
            raw_npy(&path, 1, &dict, &[0; 4]);
            let msg = err_text(read_f32(&path));
            assert!(msg.contains(descr) && msg.contains("d.npy"), "{msg}");
        }
    }

    #[test]
    fn fortran_order_rejected() {
        let dir = scratch("fortran");
        let path = dir.join("f.npy");
        raw_npy(
            &path,
            1,
            "{'descr': '<f4', 'fortran_order': True, 'shape': (1, 2), }\n",
            &[0; 8],
        );
        assert!(err_text(read_f32(&path)).contains("Fortran"));
    }

    #[test]
    fn garbage_and_empty() {
        let dir = scratch("garbage");
        let path = dir.join("g.npy");
        fs::write(&path, b"PK\x03\x04 this is a zip, not an npy file").unwrap();
        assert!(err_text(read_f32(&path)).contains("bad magic"));
        fs::write(&path, b"").unwrap();
        assert!(err_text(read_f32(&path)).contains("g.npy"));
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&[9, 0, 0, 0]);
        fs::write(&path, bytes).unwrap();
        assert!(err_text(read_f32(&path)).contains("version 9.0"));
        assert!(err_text(read_f32(&dir.join("missing.npy"))).contains("missing.npy"));
    }

    #[test]
    fn malformed_headers() {
        for bad in [
            "",
            "{",
            "{'descr': '<f4', 'fortran_order': False}",
            "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (1,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'extra': 1}",
            "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}",
            "{'descr': '<f4, 'fortran_order': False, 'shape': (1,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1 2)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} x",
        ] {
            assert!(parse_header(bad).is_err(), "accepted {bad:?}");
        }
        assert_eq!(
            parse_header("{'descr': '<f4', 'fortran_order': False, 'shape': (), }   \n").unwrap(),
            Header {
                descr: "<f4".into(),
                fortran_order: false,
                shape: vec![]
            }
        );
    }

    #[test]
    fn write_rejects_mismatched_length_and_leaves_nothing() {
        let dir = scratch("mismatch");
        let path = dir.join("m.npy");
        let err = write_f32(&path, &[2, 2], &[0.0; 3]).unwrap_err();
        assert!(format!("{err:#}").contains("m.npy"));
        assert!(!path.exists());
        // an unwritable destination directory: error, and no file appears
        let err = write_f32(&dir.join("no/such/dir/x.npy"), &[1], &[0.0]).unwrap_err();
        assert!(format!("{err:#}").contains("x.npy"), "{err:#}");
    }
}
