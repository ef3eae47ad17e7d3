//! PPM / PGM (binary P5/P6 and plain P2/P3) as Pillow reads them where the `image` crate differs
//! (`PpmImagePlugin`, Pillow 13).
//!
//! Pillow scales every sample to 8 bits with Python's `round(value / maxval * 255)`: float64,
//! in that order, halves rounded to even; binary samples above maxval are clipped to 255, plain
//! ones are an error. Samples are one byte for maxval < 256, else two (big-endian). The `image`
//! crate rounds halves up, and gives 16-bit RGB for maxval > 255, so these files are decoded
//! here; so are plain files of any maxval, since the `image` crate refuses the `#` comments
//! Pillow allows in plain data. Binary files with maxval 255 (the usual case) and bitmaps
//! (P1/P4) stay with the `image` crate.
//!
//! Gray with maxval > 255 is Pillow's mode `I` with `round(value / maxval * 65535)`, which
//! `convert("RGB")` clips to 255; as for every 16-bit gray image we keep the high byte instead
//! (README, Preprocessing): the image is returned as 16-bit gray holding Pillow's `I` values.
//!
//! The header is read as Pillow reads it: tokens of at most 10 bytes separated by whitespace,
//! `#` comments up to the end of the line, exactly one whitespace byte after maxval. Data that
//! ends early is an error, checked before the pixel buffer is allocated.

use anyhow::{Context, Result, bail, ensure};
use image::{DynamicImage, GrayImage, ImageBuffer, Luma, RgbImage};

use super::check_size;

/// Pillow's header whitespace (`b_whitespace`): space, tab, LF, VT, FF, CR.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// The longest token Pillow reads, in the header and in plain data.
const MAX_TOKEN: usize = 10;

/// The image, when `bytes` is a P2/P3 file or a P5/P6 file with maxval other than 255; `None`
/// for every other PNM file, which the `image` crate decodes.
pub fn decode(bytes: &[u8]) -> Result<Option<DynamicImage>> {
    let mut r = Reader { b: bytes, at: 0 };
    let (bands, plain) = match r.magic() {
        b"P2" => (1, true),
        b"P3" => (3, true),
        b"P5" => (1, false),
        b"P6" => (3, false),
        _ => return Ok(None),
    };
    let width = r.number("width")?;
    let height = r.number("height")?;
    let maxval = r.number("maxval")?;
    if maxval == 255 && !plain {
        return Ok(None);
    }
    ensure!(
        (1..65536).contains(&maxval),
        "maxval must be greater than 0 and less than 65536, got {maxval}"
    );
    ensure!(
        width >= 0 && height >= 0,
        "the image is {width}x{height}: a negative size"
    );
    let (width, height, maxval) = (width as u64, height as u64, maxval as u32);
    // Gray above 8 bits keeps Pillow's 16-bit `I` values.
    let wide = bands == 1 && maxval > 255;
    let out_max = if wide { 65535 } else { 255 };
    let out_bytes = if wide { 2 } else { 1 };
    // Saturating: a header's sides can be anything up to i64::MAX; check_size refuses them.
    let bytes_needed = width
        .saturating_mul(height)
        .saturating_mul(bands * out_bytes);
    check_size(width, height, bytes_needed)?;
    let samples = (width * height * bands) as usize;

    let data = &bytes[r.at..];
    let scale = |v: u32| {
        let s = (f64::from(v) / f64::from(maxval) * f64::from(out_max)).round_ties_even();
        s.min(f64::from(out_max)) as u16
    };
    let values: Vec<u16> = if plain {
        plain_samples(data, samples, maxval)?
            .into_iter()
            .map(scale)
            .collect()
    } else {
        let size = if maxval < 256 { 1 } else { 2 };
        ensure!(
            data.len() / size >= samples,
            "image file is truncated: {} bytes of pixel data, {} needed (not enough image data)",
            data.len(),
            samples * size
        );
        data.chunks_exact(size)
            .take(samples)
            .map(|s| scale(s.iter().fold(0, |acc, &b| acc << 8 | u32::from(b))))
            .collect()
    };

    let (w, h) = (width as u32, height as u32);
    let img: Option<DynamicImage> = match (bands, wide) {
        (3, _) => {
            RgbImage::from_raw(w, h, values.iter().map(|&v| v as u8).collect()).map(Into::into)
        }
        (_, false) => {
            GrayImage::from_raw(w, h, values.iter().map(|&v| v as u8).collect()).map(Into::into)
        }
        (_, true) => ImageBuffer::<Luma<u16>, _>::from_raw(w, h, values).map(Into::into),
    };
    img.context("PNM pixels of the wrong size").map(Some)
}

