//! What Pillow refuses, and what it forgives, in an image file, checked on the file's bytes
//! before any pixel is decoded, so that we refuse and accept the same files transformers does.
//!
//! - **JPEG**: libjpeg under Pillow stops with "image file is truncated" when the data ends
//!   before the end-of-image marker, wherever it is cut (inside a header, inside a scan, or
//!   only the final two bytes). zune-jpeg (the browser build's decoder) would fill the missing
//!   rows with grey and answer; so the marker structure is walked to its EOI first. libjpeg
//!   (`src/jpeg.rs`, every other build) stops at the end of the data by itself, as under
//!   Pillow; the walk runs before it too, so the message is the same in every build. Bytes
//!   after EOI are ignored, as there.
//! - **PNG**: Pillow checks the CRC of the chunks before the image data but never that of
//!   IDAT, whose bytes go straight to zlib (which has its own checksum). The png crate checks
//!   every CRC, so a wrong IDAT CRC is rewritten here before decoding. Pillow also needs no
//!   IEND after the last whole chunk, where the png crate wants one, so it is appended. Every
//!   other check (truncation, a bad header CRC, a broken zlib stream) stays the decoder's.

use std::borrow::Cow;

use anyhow::{Result, bail};
use image::ImageFormat;

/// The bytes to hand the decoder: `bytes` itself, or a copy with what Pillow forgives mended.
/// Fails where Pillow refuses the file before decoding it.
pub fn prepare(bytes: &[u8], format: ImageFormat) -> Result<Cow<'_, [u8]>> {
    match format {
        ImageFormat::Jpeg => {
            check_jpeg(bytes)?;
            Ok(Cow::Borrowed(bytes))
        }
        ImageFormat::Png => Ok(mend_png(bytes)),
        _ => Ok(Cow::Borrowed(bytes)),
    }
}

/// Walks a JPEG's markers from SOI to EOI. Stray bytes where a marker belongs are skipped, as
/// libjpeg skips them (with a warning, which Pillow does not turn into an error).
pub fn check_jpeg(b: &[u8]) -> Result<()> {
    if b.len() < 2 || b[0] != 0xFF || b[1] != 0xD8 {
        bail!("not a JPEG file (no start-of-image marker)");
    }
    let mut i = 2;
    loop {
        // Next marker: skip stray bytes, then any fill 0xFF bytes.
        while i < b.len() && b[i] != 0xFF {
            i += 1;
        }
        while i < b.len() && b[i] == 0xFF {
            i += 1;
        }
        let Some(&marker) = b.get(i) else {
            bail!("image file is truncated: the JPEG data ends before its end-of-image marker");
        };
        i += 1;
        match marker {
            0xD9 => return Ok(()),
            // Standalone markers: restart intervals, TEM; a 0x00 here is a stuffed byte.
            0xD0..=0xD7 | 0x01 | 0x00 => continue,
            0xD8 => bail!("corrupt JPEG data: a second start-of-image marker at byte {i}"),
            _ => {}
        }
        let Some(len) = b
            .get(i..i + 2)
            .map(|l| u16::from_be_bytes([l[0], l[1]]) as usize)
        else {
            bail!("image file is truncated: the JPEG data ends inside a marker segment");
        };
        if len < 2 {
            bail!("corrupt JPEG data: marker 0xFF{marker:02X} at byte {i} has length {len}");
        }
        if i + len > b.len() {
            bail!(
                "image file is truncated: marker 0xFF{marker:02X} at byte {i} needs {len} bytes, \
                 {} remain",
                b.len() - i
            );
        }
        i += len;
        if marker == 0xDA {
            // Entropy-coded data runs to the next marker that is neither a stuffed 0xFF00
            // nor a restart marker.
            loop {
                while i < b.len() && b[i] != 0xFF {
                    i += 1;
                }
                match b.get(i + 1) {
                    None => bail!(
                        "image file is truncated: the JPEG data ends inside a scan, before its \
                         end-of-image marker"
                    ),
                    Some(0x00 | 0xD0..=0xD7 | 0xFF) => i += 1,
                    Some(_) => break,
                }
            }
        }
    }
}

/// A copy with every complete IDAT chunk's CRC recomputed and a missing IEND appended, or the
/// bytes themselves when nothing needs mending (or the file is not laid out as whole PNG
/// chunks, which the decoder then reports).
fn mend_png(b: &[u8]) -> Cow<'_, [u8]> {
    const SIGNATURE: usize = 8;
    let mut out: Option<Vec<u8>> = None;
    let mut i = SIGNATURE;
    let mut idat_seen = false;
    while let Some(head) = b.get(i..i + 8) {
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let Some(end) = i.checked_add(12).and_then(|e| e.checked_add(len)) else {
            break;
        };
        if end > b.len() {
            break;
        }
        if &head[4..8] == b"IDAT" {
            idat_seen = true;
            let crc = crc32(&b[i + 4..i + 8 + len]);
            if b[end - 4..end] != crc.to_be_bytes() {
                out.get_or_insert_with(|| b.to_vec())[end - 4..end]
                    .copy_from_slice(&crc.to_be_bytes());
            }
        }
        if &head[4..8] == b"IEND" {
            return out.map_or(Cow::Borrowed(b), Cow::Owned);
        }
        i = end;
    }
    if idat_seen && i == b.len() {
        let out = out.get_or_insert_with(|| b.to_vec());
        out.extend_from_slice(&[0, 0, 0, 0]);
        out.extend_from_slice(b"IEND");
        out.extend_from_slice(&crc32(b"IEND").to_be_bytes());
    }
    out.map_or(Cow::Borrowed(b), Cow::Owned)
}

/// PNG's CRC-32 (ISO 3309, reflected, polynomial 0xEDB88320).
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= byte as u32;
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_of_iend() {
        // Every PNG ends with this chunk and CRC.
        assert_eq!(crc32(b"IEND"), 0xAE42_6082);
    }

    #[test]
    fn jpeg_structure() {
        let seg = |m: u8, body: &[u8]| {
            let mut v = vec![0xFF, m];
            v.extend_from_slice(&((body.len() + 2) as u16).to_be_bytes());
            v.extend_from_slice(body);
            v
        };
        let mut whole = vec![0xFF, 0xD8];
        whole.extend(seg(0xE0, b"JFIF\0"));
        whole.extend(seg(0xDA, &[1, 1, 0, 0, 63, 0]));
        whole.extend([0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56, 0xFF, 0xD9]);
        check_jpeg(&whole).unwrap();
        let mut trailing = whole.clone();
        trailing.extend(b"garbage after the end");
        check_jpeg(&trailing).unwrap();
        for cut in [2, 5, 10, whole.len() - 4, whole.len() - 2, whole.len() - 1] {
            let e = check_jpeg(&whole[..cut]).unwrap_err().to_string();
            assert!(e.contains("truncated"), "cut at {cut}: {e}");
        }
        assert!(check_jpeg(b"\x89PNG").is_err());
    }
}
