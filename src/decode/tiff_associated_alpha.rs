//! TIFF with associated (premultiplied) alpha, `ExtraSamples` = 1, as Pillow opens it.
//!
//! Pillow reads RGB + associated alpha with rawmode `RGBa` (16-bit: `RGBa;16L` / `RGBa;16B`),
//! whose unpacker un-premultiplies each colour sample `v` with alpha `a`
//! (`libImaging/Unpack.c`): `a == 0` gives 0, `a == 255` keeps `v`, otherwise
//! `min(255, v * 255 / a)` with integer (truncating) division. 16-bit files go through the same
//! formula on the high bytes of `v` and `a`. `convert("RGB")` then drops alpha. Checked against
//! Pillow 13 on every (v, a) pair, uncompressed, LZW and deflate.
//!
//! The `image` crate decodes such files as RGBA with the stored values; [`apply`] reads the
//! first IFD's `ExtraSamples` and `PlanarConfiguration` tags and un-premultiplies its pixels.
//! Gray + associated alpha (Pillow mode `La`) is refused, as Pillow refuses to convert it to
//! RGB.

use std::io::Cursor;

use anyhow::{Result, bail};
use image::{DynamicImage, RgbaImage};
use tiff::decoder::Decoder;
use tiff::tags::Tag;

/// `ExtraSamples` value of associated (premultiplied) alpha.
const ASSOCIATED_ALPHA: u16 = 1;
/// `PlanarConfiguration` value of interleaved samples (the default).
const CHUNKY: u16 = 1;

/// `img`, decoded by the `image` crate from the TIFF file `bytes`, as Pillow's pixels: RGBA with
/// associated alpha un-premultiplied; any other image unchanged.
pub fn apply(bytes: &[u8], img: DynamicImage) -> Result<DynamicImage> {
    if !associated_alpha(bytes) {
        return Ok(img);
    }
    Ok(match img {
        DynamicImage::ImageRgba8(mut i) => {
            for p in i.pixels_mut() {
                let a = p[3];
                for v in &mut p.0[..3] {
                    *v = unpremultiply(*v, a);
                }
            }
            i.into()
        }
        DynamicImage::ImageRgba16(i) => {
            let (w, h) = i.dimensions();
            RgbaImage::from_fn(w, h, |x, y| {
                let [r, g, b, a] = i.get_pixel(x, y).0.map(|v| (v >> 8) as u8);
                image::Rgba([
                    unpremultiply(r, a),
                    unpremultiply(g, a),
                    unpremultiply(b, a),
                    a,
                ])
            })
            .into()
        }
        DynamicImage::ImageLumaA8(_) | DynamicImage::ImageLumaA16(_) => bail!(
            "gray with associated alpha (Pillow's mode La) cannot be converted to RGB, as in \
             Pillow"
        ),
        other => other,
    })
}

/// Whether the first IFD says its one extra sample is associated alpha, samples interleaved
/// (Pillow's `RGBa` layouts). A file the `tiff` crate cannot read the tags of has already
/// been decoded by the `image` crate, so it is left as decoded.
fn associated_alpha(bytes: &[u8]) -> bool {
    let Ok(mut d) = Decoder::new(Cursor::new(bytes)) else {
        return false;
    };
    let extra = d.find_tag_unsigned_vec::<u16>(Tag::ExtraSamples);
    let planar = d.find_tag_unsigned::<u16>(Tag::PlanarConfiguration);
    matches!(extra, Ok(Some(e)) if e == [ASSOCIATED_ALPHA])
        && matches!(planar, Ok(None | Some(CHUNKY)))
}

/// Pillow's `unpackRGBa` for one colour sample: `CLIP8(v * 255 / a)`, 0 where `a` is 0.
fn unpremultiply(v: u8, a: u8) -> u8 {
    match a {
        0 => 0,
        255 => v,
        a => (u32::from(v) * 255 / u32::from(a)).min(255) as u8,
    }
}

#[cfg(test)]
mod tests {
    use super::unpremultiply;

    #[test]
    fn pillow_formula() {
        assert_eq!(unpremultiply(200, 0), 0);
        assert_eq!(unpremultiply(200, 255), 200);
        assert_eq!(unpremultiply(100, 200), 127); // 127.5 truncated
        assert_eq!(unpremultiply(250, 100), 255); // clipped
    }
}
