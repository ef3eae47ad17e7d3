//! A GIF's first frame as Pillow shows it (`GifImagePlugin`, Pillow 13), then `convert("RGB")`.
//!
//! - The image is the logical screen, enlarged to cover the frame when the frame reaches past
//!   it (Pillow grows `size` to `max(x1, width), max(y1, height)`).
//! - Outside the frame the canvas holds palette index 0, or the frame's transparency index when
//!   its graphic control extension has one; the background index is not used for frame 0.
//! - Indices are looked up in the frame's local colour table if it has one, else the global
//!   one; an index past the table's end is black. A table that is the identity gray ramp
//!   (entry i = (i, i, i), which Pillow does not keep as a palette), or no table at all, makes
//!   the image gray: each index is its own level.
//! - Transparency is not applied: `convert("RGB")` of mode P drops it, so transparent pixels
//!   keep their palette colour.
//! - Only the first frame counts (animated files included); interlaced frames are reordered.
//!   Image data whose complete sub-blocks end before the frame's last pixel is "image file is
//!   truncated", as in Pillow, which decodes whole sub-blocks only; a file missing just its
//!   trailer (or the data's terminator) is accepted. Bytes that start no block are skipped.

use std::num::NonZeroU64;

use anyhow::{Context, Result, bail, ensure};
use image::{DynamicImage, RgbImage};

use super::check_size;
use crate::preprocess::MAX_DECODE_BYTES;

/// The 13-byte header: signature, screen size, flags, background index, aspect ratio.
const HEADER: usize = 13;
/// Flag of the header (and of an image descriptor) that announces a colour table.
const HAS_TABLE: u8 = 0x80;
/// Rows decoded per call into the growing index buffer.
const CHUNK_BYTES: usize = 1 << 20;

/// Decodes the first frame of a GIF file into the RGB image Pillow gives.
pub fn decode(bytes: &[u8]) -> Result<DynamicImage> {
    let bytes = first_image_stream(bytes)?;
    let mut options = gif::DecodeOptions::new();
    options.set_color_output(gif::ColorOutput::Indexed);
    options.check_frame_consistency(false);
    options.set_memory_limit(gif::MemoryLimit::Bytes(
        NonZeroU64::new(MAX_DECODE_BYTES).expect("nonzero"),
    ));
    let mut decoder = options
        .read_info(&bytes[..])
        .map_err(message)
        .context("reading the GIF header")?;
    let (screen_w, screen_h) = (u64::from(decoder.width()), u64::from(decoder.height()));
    let global = decoder.global_palette().map(<[u8]>::to_vec);
    let frame = decoder
        .next_frame_info()
        .map_err(message)
        .context("reading the first GIF frame")?
        .context("the GIF holds no image")?;
    let (left, top) = (u64::from(frame.left), u64::from(frame.top));
    let (frame_w, frame_h) = (usize::from(frame.width), usize::from(frame.height));
    let local = frame.palette.clone();
    let transparent = frame.transparent;
    let interlaced = frame.interlaced;

    let width = screen_w.max(left + frame_w as u64);
    let height = screen_h.max(top + frame_h as u64);
    let frame_pixels = (frame_w * frame_h) as u64;
    check_size(width, height, 3 * width * height + frame_pixels)?;

    let indices = read_indices(&mut decoder, frame_w, frame_h)?;
    let table = match local {
        Some(local) => Some(local),
        None => global,
    }
    .filter(|t| !is_gray_ramp(t));
    let fill = transparent.unwrap_or(0);
    let rows = stored_row_order(frame_h, interlaced);
    let (width, height) = (width as usize, height as usize);
    let (left, top) = (left as usize, top as usize);

    let mut rgb = colour(table.as_deref(), fill).repeat(width * height);
    for (stored, &row) in indices.chunks_exact(frame_w.max(1)).zip(&rows) {
        let start = 3 * ((top + row) * width + left);
        for (dst, &i) in rgb[start..start + 3 * frame_w]
            .chunks_exact_mut(3)
            .zip(stored)
        {
            dst.copy_from_slice(&colour(table.as_deref(), i));
        }
    }
    let img = RgbImage::from_raw(width as u32, height as u32, rgb)
        .context("GIF canvas of the wrong size")?;
    Ok(img.into())
}