/// The first `samples` values of plain (ASCII) data, as Pillow's `PpmPlainDecoder` reads them:
/// `#` comments removed up to and including their line end (so digits on both sides join),
/// whitespace-separated tokens of at most 10 bytes, each a Python integer in 0..=maxval.
fn plain_samples(data: &[u8], samples: usize, maxval: u32) -> Result<Vec<u32>> {
    // n tokens take at least 2n - 1 bytes: refuse a lying header before allocating.
    ensure!(
        data.len() / 2 + 1 >= samples,
        "image file is truncated: {} bytes of plain data cannot hold {samples} samples (not \
         enough image data)",
        data.len()
    );
    let mut text = Vec::with_capacity(data.len());
    let mut rest = data;
    while let Some(hash) = rest.iter().position(|&b| b == b'#') {
        text.extend_from_slice(&rest[..hash]);
        rest = match rest[hash..].iter().position(|&b| b == b'\n' || b == b'\r') {
            Some(end) => &rest[hash + end + 1..],
            None => &[],
        };
    }
    text.extend_from_slice(rest);
    let mut out = Vec::with_capacity(samples);
    for token in text.split(|&b| is_space(b)).filter(|t| !t.is_empty()) {
        if out.len() == samples {
            break;
        }
        ensure!(
            token.len() <= MAX_TOKEN,
            "token too long found in data: {}",
            String::from_utf8_lossy(&token[..MAX_TOKEN + 1])
        );
        let v = python_int(token).with_context(|| {
            format!(
                "invalid literal in plain data: {:?}",
                String::from_utf8_lossy(token)
            )
        })?;
        ensure!(v >= 0, "channel value is negative: {v}");
        ensure!(
            v <= i64::from(maxval),
            "channel value too large for this mode: {v}"
        );
        out.push(v as u32);
    }
    ensure!(
        out.len() == samples,
        "image file is truncated: {} of {samples} samples in the plain data (not enough image data)",
        out.len()
    );
    Ok(out)
}

/// Python's `int(token)` on ASCII digits: an optional sign, then digits with single
/// underscores between them. `None` where Python raises.
fn python_int(token: &[u8]) -> Option<i64> {
    let (negative, digits) = match token.split_first()? {
        (b'-', d) => (true, d),
        (b'+', d) => (false, d),
        _ => (false, token),
    };
    if digits.first()? == &b'_' || digits.last()? == &b'_' || digits.windows(2).any(|w| w == b"__")
    {
        return None;
    }
    let mut v: i64 = 0;
    for &b in digits.iter().filter(|&&b| b != b'_') {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(i64::from(b - b'0'))?;
    }
    Some(if negative { -v } else { v })
}

/// Pillow's header reader over the file's bytes.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn next(&mut self) -> Option<u8> {
        let c = self.b.get(self.at).copied();
        self.at += usize::from(c.is_some());
        c
    }

    /// `_read_magic`: up to 6 bytes, ended by whitespace (consumed) or the end of the file.
    fn magic(&mut self) -> &[u8] {
        let start = self.at;
        let mut end = start;
        for _ in 0..6 {
            match self.next() {
                Some(c) if !is_space(c) => end = self.at,
                _ => break,
            }
        }
        &self.b[start..end]
    }

    /// `_read_token` then `int()`: whitespace skipped, `#` comments skipped to CR or LF, at
    /// most 10 bytes, ended by one whitespace byte (consumed).
    fn number(&mut self, what: &str) -> Result<i64> {
        let mut token = Vec::new();
        while token.len() <= MAX_TOKEN {
            match self.next() {
                None => break,
                Some(c) if is_space(c) => {
                    if token.is_empty() {
                        continue;
                    }
                    break;
                }
                Some(b'#') => while !matches!(self.next(), None | Some(b'\r' | b'\n')) {},
                Some(c) => token.push(c),
            }
        }
        if token.is_empty() {
            bail!("reached the end of the file while reading the PNM header ({what})");
        }
        ensure!(
            token.len() <= MAX_TOKEN,
            "token too long in the PNM header ({what}): {}",
            String::from_utf8_lossy(&token)
        );
        python_int(&token).with_context(|| {
            format!(
                "invalid {what} in the PNM header: {:?}",
                String::from_utf8_lossy(&token)
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_ints() {
        assert_eq!(python_int(b"0042"), Some(42));
        assert_eq!(python_int(b"+7"), Some(7));
        assert_eq!(python_int(b"-7"), Some(-7));
        assert_eq!(python_int(b"1_000"), Some(1000));
        for bad in [&b""[..], b"-", b"_1", b"1_", b"1__0", b"1a", b"0x10"] {
            assert_eq!(python_int(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn header_and_rounding() {
        // maxval 2: 1/2*255 = 127.5 rounds to even (128), 2 -> 255; raw 3 > maxval clips.
        let img = decode(b"P5 3 1 2\n\x01\x02\x03").unwrap().unwrap();
        assert_eq!(img.to_luma8().into_raw(), [128, 255, 255]);
        let img = decode(b"P2\n# c\n3 1\n2\n1 2 0").unwrap().unwrap();
        assert_eq!(img.to_luma8().into_raw(), [128, 255, 0]);
        // a comment joins the digits on both sides of it
        let img = decode(b"P2 2 1 20 1#x\n2 3").unwrap().unwrap();
        assert_eq!(img.to_luma8().into_raw(), [153, 38]);
        assert!(decode(b"P6 1 1 255\n\0\0\0").unwrap().is_none());
        let img = decode(b"P3 1 1 255\n1 # c\n2 3").unwrap().unwrap();
        assert_eq!(img.to_rgb8().into_raw(), [1, 2, 3]);
        assert!(decode(b"P2 2 1 2 1 3").is_err());
        assert!(decode(b"P5 2 2 2\n\0").is_err());
        assert!(decode(b"P5 16384 16384 2\n\0").is_err());
        // Sides whose product passes u64: refused by the pixel count, not wrapped around.
        assert!(decode(b"P6 4294967296 4294967296 100\n\0").is_err());
        assert!(decode(b"P5 9223372036854775807 3 2\n\0").is_err());
        assert!(decode(b"P5 2 2 0\n\0\0\0\0").is_err());
    }
}
