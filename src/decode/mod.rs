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

use crate::preprocess::{MAX_DECODE_BYTES, MAX_IMAGE_PIXELS};

/// Refuses a `width` x `height` image whose decoding would allocate `bytes` in all, under the
/// same limits as the `image` crate path: Pillow's decompression-bomb limit
/// [`MAX_IMAGE_PIXELS`] (which bounds each side too) and [`MAX_DECODE_BYTES`] of buffers.
pub(crate) fn check_size(width: u64, height: u64, bytes: u64) -> Result<()> {
    ensure!(
        width > 0 && height > 0,
        "the image is {width}x{height}: it has no pixels"
    );
    // Saturating: a header's sides can be anything a u64 holds.
    let pixels = width.saturating_mul(height);
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