/// The file as the `gif` crate should see it to decode what Pillow decodes: the header, the
/// global colour table, the first image's graphic control extension, its descriptor, local
/// table and the data sub-blocks that are complete, then a block terminator and the trailer.
///
/// - Pillow's decoder consumes whole sub-blocks only: a sub-block cut short is not decoded, so
///   the frame is "truncated" unless the complete ones hold every pixel (the `gif` crate would
///   decode the partial one too, or fail for want of the terminator).
/// - Pillow skips bytes that start no block; so does this copy. Other extensions (comments,
///   application data) do not change the pixels and are left out.
/// - Without a global table, an identity gray table is put in its place: the `gif` crate
///   refuses frames without any table, and this one gives what Pillow's mode L gives.
fn first_image_stream(b: &[u8]) -> Result<Vec<u8>> {
    ensure!(
        b.len() >= HEADER && (b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a")),
        "not a GIF file"
    );
    let truncated = |what: &str| anyhow::anyhow!("image file is truncated: the GIF ends {what}");
    let mut out = Vec::with_capacity(b.len() + 3 * 256 + 2);
    out.extend_from_slice(&b[..HEADER]);
    let mut at = HEADER;
    if b[10] & HAS_TABLE != 0 {
        let n = 3 << ((b[10] & 7) + 1);
        let table = b
            .get(at..at + n)
            .ok_or_else(|| truncated("inside its global colour table"))?;
        out.extend_from_slice(table);
        at += n;
    } else {
        out[10] |= HAS_TABLE | 7; // 2^(7+1) = 256 entries
        out.extend((0..=255u8).flat_map(|i| [i, i, i]));
    }
    loop {
        match b.get(at) {
            None | Some(b';') => bail!("the GIF holds no image"),
            Some(0x21) => {
                let label = *b
                    .get(at + 1)
                    .ok_or_else(|| truncated("inside an extension"))?;
                let end =
                    sub_blocks_end(b, at + 2).ok_or_else(|| truncated("inside an extension"))?;
                if label == 0xF9 {
                    out.extend_from_slice(&b[at..end]);
                }
                at = end;
            }
            Some(0x2C) => {
                let descriptor = b
                    .get(at..at + 10)
                    .ok_or_else(|| truncated("inside an image descriptor"))?;
                let table = if descriptor[9] & HAS_TABLE != 0 {
                    3 << ((descriptor[9] & 7) + 1)
                } else {
                    0
                };
                // The descriptor, the local table and the LZW code size.
                let head = b
                    .get(at..at + 10 + table + 1)
                    .ok_or_else(|| truncated("before its image data"))?;
                out.extend_from_slice(head);
                at += head.len();
                // Complete data sub-blocks, up to the terminator or the first incomplete one.
                while let Some(&len) = b.get(at) {
                    let Some(block) = b.get(at..at + 1 + usize::from(len)) else {
                        break;
                    };
                    if len == 0 {
                        break;
                    }
                    out.extend_from_slice(block);
                    at += block.len();
                }
                out.extend_from_slice(&[0, b';']);
                return Ok(out);
            }
            Some(_) => at += 1,
        }
    }
}

/// The end of the sub-blocks starting at `at` (after their zero terminator), if complete.
fn sub_blocks_end(b: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = usize::from(*b.get(at)?);
        at += 1 + len;
        if len == 0 {
            return Some(at);
        }
        if at > b.len() {
            return None;
        }
    }
}

/// The frame's indices in the order they are stored, read in chunks of rows so that the buffer
/// grows with the data actually present rather than with the header's claim.
fn read_indices(
    decoder: &mut gif::Decoder<&[u8]>,
    frame_w: usize,
    frame_h: usize,
) -> Result<Vec<u8>> {
    let total = frame_w * frame_h;
    let chunk = (CHUNK_BYTES / frame_w.max(1)).max(1) * frame_w.max(1);
    let mut indices = Vec::new();
    while indices.len() < total {
        let n = chunk.min(total - indices.len());
        let at = indices.len();
        indices.resize(at + n, 0);
        let complete = decoder
            .fill_buffer(&mut indices[at..])
            .map_err(message)
            .context("decoding the first GIF frame")?;
        if !complete {
            bail!("image file is truncated: the GIF's image data ends before its last pixel");
        }
    }
    Ok(indices)
}

/// The frame row of each stored row: GIF interlacing stores rows 0, 8, 16, ...,
/// then 4, 12, ..., then 2, 6, ..., then 1, 3, ...
fn stored_row_order(height: usize, interlaced: bool) -> Vec<usize> {
    if !interlaced {
        return (0..height).collect();
    }
    [(0, 8), (4, 8), (2, 4), (1, 2)]
        .iter()
        .flat_map(|&(start, step)| (start..height).step_by(step))
        .collect()
}

/// Pillow's `_is_palette_needed` negated: every entry i is (i, i, i).
fn is_gray_ramp(table: &[u8]) -> bool {
    table
        .chunks_exact(3)
        .enumerate()
        .all(|(i, c)| c.iter().all(|&v| usize::from(v) == i))
}

/// The RGB of index `i`: its table entry (black past the end), or gray `i` without a table.
fn colour(table: Option<&[u8]>, i: u8) -> [u8; 3] {
    match table {
        Some(t) => {
            let at = 3 * usize::from(i);
            t.get(at..at + 3).map_or([0; 3], |c| [c[0], c[1], c[2]])
        }
        None => [i; 3],
    }
}

/// The `gif` crate's error as a message, "image file is truncated" for data that just ends.
fn message(e: gif::DecodingError) -> anyhow::Error {
    match e {
        gif::DecodingError::UnexpectedEof => anyhow::anyhow!("image file is truncated"),
        gif::DecodingError::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            anyhow::anyhow!("image file is truncated")
        }
        e => anyhow::anyhow!("{e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interlaced_rows() {
        assert_eq!(stored_row_order(10, true), [0, 8, 4, 2, 6, 1, 3, 5, 7, 9]);
        assert_eq!(stored_row_order(1, true), [0]);
        assert_eq!(stored_row_order(3, false), [0, 1, 2]);
    }

    #[test]
    fn gray_ramp() {
        assert!(is_gray_ramp(&[0, 0, 0, 1, 1, 1]));
        assert!(!is_gray_ramp(&[0, 0, 0, 1, 1, 2]));
        assert_eq!(colour(Some(&[1, 2, 3]), 0), [1, 2, 3]);
        assert_eq!(colour(Some(&[1, 2, 3]), 1), [0, 0, 0]);
        assert_eq!(colour(None, 7), [7; 3]);
    }
}
