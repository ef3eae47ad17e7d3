//! Decoders for the cases where the `image` crate's pixels differ from Pillow's, each in its own
//! module, each building exactly what `PIL.Image.open(f).convert("RGB")` gives (Pillow 13):
//!
//! - [`gif_first_frame`]: a GIF's first frame on its canvas, filled and looked up as Pillow does
//!   (the `image` crate fills outside the frame with black).
//! - [`tiff_associated_alpha`]: TIFF RGBA with associated (premultiplied) alpha, which Pillow
//!   un-premultiplies while unpacking (the `image` crate keeps the stored values).
//! - [`pnm`]: PPM/PGM whose maxval is not 255, scaled with Python's rounding (the `image`
//!   crate rounds halves up), and plain PPM/PGM with comments in the data (which it refuses).
//!
//! [`crate::preprocess::decode_image`] hands each format here first; everything else stays with
//! the `image` crate. The size limits are those of `preprocess` ([`check_size`]), checked on the
//! header before any pixel buffer is allocated.

pub mod gif_first_frame;
pub mod pnm;
pub mod tiff_associated_alpha;

use anyhow::{Result, ensure};

use crate::preprocess::{MAX_DECODE_BYTES, MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE};

/// Refuses a `width` x `height` image whose decoding would allocate `bytes` in all, under the
/// same limits as the `image` crate path: [`MAX_IMAGE_SIDE`] per side, Pillow's
/// decompression-bomb limit [`MAX_IMAGE_PIXELS`], [`MAX_DECODE_BYTES`] of buffers.
pub(crate) fn check_size(width: u64, height: u64, bytes: u64) -> Result<()> {
    ensure!(
        width > 0 && height > 0,
        "the image is {width}x{height}: it has no pixels"
    );
    ensure!(
        width <= u64::from(MAX_IMAGE_SIDE) && height <= u64::from(MAX_IMAGE_SIDE),
        "{width}x{height}: a side is larger than the {MAX_IMAGE_SIDE} pixels this tool decodes"
    );
    let pixels = width * height;
    ensure!(
        pixels <= MAX_IMAGE_PIXELS,
        "{width}x{height} is {pixels} pixels, more than the {MAX_IMAGE_PIXELS} Pillow opens \
         (a decompression bomb?)"
    );
    ensure!(
        bytes <= MAX_DECODE_BYTES,
        "{width}x{height} needs {bytes} bytes to decode, more than the {MAX_DECODE_BYTES} allowed"
    );
    Ok(())
}
