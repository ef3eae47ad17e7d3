//! Image preprocessing that reproduces `transformers`' `ViTHybridImageProcessor` (4.x) bit for
//! bit on the same decoded pixels: convert to RGB, resize with Pillow's resampling, center
//! crop, rescale, normalise, channel-first layout.
//!
//! Why bother with exactness: the end-to-end fixtures are logits a Python script computed, and
//! a one-level difference in a resized pixel moves them by more than the GPU kernels' own
//! error. With identical inputs every remaining difference belongs to the network, which is
//! what the tests are meant to measure. So Pillow's fixed-point arithmetic
//! (`libImaging/Resample.c`) and transformers' float32/float64 choices are mirrored exactly,
//! and each place that does so says which upstream line it follows.
//!
//! Decoding is exact too for PNG and, through libjpeg-turbo's own decoder set up as Pillow sets
//! it up (`src/jpeg.rs`), for JPEG. The browser build has no libjpeg and decodes JPEG with the
//! `image` crate's zune-jpeg, which differs from libjpeg-turbo by a few levels on some pixels
//! (README, Preprocessing). Like `PIL.Image.open`, EXIF orientation is not applied.

use std::ops::Range;
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use image::{DynamicImage, ImageFormat, ImageReader, Limits, RgbImage};
use serde_json::{Map, Value};

use crate::decode;

/// Most memory the decoder may allocate, its output buffer included.
pub const MAX_DECODE_BYTES: u64 = 1 << 30;
/// Most pixels (width x height) [`decode_image`] decodes: Pillow's decompression-bomb limit
/// (`2 * Image.MAX_IMAGE_PIXELS`), above which `Image.open`, and so transformers, refuses the
/// file. Checked on the header's size, before any pixel buffer exists. It is the only bound on
/// the sides too, as in Pillow (a 34-megapixel panorama is 17000 pixels wide; a 100-byte PNG
/// claiming to be 4 billion pixels wide is refused by its pixel count).
pub const MAX_IMAGE_PIXELS: u64 = 2 * (1024 * 1024 * 1024 / 4 / 3);
/// Largest size, crop or shortest edge a config may ask for.
const MAX_CONFIG_SIDE: usize = 1 << 16;
/// Most f32 elements [`preprocess`] returns (1 GiB), so a config without a crop cannot turn a
/// long thin image into a multi-gigabyte tensor and abort the process on allocation.
pub const MAX_OUTPUT_ELEMENTS: usize = 1 << 28;

/// Pillow's `PRECISION_BITS` (32 - 8 - 2): weights are fixed point with 22 fraction bits,
/// leaving 8 bits for the pixel and 2 for the overshoot of negative lobes.
const PRECISION_BITS: u32 = 22;
const ONE: f64 = (1u32 << PRECISION_BITS) as f64;
/// Rounding bias added before the final shift (`1 << (PRECISION_BITS - 1)`).
const HALF: i64 = 1 << (PRECISION_BITS - 1);

/// ViTHybridImageProcessor's defaults, used for keys a `preprocessor_config.json` leaves out.
/// Checked against transformers 4.57.6 (`ViTHybridImageProcessor().to_dict()`).
const OPENAI_CLIP_MEAN: [f64; 3] = [0.48145466, 0.4578275, 0.40821073];
const OPENAI_CLIP_STD: [f64; 3] = [0.26862954, 0.26130258, 0.27577711];
const DEFAULT_SIZE: usize = 224;

/// The resampling filters of Pillow that are supported, by their `PIL.Image.Resampling`
/// numbers: `BILINEAR` = 2, `BICUBIC` = 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    Bilinear,
    Bicubic,
}

impl Filter {
    fn from_pil(value: i64) -> Result<Self> {
        match value {
            2 => Ok(Filter::Bilinear),
            3 => Ok(Filter::Bicubic),
            // NEAREST goes through a different Pillow code path (an affine transform) and the
            // others need kernels that no ViT-Hybrid config uses; refuse rather than approximate.
            _ => {
                let name = match value {
                    0 => "PIL NEAREST",
                    1 => "PIL LANCZOS",
                    4 => "PIL BOX",
                    5 => "PIL HAMMING",
                    _ => "an unknown or unsupported PIL filter",
                };
                bail!("resample {value} ({name}) is not supported; use 2 (BILINEAR) or 3 (BICUBIC)")
            }
        }
    }

    /// Half-width of the kernel at scale 1 (Pillow's `filter.support`).
    fn support(self) -> f64 {
        match self {
            Filter::Bilinear => 1.0,
            Filter::Bicubic => 2.0,
        }
    }

    /// The kernel, written as Pillow writes it so the doubles round the same way.
    fn eval(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Filter::Bilinear => {
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            Filter::Bicubic => {
                // Keys' cubic convolution with a = -0.5 (Pillow's `bicubic_filter`).
                const A: f64 = -0.5;
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
        }
    }
}

/// How the image is resized before the crop (transformers' `size` dict).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResizeTo {
    /// `{"shortest_edge": n}`: the shorter side becomes `n`, the aspect ratio is kept.
    ShortestEdge(usize),
    /// `{"height": h, "width": w}`: both sides are set, the aspect ratio is not kept.
    Exact { height: usize, width: usize },
}

/// The parts of a Hugging Face `preprocessor_config.json` that change the pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct PreprocessConfig {
    pub do_resize: bool,
    pub size: ResizeTo,
    pub resample: Filter,
    pub do_center_crop: bool,
    /// (height, width) of the center crop.
    pub crop_size: (usize, usize),
    pub do_rescale: bool,
    pub rescale_factor: f64,
    pub do_normalize: bool,
    pub image_mean: [f64; 3],
    pub image_std: [f64; 3],
    pub do_convert_rgb: bool,
}

impl Default for PreprocessConfig {
    /// `ViTHybridImageProcessor()` with no arguments.
    fn default() -> Self {
        PreprocessConfig {
            do_resize: true,
            size: ResizeTo::ShortestEdge(DEFAULT_SIZE),
            resample: Filter::Bicubic,
            do_center_crop: true,
            crop_size: (DEFAULT_SIZE, DEFAULT_SIZE),
            do_rescale: true,
            rescale_factor: 1.0 / 255.0,
            do_normalize: true,
            image_mean: OPENAI_CLIP_MEAN,
            image_std: OPENAI_CLIP_STD,
            do_convert_rgb: true,
        }
    }
}

impl PreprocessConfig {
    /// Reads and parses a `preprocessor_config.json`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading preprocessor config {}", path.display()))?;
        Self::from_json_str(&text)
            .with_context(|| format!("parsing preprocessor config {}", path.display()))
    }

    /// Parses the JSON text of a `preprocessor_config.json`. Keys that are missing or `null`
    /// take `ViTHybridImageProcessor`'s defaults, as they do in transformers; keys that do not
    /// affect the pixels (`image_processor_type`, ...) are ignored. Values transformers would
    /// accept but that would compute something else here are refused.
    pub fn from_json_str(text: &str) -> Result<Self> {
        let value: Value = serde_json::from_str(text).context("not valid JSON")?;
        let obj = value
            .as_object()
            .context("the top level must be a JSON object")?;
        let mut cfg = PreprocessConfig::default();
        if let Some(v) = get(obj, "do_resize") {
            cfg.do_resize = as_bool(v, "do_resize")?;
        }
        if let Some(v) = get(obj, "size") {
            cfg.size = parse_size(v).context("bad \"size\"")?;
        }
        if let Some(v) = get(obj, "resample") {
            let n = v
                .as_i64()
                .with_context(|| format!("\"resample\" must be an integer, got {v}"))?;
            cfg.resample = Filter::from_pil(n)?;
        }
        if let Some(v) = get(obj, "do_center_crop") {
            cfg.do_center_crop = as_bool(v, "do_center_crop")?;
        }
        if let Some(v) = get(obj, "crop_size") {
            cfg.crop_size = parse_crop_size(v).context("bad \"crop_size\"")?;
        }
        if let Some(v) = get(obj, "do_rescale") {
            cfg.do_rescale = as_bool(v, "do_rescale")?;
        }
        if let Some(v) = get(obj, "rescale_factor") {
            cfg.rescale_factor = v
                .as_f64()
                .filter(|f| f.is_finite())
                .with_context(|| format!("\"rescale_factor\" must be a finite number, got {v}"))?;
        }
        if let Some(v) = get(obj, "do_normalize") {
            cfg.do_normalize = as_bool(v, "do_normalize")?;
        }
        if let Some(v) = get(obj, "image_mean") {
            cfg.image_mean = per_channel(v, "image_mean")?;
        }
        if let Some(v) = get(obj, "image_std") {
            cfg.image_std = per_channel(v, "image_std")?;
        }
        if let Some(v) = get(obj, "do_convert_rgb") {
            cfg.do_convert_rgb = as_bool(v, "do_convert_rgb")?;
        }
        // A zero std would make every normalised value infinite; it is a broken config.
        if cfg.do_normalize && cfg.image_std.contains(&0.0) {
            bail!("\"image_std\" {:?} contains a zero", cfg.image_std);
        }
        Ok(cfg)
    }

    /// (height, width) of every tensor this config produces, when that does not depend on
    /// the image: with a center crop it is the crop, with an exact resize and no crop it is
    /// the resize. `None` when it varies with the input (shortest-edge resize or no resize,
    /// and no crop); then [`Self::output_size_for`] gives it per image.
    pub fn output_size(&self) -> Option<(usize, usize)> {
        match (self.do_center_crop, self.do_resize, self.size) {
            (true, _, _) => Some(self.crop_size),
            (false, true, ResizeTo::Exact { height, width }) => Some((height, width)),
            _ => None,
        }
    }

    /// (height, width) of the tensor produced for an image of `width` x `height` pixels.
    pub fn output_size_for(&self, width: usize, height: usize) -> (usize, usize) {
        if self.do_center_crop {
            return self.crop_size;
        }
        let (w, h) = self.resized_size(width, height);
        (h, w)
    }

    /// (width, height) after the resize step (the input size when `do_resize` is false).
    fn resized_size(&self, width: usize, height: usize) -> (usize, usize) {
        match (self.do_resize, self.size) {
            (false, _) => (width, height),
            (true, ResizeTo::ShortestEdge(s)) => resize_shortest_edge(width, height, s),
            (true, ResizeTo::Exact { height, width }) => (width, height),
        }
    }
}

/// A key's value, with JSON `null` treated as absent (transformers' `x if x is not None else
/// default`).
fn get<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn as_bool(v: &Value, key: &str) -> Result<bool> {
    v.as_bool()
        .with_context(|| format!("\"{key}\" must be true or false, got {v}"))
}

fn side(v: &Value, what: &str) -> Result<usize> {
    let n = v
        .as_u64()
        .with_context(|| format!("{what} must be a positive integer, got {v}"))?;
    ensure!(
        (1..=MAX_CONFIG_SIDE as u64).contains(&n),
        "{what} {n} is outside 1..={MAX_CONFIG_SIDE}"
    );
    Ok(n as usize)
}

/// transformers' `get_size_dict(size, default_to_square=False)`: an integer means a shortest
/// edge, a 2-list means (height, width).
fn parse_size(v: &Value) -> Result<ResizeTo> {
    match v {
        Value::Number(_) => Ok(ResizeTo::ShortestEdge(side(v, "size")?)),
        Value::Array(a) if a.len() == 2 => Ok(ResizeTo::Exact {
            height: side(&a[0], "height")?,
            width: side(&a[1], "width")?,
        }),
        Value::Object(o) => {
            let mut keys: Vec<&str> = o.keys().map(String::as_str).collect();
            keys.sort_unstable();
            match keys.as_slice() {
                ["shortest_edge"] => Ok(ResizeTo::ShortestEdge(side(
                    &o["shortest_edge"],
                    "shortest_edge",
                )?)),
                ["height", "width"] => Ok(ResizeTo::Exact {
                    height: side(&o["height"], "height")?,
                    width: side(&o["width"], "width")?,
                }),
                // e.g. "longest_edge": ViTHybrid's resize would silently ignore it; refuse
                // rather than guess which behaviour the config's author wanted.
                _ => bail!(
                    "keys {keys:?} are not supported; use {{\"shortest_edge\": n}} or {{\"height\": h, \"width\": w}}"
                ),
            }
        }
        _ => bail!("expected an integer, [height, width] or a dict, got {v}"),
    }
}

/// transformers' `get_size_dict(crop_size, default_to_square=True)`: an integer is a square.
fn parse_crop_size(v: &Value) -> Result<(usize, usize)> {
    match v {
        Value::Number(_) => {
            let n = side(v, "crop_size")?;
            Ok((n, n))
        }
        Value::Array(a) if a.len() == 2 => Ok((side(&a[0], "height")?, side(&a[1], "width")?)),
        Value::Object(o) => {
            let mut keys: Vec<&str> = o.keys().map(String::as_str).collect();
            keys.sort_unstable();
            ensure!(
                keys == ["height", "width"],
                "keys {keys:?} are not supported; use {{\"height\": h, \"width\": w}}"
            );
            Ok((side(&o["height"], "height")?, side(&o["width"], "width")?))
        }
        _ => bail!("expected an integer, [height, width] or {{\"height\", \"width\"}}, got {v}"),
    }
}

/// A scalar applies to all three channels, as in transformers' `normalize`.
fn per_channel(v: &Value, key: &str) -> Result<[f64; 3]> {
    let num = |x: &Value| {
        x.as_f64()
            .filter(|f| f.is_finite())
            .with_context(|| format!("\"{key}\" must hold finite numbers, got {x}"))
    };
    match v {
        Value::Array(a) if a.len() == 3 => Ok([num(&a[0])?, num(&a[1])?, num(&a[2])?]),
        Value::Array(a) => bail!(
            "\"{key}\" must have 3 values (one per RGB channel), got {}",
            a.len()
        ),
        _ => {
            let x = num(v)?;
            Ok([x; 3])
        }
    }
}

/// Decodes an image file, refusing files whose dimensions or decoder allocations exceed
/// [`MAX_IMAGE_PIXELS`] / [`MAX_DECODE_BYTES`] before the pixels are allocated. The format is
/// guessed from the content, not the extension, like `PIL.Image.open`.
pub fn load_image(path: &Path) -> Result<DynamicImage> {
    let shown = path.display();
    let file = std::fs::File::open(path).with_context(|| format!("opening image {shown}"))?;
    let size = file
        .metadata()
        .with_context(|| format!("reading image {shown}"))?
        .len();
    if size > MAX_DECODE_BYTES {
        bail!("image {shown}: {size} bytes, more than the {MAX_DECODE_BYTES} this tool reads");
    }
    // The first bytes say whether this is an image at all, so that a large file of something
    // else (or /dev/zero, whose size reads 0) is refused without reading up to the limit.
    use std::io::Read;
    let mut file = file.take(MAX_DECODE_BYTES);
    let mut bytes = Vec::with_capacity(size.min(SNIFF_BYTES) as usize);
    (&mut file)
        .take(SNIFF_BYTES)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading image {shown}"))?;
    if !guess_format(&bytes)?.1 && !tga_header_plausible(&bytes) {
        bail!("image {shown}: unrecognised image format");
    }
    bytes.reserve(size.saturating_sub(bytes.len() as u64) as usize);
    file.read_to_end(&mut bytes)
        .with_context(|| format!("reading image {shown}"))?;
    decode_image(&bytes).with_context(|| format!("image {shown}"))
}

/// How much of a file [`load_image`] reads before deciding whether it is an image.
const SNIFF_BYTES: u64 = 4096;

/// Whether `head` can start a TGA file, the one format without a magic number: a color map
/// type of 0 or 1, a known image type, a known pixel depth and a nonzero size.
fn tga_header_plausible(head: &[u8]) -> bool {
    let Some(h) = head.get(..18) else {
        return false;
    };
    let (width, height) = (
        u16::from_le_bytes([h[12], h[13]]),
        u16::from_le_bytes([h[14], h[15]]),
    );
    h[1] <= 1
        && matches!(h[2], 1 | 2 | 3 | 9 | 10 | 11)
        && matches!(h[16], 8 | 15 | 16 | 24 | 32)
        && width > 0
        && height > 0
}

/// [`load_image`] on a file's bytes: the format from the content, Pillow's refusals
/// (`image_integrity`), then the decoder under the same limits: libjpeg-turbo for JPEG
/// (`src/jpeg.rs`), the `image` crate for the rest, with the fixes of `src/decode/` (GIF frame
/// offsets, premultiplied TIFF, PNM maxval) where its pixels differ from Pillow's.
pub fn decode_image(bytes: &[u8]) -> Result<DynamicImage> {
    let (format, guessed) = guess_format(bytes)?;
    let bytes = crate::image_integrity::prepare(bytes, format)?;
    #[cfg(not(target_arch = "wasm32"))]
    if format == ImageFormat::Jpeg {
        return decode_jpeg(&bytes).context("decoding");
    }
    decode_with_image_crate(&bytes, format, guessed)
}

/// [`decode_image`] as the browser build (wasm32, no libjpeg) runs it: JPEG too through the
/// `image` crate (zune-jpeg). Public so that native tests can measure how far that is from
/// Pillow.
pub fn decode_image_pure_rust(bytes: &[u8]) -> Result<DynamicImage> {
    let (format, guessed) = guess_format(bytes)?;
    let bytes = crate::image_integrity::prepare(bytes, format)?;
    decode_with_image_crate(&bytes, format, guessed)
}

/// The format from the content, and whether the content named it. TGA has no magic number:
/// Pillow tries its TGA reader on files no other format claims, so we do too; a file whose
/// TGA header does not parse either is "unrecognised".
fn guess_format(bytes: &[u8]) -> Result<(ImageFormat, bool)> {
    let reader = ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .context("reading the image header")?;
    Ok(match reader.format() {
        Some(format) => (format, true),
        None => (ImageFormat::Tga, false),
    })
}

#[cfg(not(target_arch = "wasm32"))]
fn decode_jpeg(bytes: &[u8]) -> Result<DynamicImage> {
    use crate::jpeg::{self, Color};
    let d = jpeg::decode(
        bytes,
        jpeg::Limits {
            max_pixels: MAX_IMAGE_PIXELS,
            max_bytes: MAX_DECODE_BYTES,
        },
    )?;
    let img = match d.color {
        Color::Gray => image::GrayImage::from_raw(d.width, d.height, d.data).map(Into::into),
        Color::Rgb => RgbImage::from_raw(d.width, d.height, d.data).map(Into::into),
    };
    img.context("the JPEG decoder returned a buffer of the wrong size")
}

fn decode_with_image_crate(
    bytes: &[u8],
    format: ImageFormat,
    guessed: bool,
) -> Result<DynamicImage> {
    // Where the `image` crate's pixels differ from Pillow's (src/decode/).
    match format {
        ImageFormat::Gif => return decode::gif_first_frame::decode(bytes).context("decoding"),
        ImageFormat::Pnm => {
            if let Some(img) = decode::pnm::decode(bytes).context("decoding")? {
                return Ok(img);
            }
        }
        _ => {}
    }
    let mut reader = ImageReader::with_format(std::io::Cursor::new(bytes), format);
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits.clone());
    // `ImageReader::decode` by hand, to check the pixel count between header and pixels.
    let mut decoder = match reader.into_decoder() {
        Ok(decoder) => decoder,
        Err(_) if !guessed => bail!("unrecognised image format"),
        Err(e) => return Err(decoding(e)),
    };
    let (w, h) = image::ImageDecoder::dimensions(&decoder);
    let pixels = u64::from(w) * u64::from(h);
    ensure!(
        pixels <= MAX_IMAGE_PIXELS,
        "decoding: {w}x{h} is {pixels} pixels, more than the {MAX_IMAGE_PIXELS} Pillow opens \
         (a decompression bomb?)"
    );
    limits
        .reserve(image::ImageDecoder::total_bytes(&decoder))
        .map_err(decoding)?;
    image::ImageDecoder::set_limits(&mut decoder, limits).map_err(decoding)?;
    let img = DynamicImage::from_decoder(decoder).map_err(decoding)?;
    match format {
        ImageFormat::Tiff => decode::tiff_associated_alpha::apply(bytes, img).context("decoding"),
        _ => Ok(img),
    }
}

/// An `image` crate error as one message: its text already includes its source's, which
/// `{:#}` would print a second time.
fn decoding(e: image::ImageError) -> anyhow::Error {
    anyhow::anyhow!("decoding: {}", plain_chunk_names(&e.to_string()))
}

/// The png crate prints a chunk as its `Debug` form (`ChunkType { type: IHDR, critical: true,
/// private: false, reserved: false, safecopy: false }`); a user wants `chunk IHDR`.
fn plain_chunk_names(text: &str) -> String {
    const OPEN: &str = "ChunkType { type: ";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(OPEN) {
        let after = &rest[at + OPEN.len()..];
        let (Some(comma), Some(close)) = (after.find(','), after.find('}')) else {
            break;
        };
        if comma > close {
            break;
        }
        out.push_str(&rest[..at]);
        out.push_str("chunk ");
        out.push_str(&after[..comma]);
        rest = &after[close + 1..];
        // "chunk IHDR chunk" reads as "chunk IHDR".
        rest = rest.strip_prefix(" chunk").unwrap_or(rest);
    }
    out.push_str(rest);
    out
}

/// Pillow's `convert("RGB")`, which transformers' `convert_to_rgb` calls: gray is replicated
/// into the three channels and alpha is dropped, not composited onto a background.
///
/// 16-bit channels keep their high byte (`v >> 8`): that is what Pillow's PNG decoder does for
/// 16-bit RGB and RGBA, which it opens as 8-bit modes. For 16-bit gray Pillow differs: it opens
/// mode `I;16` and `convert("RGB")` clips every value above 255 to 255, which turns most
/// 16-bit gray photographs white. We take the high byte there too, knowingly, so such images
/// stay usable; they are the one input where we do not match transformers.
///
/// Float images (which Pillow cannot hold as RGB) are clamped to [0, 1] and scaled to 0..=255
/// with rounding.
pub fn to_rgb8(img: &DynamicImage) -> RgbImage {
    fn map<T: Copy>(
        w: u32,
        h: u32,
        raw: &[T],
        channels: usize,
        f: impl Fn(&[T]) -> [u8; 3],
    ) -> RgbImage {
        let mut out = RgbImage::new(w, h);
        for (dst, src) in out.chunks_exact_mut(3).zip(raw.chunks_exact(channels)) {
            dst.copy_from_slice(&f(src));
        }
        out
    }
    let hi = |v: u16| (v >> 8) as u8;
    let unit = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8; // NaN becomes 0
    let (w, h) = (img.width(), img.height());
    match img {
        DynamicImage::ImageRgb8(i) => i.clone(),
        DynamicImage::ImageRgba8(i) => map(w, h, i.as_raw(), 4, |p| [p[0], p[1], p[2]]),
        DynamicImage::ImageLuma8(i) => map(w, h, i.as_raw(), 1, |p| [p[0]; 3]),
        DynamicImage::ImageLumaA8(i) => map(w, h, i.as_raw(), 2, |p| [p[0]; 3]),
        DynamicImage::ImageRgb16(i) => map(w, h, i.as_raw(), 3, |p| [hi(p[0]), hi(p[1]), hi(p[2])]),
        DynamicImage::ImageRgba16(i) => {
            map(w, h, i.as_raw(), 4, |p| [hi(p[0]), hi(p[1]), hi(p[2])])
        }
        DynamicImage::ImageLuma16(i) => map(w, h, i.as_raw(), 1, |p| [hi(p[0]); 3]),
        DynamicImage::ImageLumaA16(i) => map(w, h, i.as_raw(), 2, |p| [hi(p[0]); 3]),
        DynamicImage::ImageRgb32F(i) => map(w, h, i.as_raw(), 3, |p| {
            [unit(p[0]), unit(p[1]), unit(p[2])]
        }),
        DynamicImage::ImageRgba32F(i) => map(w, h, i.as_raw(), 4, |p| {
            [unit(p[0]), unit(p[1]), unit(p[2])]
        }),
        // `DynamicImage` is non-exhaustive; a future variant gets the crate's own conversion.
        other => other.to_rgb8(),
    }
}

/// The source pixels one output pixel reads along one axis and their fixed-point weights
/// (Pillow's `bounds` pair and one row of `kk` after `normalize_coeffs_8bpc`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taps {
    /// First source index read (Pillow's `xmin`).
    pub start: usize,
    /// One weight per source index from `start`, in units of 2^-22; they sum to 2^22 up to
    /// the rounding of each weight.
    pub weights: Vec<i32>,
}

/// Pillow's BICUBIC taps for every output index of a pass from `in_size` to `out_size` pixels.
pub fn bicubic_coefficients(in_size: usize, out_size: usize) -> Vec<Taps> {
    coefficients(Filter::Bicubic, in_size, out_size)
}

/// Pillow's taps for every output index of a pass from `in_size` to `out_size` pixels.
pub fn coefficients(filter: Filter, in_size: usize, out_size: usize) -> Vec<Taps> {
    (0..out_size)
        .map(|i| taps(filter, in_size, out_size, i))
        .collect()
}

/// Pillow's `precompute_coeffs` for output index `i`, followed by `normalize_coeffs_8bpc`.
/// Each output's taps depend only on `i`, which is what lets [`preprocess`] compute just the
/// pixels that survive the crop.
fn taps(filter: Filter, in_size: usize, out_size: usize, i: usize) -> Taps {
    // Pillow receives the box (0, 0, in_w, in_h) as C floats and computes
    // `(double)(in1 - in0) / outSize`; the round trip through f32 is kept for fidelity.
    let scale = f64::from(in_size as f32) / out_size as f64;
    // When shrinking, the kernel is widened by the scale: this is Pillow's antialiasing.
    let filterscale = if scale < 1.0 { 1.0 } else { scale };
    let support = filter.support() * filterscale;
    let ss = 1.0 / filterscale;
    let center = (i as f64 + 0.5) * scale;
    // C's (int) truncates toward zero; `as` does the same (and saturates instead of UB).
    let xmin = ((center - support + 0.5) as i64).max(0);
    let xmax = ((center + support + 0.5) as i64).min(in_size as i64);
    let count = (xmax - xmin).max(0) as usize;
    let start = xmin as usize;

    let mut w = Vec::with_capacity(count);
    let mut ww = 0.0;
    for x in 0..count {
        let k = filter.eval(((x + start) as f64 - center + 0.5) * ss);
        w.push(k);
        ww += k;
    }
    let weights = w
        .into_iter()
        .map(|k| {
            let k = if ww != 0.0 { k / ww } else { k };
            // round half away from zero, then truncate, as `normalize_coeffs_8bpc`
            if k < 0.0 {
                (-0.5 + k * ONE) as i32
            } else {
                (0.5 + k * ONE) as i32
            }
        })
        .collect();
    Taps { start, weights }
}

/// Taps that copy: what a pass Pillow skips (same size in and out) amounts to, since
/// `(v * 2^22 + 2^21) >> 22 == v`.
fn identity_taps(range: Range<usize>) -> Vec<Taps> {
    range
        .map(|start| Taps {
            start,
            weights: vec![1 << PRECISION_BITS],
        })
        .collect()
}

/// Pillow's `clip8`: drop the fraction bits (arithmetic shift, as in C for negative sums) and
/// saturate to a byte. Sums are accumulated in i64 where Pillow uses int; they never exceed
/// i32 for 8-bit inputs, so the results are the same.
fn clip8(acc: i64) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Pillow's `Image.resize(..., resample=BICUBIC)` of an RGB image (no box, no reducing gap).
/// Allocates `out_w * out_h * 3` bytes; callers bound the size.
pub fn resize_bicubic(img: &RgbImage, out_w: u32, out_h: u32) -> RgbImage {
    resize(img, out_w, out_h, Filter::Bicubic)
}

/// Pillow's `Image.resize` of an RGB image with `filter`.
pub fn resize(img: &RgbImage, out_w: u32, out_h: u32, filter: Filter) -> RgbImage {
    let (out_w, out_h) = (out_w as usize, out_h as usize);
    resize_window(img, filter, out_w, out_h, 0..out_w, 0..out_h)
}

/// The pixels `cols` x `rows` of `img` resized to `out_w` x `out_h`, computed as Pillow's
/// `ImagingResampleInner` computes them: two separable passes, the first one's result
/// clipped to 8 bits, a pass skipped when its side keeps its size.
///
/// The order of the passes changed between Pillow releases, and with it the rounding of
/// the intermediate 8-bit image (a difference of one level in some pixels):
/// - Pillow <= 12.1: always horizontal first.
/// - Pillow 12.2, 12.3: vertical first only for images more than 100 times taller than wide
///   whose height shrinks.
/// - Pillow >= 13.0, followed here: vertical first when the height loses more than twice as
///   many pixels as the width does (`dh > 0 && dh > 2 * dw`).
///
/// Landscape and square photos resized to a shortest edge come out the same in every
/// release; portrait images more than about twice as tall as wide that are shrunk do not,
/// so reference fixtures should be made with Pillow >= 13.
fn resize_window(
    img: &RgbImage,
    filter: Filter,
    out_w: usize,
    out_h: usize,
    cols: Range<usize>,
    rows: Range<usize>,
) -> RgbImage {
    let (in_w, in_h) = (img.width() as usize, img.height() as usize);
    let (win_w, win_h) = (cols.len(), rows.len());
    if in_w == 0 || in_h == 0 {
        // Nothing to sample from; Pillow refuses such images, we return black.
        return RgbImage::new(win_w as u32, win_h as u32);
    }
    let h_taps = if out_w == in_w {
        identity_taps(cols)
    } else {
        cols.map(|x| taps(filter, in_w, out_w, x)).collect()
    };
    let v_taps = if out_h == in_h {
        identity_taps(rows)
    } else {
        rows.map(|y| taps(filter, in_h, out_h, y)).collect()
    };
    let src = img.as_raw();
    // Pillow 13's `horizontal_first`, with C's signed int arithmetic.
    let (dw, dh) = (in_w as i64 - out_w as i64, in_h as i64 - out_h as i64);
    let pixels = if dh > 0 && dh > 2 * dw {
        // Vertical pass over only the source columns the window reads, then horizontal.
        let span = span(&h_taps);
        let temp = vertical_pass(src, in_w, span.clone(), &v_taps, 0);
        horizontal_pass(&temp, span.len(), 0..win_h, &h_taps, span.start)
    } else {
        // Horizontal pass over only the source rows the window reads (Pillow's
        // `ybox_first..ybox_last`), then vertical.
        let span = span(&v_taps);
        let temp = horizontal_pass(src, in_w, span.clone(), &h_taps, 0);
        vertical_pass(&temp, win_w, 0..win_w, &v_taps, span.start)
    };
    // Both passes produce exactly win_w * win_h pixels, so this cannot fail.
    RgbImage::from_raw(win_w as u32, win_h as u32, pixels).unwrap_or_default()
}

/// The source indices a set of taps reads, first to last.
fn span(taps: &[Taps]) -> Range<usize> {
    let start = taps.iter().map(|t| t.start).min().unwrap_or(0);
    let end = taps
        .iter()
        .map(|t| t.start + t.weights.len())
        .max()
        .unwrap_or(0);
    start..end.max(start)
}

/// One horizontal pass (Pillow's `ImagingResampleHorizontal_8bpc`): rows `rows` of the RGB
/// image `src` (`src_w` pixels wide) -> `[rows.len(), taps.len(), 3]`. `src` column 0 is
/// source index `col_offset`.
fn horizontal_pass(
    src: &[u8],
    src_w: usize,
    rows: Range<usize>,
    taps: &[Taps],
    col_offset: usize,
) -> Vec<u8> {
    let out_w = taps.len();
    let mut out = vec![0u8; rows.len() * out_w * 3];
    for (orow, y) in out.chunks_exact_mut(out_w * 3).zip(rows) {
        let srow = &src[y * src_w * 3..(y + 1) * src_w * 3];
        for (dst, t) in orow.chunks_exact_mut(3).zip(taps) {
            let mut acc = [HALF; 3];
            for (p, &k) in srow[(t.start - col_offset) * 3..]
                .chunks_exact(3)
                .zip(&t.weights)
            {
                for c in 0..3 {
                    acc[c] += i64::from(p[c]) * i64::from(k);
                }
            }
            for c in 0..3 {
                dst[c] = clip8(acc[c]);
            }
        }
    }
    out
}

/// One vertical pass (Pillow's `ImagingResampleVertical_8bpc`): columns `cols` of the RGB
/// image `src` (`src_w` pixels wide) -> `[taps.len(), cols.len(), 3]`. `src` row 0 is source
/// index `row_offset`.
fn vertical_pass(
    src: &[u8],
    src_w: usize,
    cols: Range<usize>,
    taps: &[Taps],
    row_offset: usize,
) -> Vec<u8> {
    let out_w = cols.len();
    let mut out = vec![0u8; taps.len() * out_w * 3];
    if out_w == 0 {
        return out;
    }
    for (orow, t) in out.chunks_exact_mut(out_w * 3).zip(taps) {
        let first_row = (t.start - row_offset) * src_w * 3;
        for (dst, x) in orow.chunks_exact_mut(3).zip(cols.clone()) {
            let mut acc = [HALF; 3];
            // successive rows of column x, one chunk per row
            let column = src[first_row + x * 3..].chunks(src_w * 3);
            for (p, &k) in column.zip(&t.weights) {
                for c in 0..3 {
                    acc[c] += i64::from(p[c]) * i64::from(k);
                }
            }
            for c in 0..3 {
                dst[c] = clip8(acc[c]);
            }
        }
    }
    out
}

/// (new_width, new_height) for a shortest-edge resize, as transformers'
/// `get_resize_output_image_size(default_to_square=False)`: the shorter side (the width on a
/// tie) becomes `shortest` and the longer `int(shortest * long / short)`. Python divides the
/// exact integer product correctly rounded, which f64 reproduces while the product stays
/// below 2^53. A zero side leaves the size unchanged.
pub fn resize_shortest_edge(width: usize, height: usize, shortest: usize) -> (usize, usize) {
    let (short, long) = if width <= height {
        (width, height)
    } else {
        (height, width)
    };
    if short == 0 {
        return (width, height);
    }
    let new_long = (shortest as f64 * long as f64 / short as f64) as usize;
    if width <= height {
        (shortest, new_long)
    } else {
        (new_long, shortest)
    }
}

/// First source index of a centered window of `crop` pixels in `full` pixels:
/// `floor((full - crop) / 2)`, as transformers' `center_crop`. Negative when the crop is the
/// larger: transformers then pads the image with zeros, `ceil(diff / 2)` before and the rest
/// after, which is the same as reading source index `offset + i` for output `i` and zero
/// wherever that falls outside the image.
pub fn center_crop_offset(full: usize, crop: usize) -> i64 {
    (full as i64 - crop as i64).div_euclid(2)
}

/// Source indices `offset..offset + crop` clipped to the image `0..full`.
fn overlap(offset: i64, crop: usize, full: usize) -> Range<usize> {
    let start = offset.clamp(0, full as i64);
    let end = (offset + crop as i64).clamp(start, full as i64);
    start as usize..end as usize
}

/// Copies `src` into `dst` with its top-left corner at (`x`, `y`); `src` must fit.
fn paste(dst: &mut RgbImage, src: &RgbImage, x: usize, y: usize) {
    let dw = dst.width() as usize;
    let sw = src.width() as usize;
    if sw == 0 {
        return;
    }
    let dst: &mut [u8] = dst;
    for (r, srow) in src.chunks_exact(sw * 3).enumerate() {
        let at = ((y + r) * dw + x) * 3;
        dst[at..at + sw * 3].copy_from_slice(srow);
    }
}

/// transformers' `center_crop` to `crop_w` x `crop_h`, zero-padding where the crop is larger
/// than the image (see [`center_crop_offset`]).
pub fn center_crop(img: &RgbImage, crop_w: u32, crop_h: u32) -> RgbImage {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let (cw, ch) = (crop_w as usize, crop_h as usize);
    let (left, top) = (center_crop_offset(w, cw), center_crop_offset(h, ch));
    let (cols, rows) = (overlap(left, cw, w), overlap(top, ch, h));
    let window = image::imageops::crop_imm(
        img,
        cols.start as u32,
        rows.start as u32,
        cols.len() as u32,
        rows.len() as u32,
    )
    .to_image();
    let mut out = RgbImage::new(crop_w, crop_h);
    paste(
        &mut out,
        &window,
        (cols.start as i64 - left) as usize,
        (rows.start as i64 - top) as usize,
    );
    out
}

/// A preprocessed image: `data` is `[3, height, width]` f32, channel-first and row-major,
/// ready to be one item of the model's `[B, 3, H, W]` input.
///
/// The size travels with the data because it is not always known from the config alone
/// (no crop: see [`PreprocessConfig::output_size`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Pixels {
    pub data: Vec<f32>,
    pub height: usize,
    pub width: usize,
}

/// Runs the whole `ViTHybridImageProcessor.preprocess` on one decoded image.
pub fn preprocess(img: &DynamicImage, cfg: &PreprocessConfig) -> Result<Pixels> {
    let rgb = if cfg.do_convert_rgb {
        to_rgb8(img)
    } else {
        // Without the conversion transformers feeds the raw channels on, and normalising
        // anything but three of them fails there too. 16-bit and float RGB are still
        // reduced to 8 bits, which is how Pillow would have opened them.
        match img {
            DynamicImage::ImageRgb8(_)
            | DynamicImage::ImageRgb16(_)
            | DynamicImage::ImageRgb32F(_) => to_rgb8(img),
            other => bail!(
                "the image is {:?} and do_convert_rgb is false; only RGB images can be used without conversion",
                other.color()
            ),
        }
    };
    preprocess_rgb(&rgb, cfg)
}

/// [`preprocess`] after the RGB conversion.
///
/// Resizing and cropping are fused: only the output pixels inside the crop window are
/// resampled. Each resampled pixel depends only on its own coordinates, so the result is
/// identical to resizing the whole image and cropping after, without materialising a
/// resized image that can be thousands of times larger than the crop (a 1 x 16384 input
/// resized to a 384 shortest edge is 384 x 6,291,456 pixels).
pub fn preprocess_rgb(rgb: &RgbImage, cfg: &PreprocessConfig) -> Result<Pixels> {
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    ensure!(w > 0 && h > 0, "the image is empty ({w}x{h})");
    let (rw, rh) = cfg.resized_size(w, h);
    let (oh, ow) = cfg.output_size_for(w, h);
    let elements = ow.checked_mul(oh).and_then(|n| n.checked_mul(3));
    ensure!(
        elements.is_some_and(|n| n <= MAX_OUTPUT_ELEMENTS),
        "preprocessing a {w}x{h} image with this config gives a {ow}x{oh} tensor, larger than \
         the {MAX_OUTPUT_ELEMENTS}-element limit (enable do_center_crop?)"
    );
    let (top, left) = if cfg.do_center_crop {
        (center_crop_offset(rh, oh), center_crop_offset(rw, ow))
    } else {
        (0, 0)
    };
    let (rows, cols) = (overlap(top, oh, rh), overlap(left, ow, rw));
    let (x, y) = (
        (cols.start as i64 - left) as usize,
        (rows.start as i64 - top) as usize,
    );
    let window = resize_window(rgb, cfg.resample, rw, rh, cols, rows);
    // Pixels outside the window stay 0: the crop's zero padding, applied to u8 pixels before
    // rescaling, exactly where transformers applies it.
    let mut canvas = RgbImage::new(ow as u32, oh as u32);
    paste(&mut canvas, &window, x, y);
    Ok(Pixels {
        data: to_tensor(&canvas, cfg),
        height: oh,
        width: ow,
    })
}

/// Reads, decodes and preprocesses an image file.
pub fn preprocess_file(path: &Path, cfg: &PreprocessConfig) -> Result<Pixels> {
    let img = load_image(path)?;
    preprocess(&img, cfg).with_context(|| format!("preprocessing image {}", path.display()))
}

/// One channel value after transformers' `rescale` and `normalize`: the rescale multiplies
/// in f64 and casts to f32 (`image.astype(np.float64) * scale`, then `.astype(np.float32)`),
/// normalisation subtracts and divides in f32 with mean and std cast to f32.
fn channel_value(v: u8, channel: usize, cfg: &PreprocessConfig) -> f32 {
    let mut x = if cfg.do_rescale {
        (f64::from(v) * cfg.rescale_factor) as f32
    } else {
        f32::from(v)
    };
    if cfg.do_normalize {
        x = (x - cfg.image_mean[channel] as f32) / cfg.image_std[channel] as f32;
    }
    x
}

/// HWC u8 -> CHW f32. Each output depends only on (value, channel), so it goes through a
/// 256-entry table per channel.
fn to_tensor(img: &RgbImage, cfg: &PreprocessConfig) -> Vec<f32> {
    let plane = img.width() as usize * img.height() as usize;
    let mut out = vec![0f32; 3 * plane];
    for (c, dst) in out.chunks_exact_mut(plane.max(1)).enumerate().take(3) {
        let table: [f32; 256] = std::array::from_fn(|v| channel_value(v as u8, c, cfg));
        for (d, p) in dst.iter_mut().zip(img.chunks_exact(3)) {
            *d = table[usize::from(p[c])];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The deterministic test image the reference script in the comments below also builds:
    /// value i of the HWC byte array is (37 i + ((i^2 + seed) mod 17) 13 + 11 seed) mod 256,
    /// with every 5th byte 255 and every 7th 0 so the negative lobes overshoot and clip.
    fn pattern(w: u32, h: u32, seed: u64) -> RgbImage {
        let n = (w * h * 3) as u64;
        let bytes = (0..n)
            .map(|i| {
                let v = (i * 37 + (i * i + seed) % 17 * 13 + seed * 11) % 256;
                match i {
                    _ if i % 7 == 0 => 0,
                    _ if i % 5 == 0 => 255,
                    _ => v as u8,
                }
            })
            .collect();
        RgbImage::from_raw(w, h, bytes).unwrap()
    }

    fn assert_sums_to_one(taps: &[Taps]) {
        for (i, t) in taps.iter().enumerate() {
            let sum: i64 = t.weights.iter().map(|&k| i64::from(k)).sum();
            let slack = t.weights.len() as i64; // each weight rounds by at most 1/2
            assert!(
                (sum - (1 << 22)).abs() <= slack,
                "output {i}: weights {:?} sum to {sum}",
                t.weights
            );
        }
    }

    #[test]
    fn coefficients_identity() {
        // scale 1: center = i + 0.5, taps i-1..i+3 read cubic(-1), cubic(0), cubic(1), cubic(2)
        // = 0, 1, 0, 0; at the left edge xmin = int(-1.0) = -1 is clamped to 0.
        let taps = bicubic_coefficients(5, 5);
        assert_eq!(
            taps[0],
            Taps {
                start: 0,
                weights: vec![1 << 22, 0, 0]
            }
        );
        assert_eq!(
            taps[2],
            Taps {
                start: 1,
                weights: vec![0, 1 << 22, 0, 0]
            }
        );
        assert_eq!(
            taps[4],
            Taps {
                start: 3,
                weights: vec![0, 1 << 22]
            }
        );
    }

    #[test]
    fn coefficients_downscale_8_to_4() {
        // scale 2, support 4, ss 0.5. Output 0: center 1, xmin = max(int(-2.5), 0) = 0,
        // xmax = int(5.5) = 5. Arguments (x - 0.5) / 2 = -0.25, 0.25, 0.75, 1.25, 1.75 give
        // cubic = 111/128, 111/128, 29/128, -9/128, -3/128, summing to 239/128; normalised
        // 111/239 etc., times 2^22 rounded: 1947982, 508932, -157945, -52648.
        let taps = bicubic_coefficients(8, 4);
        assert_eq!(
            taps[0],
            Taps {
                start: 0,
                weights: vec![1947982, 1947982, 508932, -157945, -52648]
            }
        );
        // Output 1: center 3, xmin = int(-0.5) = 0 (truncation, not floor), xmax = int(7.5) = 7;
        // cubic = -9, 29, 111, 111, 29, -9, -3 (/128), sum 259/128.
        assert_eq!(
            taps[1],
            Taps {
                start: 0,
                weights: vec![-145748, 469632, 1797559, 1797559, 469632, -145748, -48583]
            }
        );
        // the last output mirrors the first
        assert_eq!(taps[3].start, 3);
        assert_eq!(
            taps[3].weights,
            vec![-52648, -157945, 508932, 1947982, 1947982]
        );
        assert_sums_to_one(&taps);
    }

    #[test]
    fn coefficients_upscale_4_to_8() {
        // scale 0.5, support 2, ss 1. Output 0: center 0.25, taps 0..2 at 0.25, 1.25:
        // 111/128, -9/128, sum 102/128 -> 111/102, -9/102.
        let taps = bicubic_coefficients(4, 8);
        assert_eq!(
            taps[0],
            Taps {
                start: 0,
                weights: vec![4564390, -370086]
            }
        );
        // Output 1: center 0.75, taps 0..3 at -0.25, 0.75, 1.75: 111, 29, -3 (/137).
        assert_eq!(
            taps[1],
            Taps {
                start: 0,
                weights: vec![3398305, 887845, -91846]
            }
        );
        // Output 3: center 1.75, taps 0..4 at -1.25, -0.25, 0.75, 1.75: -9, 111, 29, -3, which
        // already sum to 128/128, so the weights are exact multiples of 2^22 / 128 = 32768.
        assert_eq!(
            taps[3],
            Taps {
                start: 0,
                weights: vec![-294912, 3637248, 950272, -98304]
            }
        );
        assert_sums_to_one(&taps);
    }

    #[test]
    fn coefficients_degenerate_sizes() {
        assert_sums_to_one(&bicubic_coefficients(1, 7));
        assert_sums_to_one(&bicubic_coefficients(1000, 1));
        assert_sums_to_one(&bicubic_coefficients(3, 1000));
        assert_sums_to_one(&coefficients(Filter::Bilinear, 17, 5));
        assert!(bicubic_coefficients(5, 0).is_empty());
        // an empty source gives taps with no weights, not a panic
        assert!(
            bicubic_coefficients(0, 3)
                .iter()
                .all(|t| t.weights.is_empty())
        );
    }

    // Expected bytes below are Pillow 13.0.0's
    // `Image.fromarray(pattern(w, h, seed)).resize((ow, oh), resample, reducing_gap=None)`.
    const PIL_BICUBIC_7X5_TO_3X4: [u8; 36] = [
        100, 110, 204, 86, 144, 152, 179, 125, 152, 96, 151, 148, 194, 58, 164, 130, 181, 89, 111,
        106, 219, 121, 100, 175, 151, 145, 91, 138, 122, 185, 115, 75, 136, 166, 144, 122,
    ];
    const PIL_BILINEAR_7X5_TO_3X4: [u8; 36] = [
        103, 114, 195, 94, 141, 160, 172, 126, 147, 102, 143, 152, 178, 75, 165, 134, 170, 95, 114,
        113, 207, 126, 98, 175, 146, 144, 98, 137, 120, 179, 116, 83, 147, 166, 142, 117,
    ];
    const PIL_BICUBIC_13X1_TO_4X3: [u8; 36] = [
        35, 133, 169, 156, 119, 144, 118, 153, 194, 127, 38, 84, 35, 133, 169, 156, 119, 144, 118,
        153, 194, 127, 38, 84, 35, 133, 169, 156, 119, 144, 118, 153, 194, 127, 38, 84,
    ];
    const PIL_BICUBIC_4X9_TO_2X9: [u8; 54] = [
        76, 112, 150, 179, 114, 142, 220, 75, 43, 59, 96, 130, 82, 130, 69, 187, 127, 63, 80, 185,
        92, 138, 188, 168, 28, 48, 169, 225, 234, 122, 123, 156, 213, 117, 69, 125, 141, 120, 76,
        164, 142, 213, 73, 214, 88, 235, 21, 230, 136, 136, 58, 54, 208, 176,
    ];
    const PIL_BICUBIC_5X3_TO_11X8: [u8; 264] = [
        0, 84, 167, 0, 110, 189, 0, 175, 245, 4, 189, 242, 27, 64, 93, 44, 0, 0, 38, 101, 91, 27,
        248, 227, 40, 185, 159, 61, 40, 14, 71, 0, 0, 9, 92, 166, 11, 112, 188, 20, 161, 244, 29,
        170, 244, 34, 71, 107, 38, 7, 7, 38, 120, 98, 39, 249, 218, 59, 182, 161, 84, 39, 37, 94,
        0, 7, 101, 120, 170, 103, 121, 193, 112, 127, 250, 103, 122, 255, 52, 86, 149, 17, 75, 62,
        35, 168, 119, 76, 251, 201, 117, 177, 171, 154, 36, 101, 167, 0, 85, 216, 149, 168, 217,
        129, 190, 219, 81, 246, 186, 61, 255, 76, 107, 197, 0, 164, 133, 36, 228, 142, 119, 254,
        172, 181, 169, 178, 231, 33, 176, 245, 0, 179, 255, 137, 133, 255, 111, 150, 235, 48, 194,
        182, 32, 217, 85, 124, 196, 21, 219, 167, 55, 255, 142, 125, 255, 127, 176, 166, 151, 215,
        35, 190, 226, 0, 205, 255, 83, 64, 246, 67, 70, 158, 27, 90, 89, 33, 106, 83, 141, 147, 90,
        242, 167, 92, 255, 119, 96, 255, 62, 102, 167, 87, 107, 41, 145, 109, 0, 166, 255, 37, 9,
        223, 32, 7, 88, 14, 8, 8, 39, 19, 78, 152, 104, 146, 252, 161, 121, 255, 98, 69, 255, 13,
        37, 169, 37, 15, 46, 102, 9, 0, 127, 255, 21, 0, 218, 18, 0, 65, 7, 0, 0, 39, 0, 77, 157,
        89, 167, 255, 161, 132, 255, 91, 61, 255, 0, 15, 169, 18, 0, 47, 88, 0, 0, 116,
    ];

    const PIL_BICUBIC_3X8_TO_6X5: [u8; 90] = [
        0, 124, 126, 30, 134, 132, 126, 157, 143, 198, 127, 158, 235, 49, 175, 253, 13, 183, 131,
        205, 238, 109, 188, 196, 62, 152, 106, 69, 154, 68, 129, 194, 88, 157, 213, 97, 148, 102,
        136, 149, 106, 158, 149, 114, 204, 131, 153, 171, 96, 216, 65, 80, 246, 14, 196, 142, 98,
        166, 118, 124, 103, 67, 179, 79, 75, 185, 97, 140, 141, 106, 171, 120, 21, 125, 152, 47,
        126, 149, 103, 128, 144, 168, 111, 135, 234, 75, 123, 255, 59, 117,
    ];
    const PIL_BICUBIC_7X3_TO_4X6: [u8; 72] = [
        3, 76, 196, 0, 107, 247, 90, 214, 63, 227, 174, 193, 11, 118, 179, 47, 91, 234, 125, 205,
        67, 186, 197, 189, 30, 206, 144, 172, 56, 208, 199, 185, 76, 100, 246, 181, 62, 188, 126,
        217, 42, 210, 198, 181, 80, 91, 235, 139, 104, 66, 129, 176, 50, 240, 121, 194, 81, 160,
        166, 69, 124, 9, 130, 156, 54, 254, 84, 200, 81, 192, 133, 35,
    ];
    const PIL_BICUBIC_5X9_TO_5X4: [u8; 60] = [
        153, 91, 173, 150, 75, 205, 28, 92, 89, 92, 255, 201, 142, 102, 109, 255, 112, 186, 156,
        17, 175, 153, 146, 224, 97, 192, 137, 89, 63, 153, 240, 153, 31, 61, 139, 255, 162, 172,
        100, 7, 192, 185, 203, 72, 184, 141, 120, 66, 200, 170, 255, 106, 54, 99, 85, 255, 146, 80,
        26, 79,
    ];

    fn assert_bytes(got: &RgbImage, want: &[u8], what: &str) {
        assert_eq!(got.as_raw().len(), want.len(), "{what}: length");
        if let Some(i) = got.as_raw().iter().zip(want).position(|(a, b)| a != b) {
            panic!(
                "{what}: byte {i} (pixel {}, channel {}) is {} but Pillow gives {}",
                i / 3,
                i % 3,
                got.as_raw()[i],
                want[i]
            );
        }
    }

    #[test]
    fn resize_matches_pillow() {
        // (w, h, out_w, out_h, pattern seed, filter, Pillow's bytes)
        #[allow(clippy::type_complexity)]
        let cases: [(u32, u32, u32, u32, u64, Filter, &[u8]); 8] = [
            (7, 5, 3, 4, 1, Filter::Bicubic, &PIL_BICUBIC_7X5_TO_3X4),
            (5, 3, 11, 8, 2, Filter::Bicubic, &PIL_BICUBIC_5X3_TO_11X8),
            (13, 1, 4, 3, 3, Filter::Bicubic, &PIL_BICUBIC_13X1_TO_4X3),
            (4, 9, 2, 9, 7, Filter::Bicubic, &PIL_BICUBIC_4X9_TO_2X9), // vertical pass skipped
            (7, 5, 3, 4, 1, Filter::Bilinear, &PIL_BILINEAR_7X5_TO_3X4),
            // width grows, height shrinks: Pillow >= 13 runs the vertical pass first
            // (horizontal first, as older releases do, gives other bytes here)
            (3, 8, 6, 5, 10, Filter::Bicubic, &PIL_BICUBIC_3X8_TO_6X5),
            // width shrinks, height grows: horizontal first
            (7, 3, 4, 6, 11, Filter::Bicubic, &PIL_BICUBIC_7X3_TO_4X6),
            // width kept, height shrinks: only the vertical pass
            (5, 9, 5, 4, 12, Filter::Bicubic, &PIL_BICUBIC_5X9_TO_5X4),
        ];
        for (w, h, ow, oh, seed, filter, want) in cases {
            let got = resize(&pattern(w, h, seed), ow, oh, filter);
            assert_eq!(got.dimensions(), (ow, oh));
            assert_bytes(&got, want, &format!("{filter:?} {w}x{h} -> {ow}x{oh}"));
        }
        // same size: both passes skipped, a copy
        let img = pattern(9, 4, 6);
        assert_eq!(resize_bicubic(&img, 9, 4), img);
    }

    #[test]
    fn resize_keeps_constant_images_constant() {
        for (w, h, ow, oh) in [(1, 1, 5, 3), (10, 7, 3, 3), (3, 17, 40, 2), (64, 64, 7, 9)] {
            for v in [0u8, 1, 128, 254, 255] {
                let img = RgbImage::from_pixel(w, h, image::Rgb([v, 255 - v, v / 2]));
                let out = resize_bicubic(&img, ow, oh);
                assert!(
                    out.pixels().all(|p| p.0 == [v, 255 - v, v / 2]),
                    "{w}x{h}->{ow}x{oh} value {v}"
                );
            }
        }
    }

    #[test]
    fn windowed_resize_equals_resize_then_crop() {
        // both pass orders: (3, 8, 6, 5) and (6, 6, 6, 2) run vertical first
        for (w, h, ow, oh) in [
            (7, 5, 3, 4),
            (5, 3, 11, 8),
            (20, 9, 13, 31),
            (6, 6, 6, 2),
            (3, 8, 6, 5),
        ] {
            let img = pattern(w, h, 5);
            let full = resize_bicubic(&img, ow, oh);
            for (cols, rows) in [
                (1..ow - 1, 0..oh),
                (0..1, oh - 1..oh),
                (ow / 2..ow, 1..oh / 2 + 1),
            ] {
                let win = resize_window(
                    &img,
                    Filter::Bicubic,
                    ow as usize,
                    oh as usize,
                    cols.start as usize..cols.end as usize,
                    rows.start as usize..rows.end as usize,
                );
                let want = image::imageops::crop_imm(
                    &full,
                    cols.start,
                    rows.start,
                    cols.len() as u32,
                    rows.len() as u32,
                )
                .to_image();
                assert_eq!(win, want, "{w}x{h}->{ow}x{oh} window {cols:?} x {rows:?}");
            }
        }
    }

    #[test]
    fn shortest_edge_sizes() {
        assert_eq!(resize_shortest_edge(640, 480, 384), (512, 384));
        assert_eq!(resize_shortest_edge(480, 640, 384), (384, 512));
        assert_eq!(resize_shortest_edge(500, 500, 384), (384, 384));
        // int(384 * 1000 / 1) = 384000; the thin side is the one set
        assert_eq!(resize_shortest_edge(1, 1000, 384), (384, 384000));
        assert_eq!(resize_shortest_edge(1000, 1, 384), (384000, 384));
        // truncation, not rounding: 384 * 500 / 333 = 576.576...
        assert_eq!(resize_shortest_edge(500, 333, 384), (576, 384));
        // 224 * 1001 / 3 = 74741.33..., and 7 * 10 / 3 = 23.33...
        assert_eq!(resize_shortest_edge(3, 1001, 224), (224, 74741));
        assert_eq!(resize_shortest_edge(3, 10, 7), (7, 23));
        assert_eq!(resize_shortest_edge(0, 10, 7), (0, 10));
    }

    #[test]
    fn center_crop_offsets_and_padding() {
        assert_eq!(center_crop_offset(512, 384), 64);
        assert_eq!(center_crop_offset(385, 384), 0); // odd difference: floor(1/2)
        assert_eq!(center_crop_offset(10, 3), 3); // floor(7/2)
        assert_eq!(center_crop_offset(3, 6), -2); // floor(-3/2): 2 zero rows before, 1 after
        assert_eq!(center_crop_offset(4, 6), -1);

        let img = RgbImage::from_fn(3, 2, |x, y| {
            image::Rgb([10 * x as u8 + 1, 10 * y as u8 + 1, 7])
        });
        // wider crop than image on both axes: 3x2 into 6x5, offsets (-2, -2)
        let out = center_crop(&img, 6, 5);
        assert_eq!(out.dimensions(), (6, 5));
        for (x, y, p) in out.enumerate_pixels() {
            let inside = (2..5).contains(&x) && (2..4).contains(&y);
            let want = if inside {
                *img.get_pixel(x - 2, y - 2)
            } else {
                image::Rgb([0, 0, 0])
            };
            assert_eq!(*p, want, "pixel ({x}, {y})");
        }
        // mixed: narrower in x, taller in y
        let out = center_crop(&img, 1, 3);
        // left = floor(2/2) = 1, top = floor(-1/2) = -1: one zero row before, none after
        assert_eq!(out.as_raw(), &[0, 0, 0, 11, 1, 7, 11, 11, 7]);
    }

    #[test]
    fn rgb_conversion_follows_pillow() {
        use image::{ImageBuffer, Luma, LumaA, Rgb, Rgba};
        let gray = DynamicImage::ImageLuma8(ImageBuffer::from_raw(2, 1, vec![10, 200]).unwrap());
        assert_eq!(to_rgb8(&gray).as_raw(), &[10, 10, 10, 200, 200, 200]);
        let gray_a = DynamicImage::ImageLumaA8(
            ImageBuffer::<LumaA<u8>, _>::from_raw(2, 1, vec![10, 0, 200, 128]).unwrap(),
        );
        assert_eq!(to_rgb8(&gray_a).as_raw(), &[10, 10, 10, 200, 200, 200]);
        // fully transparent pixels keep their colour: dropped, not composited on black or white
        let rgba = DynamicImage::ImageRgba8(
            ImageBuffer::<Rgba<u8>, _>::from_raw(1, 1, vec![10, 20, 30, 0]).unwrap(),
        );
        assert_eq!(to_rgb8(&rgba).as_raw(), &[10, 20, 30]);
        // 16-bit: the high byte, as Pillow's PNG decoder (checked on 0x00ff, 0x0100, 0x7f80, 0x80ff)
        let v16 = vec![0x0000, 0x00ff, 0x0100, 0x7f80, 0x80ff, 0xffff];
        let rgb16 = DynamicImage::ImageRgb16(
            ImageBuffer::<Rgb<u16>, _>::from_raw(2, 1, v16.clone()).unwrap(),
        );
        assert_eq!(to_rgb8(&rgb16).as_raw(), &[0, 0, 1, 127, 128, 255]);
        let rgba16 = DynamicImage::ImageRgba16(
            ImageBuffer::<Rgba<u16>, _>::from_raw(1, 1, vec![0x1234, 0xff00, 0x00ff, 0]).unwrap(),
        );
        assert_eq!(to_rgb8(&rgba16).as_raw(), &[0x12, 0xff, 0]);
        let gray16 =
            DynamicImage::ImageLuma16(ImageBuffer::<Luma<u16>, _>::from_raw(6, 1, v16).unwrap());
        assert_eq!(
            to_rgb8(&gray16).as_raw()[9..],
            [127, 127, 127, 128, 128, 128, 255, 255, 255]
        );
        let f = DynamicImage::ImageRgb32F(
            ImageBuffer::<Rgb<f32>, _>::from_raw(2, 1, vec![-1.0, 0.5, 2.0, f32::NAN, 1.0, 0.0])
                .unwrap(),
        );
        assert_eq!(to_rgb8(&f).as_raw(), &[0, 128, 255, 0, 255, 0]);
    }

    #[test]
    fn normalisation_values() {
        // mean = std = 0.5: 0 -> -1 and 255 -> (1 - 0.5) / 0.5 = 1, exactly
        let half = PreprocessConfig {
            image_mean: [0.5; 3],
            image_std: [0.5; 3],
            ..Default::default()
        };
        assert_eq!(channel_value(0, 0, &half), -1.0);
        assert_eq!(channel_value(255, 2, &half), 1.0);
        // CLIP channel 0 against numpy: ((v.astype(f64) * (1/255)).astype(f32) - f32(mean)) / f32(std)
        let clip = PreprocessConfig::default();
        let want: [(u8, u32); 6] = [
            (0, 3219482844),
            (1, 3219360383),
            (127, 1031594130),
            (128, 1033655840),
            (254, 1073034981),
            (255, 1073157441),
        ];
        for (v, bits) in want {
            let got = channel_value(v, 0, &clip);
            assert_eq!(
                got.to_bits(),
                bits,
                "value {v}: got {got}, numpy {}",
                f32::from_bits(bits)
            );
        }
        let raw = PreprocessConfig {
            do_rescale: false,
            do_normalize: false,
            ..Default::default()
        };
        assert_eq!(channel_value(200, 1, &raw), 200.0);
    }

    /// Compares with `ViTHybridImageProcessor(**kwargs)(Image.fromarray(pattern(..)),
    /// return_tensors="np")["pixel_values"][0]` from transformers 4.57.6 / Pillow 13.0.0, as
    /// f32 bit patterns.
    fn assert_pipeline(
        img: &RgbImage,
        cfg: &PreprocessConfig,
        shape: (usize, usize),
        want_bits: &[u32],
    ) {
        let px = preprocess(&DynamicImage::ImageRgb8(img.clone()), cfg).unwrap();
        assert_eq!((px.height, px.width), shape);
        assert_eq!(px.data.len(), want_bits.len());
        for (i, (&got, &bits)) in px.data.iter().zip(want_bits).enumerate() {
            let want = f32::from_bits(bits);
            assert!(
                got.to_bits() == bits,
                "element {i} ([c, y, x] = {:?}): got {got}, transformers {want}",
                (i / (shape.0 * shape.1), i / shape.1 % shape.0, i % shape.1)
            );
        }
    }

    #[test]
    fn pipeline_matches_transformers_shortest_edge_and_crop() {
        // size={"shortest_edge": 5}, crop_size={"height": 4, "width": 4}, CLIP mean/std:
        // 10x7 -> 7x5 (int(5 * 10 / 7) = 7) -> crop at (left 1, top 0)
        let cfg = PreprocessConfig::from_json_str(
            r#"{"size": {"shortest_edge": 5}, "crop_size": {"height": 4, "width": 4}}"#,
        )
        .unwrap();
        assert_eq!(cfg.output_size(), Some((4, 4)));
        #[rustfmt::skip]
        let want = [1058918782, 1064307043, 1068136562, 3188854864, 3208494514, 1047698137, 1035615207, 1064551964, 1057449257, 1051076120, 3201764251, 1052055803, 995829100, 1051565961, 1072055297, 1055484696, 3208585125, 1070719060, 1036007632, 3196607526, 1064250843, 1040036249, 1066060972, 3212110165, 3205060085, 1066060972, 3201643297, 3209844068, 3193126788, 1067949386, 3207326182, 3186496685, 1060959441, 3189869098, 3213286643, 1069120656, 1043160844, 1054934204, 3206579228, 1071029241, 1041252259, 1021186046, 1065780633, 1065253757, 1064060892, 3213286643, 1052071326, 1034682787];
        assert_pipeline(&pattern(10, 7, 8), &cfg, (4, 4), &want);
    }

    #[test]
    fn pipeline_matches_transformers_with_padding() {
        // 6x4 -> shortest edge 3 -> 4x3, crop 5 high x 4 wide pads one zero row above and one
        // below, which normalise to (0 - 0.5) / 0.5 = -1 (bits 3212836864)
        let cfg = PreprocessConfig::from_json_str(
            r#"{"size": {"shortest_edge": 3}, "crop_size": {"height": 5, "width": 4}, "image_mean": [0.5, 0.5, 0.5], "image_std": 0.5}"#,
        )
        .unwrap();
        #[rustfmt::skip]
        let want = [3212836864, 3212836864, 3212836864, 3212836864, 3200171710, 1054793440, 1051109032, 1055319784, 3204810118, 3211126246, 1057984400, 1017159872, 3206915494, 1010876672, 3194809580, 1048740484, 3212836864, 3212836864, 3212836864, 3212836864, 3212836864, 3212836864, 3212836864, 3212836864, 3201750742, 3199119022, 1056898816, 1021370624, 1059168674, 1060616120, 3206652322, 1042062496, 1056372472, 3174084784, 3205862806, 3206125978, 3212836864, 3212836864, 3212836864, 3212836864, 3212836864, 3212836864, 3212836864, 3212836864, 1049266828, 1057326470, 3190598828, 3207705010, 1046799592, 3201750742, 1051372204, 1035516096, 3209284042, 1044167872, 1060747706, 1057063298, 3212836864, 3212836864, 3212836864, 3212836864];
        assert_pipeline(&pattern(6, 4, 9), &cfg, (5, 4), &want);
    }

    #[test]
    fn pipeline_matches_transformers_exact_size_bilinear() {
        // 3x8 -> exactly 6x5 with BILINEAR, crop 3 high x 7 wide: top = 1, left =
        // floor(-1/2) = -1, so output column 0 is zero padding (CLIP-normalised: -1.79...)
        let cfg = PreprocessConfig::from_json_str(
            r#"{"size": {"height": 5, "width": 6}, "crop_size": {"height": 3, "width": 7}, "resample": 2}"#,
        )
        .unwrap();
        #[rustfmt::skip]
        let want = [3219482844, 3167996302, 3195712650, 3207514830, 3206045305, 1016265675, 1051076120, 3219482844, 1050586278, 1049606594, 1046718453, 1027675396, 3196375991, 3201274409, 3219482844, 1062592596, 1057204336, 3188854864, 3200784567, 3196375991, 3191793915, 3219145912, 1066438655, 1064502631, 1058711495, 1059215072, 1065935078, 1067697598, 3219145912, 3173567854, 997838531, 1033993324, 1057200763, 1067697598, 1070844955, 3219145912, 1041118975, 3184482377, 3205815451, 3202650451, 1049883262, 1059466860, 3216865240, 1070194235, 1066377066, 1046978014, 3192731975, 3188914805, 3186341401, 3216865240, 1057380845, 1060482295, 1066138492, 1060720868, 3201075859, 3212066408, 3216865240, 1042206552, 1054934204, 1065422773, 1065661346, 1057380845, 1049208446];
        assert_pipeline(&pattern(3, 8, 10), &cfg, (3, 7), &want);
    }

    #[test]
    fn tiny_and_thin_images_do_not_panic() {
        let cfg = PreprocessConfig::default();
        for (w, h) in [
            (1, 1),
            (1, 7),
            (7, 1),
            (1, 1000),
            (1000, 1),
            (2, 3),
            (224, 224),
        ] {
            let px = preprocess(&DynamicImage::ImageRgb8(pattern(w, h, 1)), &cfg).unwrap();
            assert_eq!(
                (px.height, px.width, px.data.len()),
                (224, 224, 3 * 224 * 224),
                "{w}x{h}"
            );
            assert!(px.data.iter().all(|v| v.is_finite()));
        }
        // a long thin image: resized to 224 x 3.67M, of which only the crop is computed
        let px = preprocess_rgb(&RgbImage::new(1, 16384), &cfg).unwrap();
        assert_eq!(px.data.len(), 3 * 224 * 224);
        // without a crop that tensor would be 2.5 billion floats: an error, not an abort
        let no_crop = PreprocessConfig {
            do_center_crop: false,
            ..cfg.clone()
        };
        let err = preprocess_rgb(&RgbImage::new(1, 16384), &no_crop).unwrap_err();
        assert!(format!("{err:#}").contains("limit"), "{err:#}");
        // no resize, no crop: the image's own size
        let raw = PreprocessConfig {
            do_resize: false,
            do_center_crop: false,
            ..cfg.clone()
        };
        assert_eq!(raw.output_size(), None);
        let px = preprocess_rgb(&pattern(5, 2, 1), &raw).unwrap();
        assert_eq!((px.height, px.width), (2, 5));
        assert_eq!(raw.output_size_for(5, 2), (2, 5));
        // empty image: an error
        assert!(preprocess_rgb(&RgbImage::new(0, 5), &cfg).is_err());
        assert!(preprocess(&DynamicImage::new_rgb8(5, 0), &cfg).is_err());
    }

    #[test]
    fn png_chunk_names_read_plainly() {
        let raw = "Format error decoding Png: CRC error: expected 0x1 have 0x2 while decoding \
                   ChunkType { type: IHDR, critical: true, private: false, reserved: false, \
                   safecopy: false } chunk.";
        assert_eq!(
            plain_chunk_names(raw),
            "Format error decoding Png: CRC error: expected 0x1 have 0x2 while decoding chunk \
             IHDR."
        );
        let two = "ChunkType { type: abcd, x } and ChunkType { type: IDAT, y } chunk appeared";
        assert_eq!(plain_chunk_names(two), "chunk abcd and chunk IDAT appeared");
        for plain in [
            "no chunks here",
            "ChunkType { type: broken",
            "ChunkType { type: }, x",
        ] {
            assert_eq!(plain_chunk_names(plain), plain);
        }
    }

    /// Icons decode (folders pick up `.ico`): the largest entry, alpha dropped, as Pillow's
    /// `Image.open(...).convert("RGB")` gives (checked against Pillow 13 by hand).
    #[test]
    fn icons_decode_to_their_largest_entry() {
        let rgba = image::RgbaImage::from_fn(40, 24, |x, y| {
            image::Rgba([(x * 6) as u8, (y * 10) as u8, (x * y) as u8, (x + y) as u8])
        });
        let mut ico = Vec::new();
        DynamicImage::ImageRgba8(rgba.clone())
            .write_to(&mut std::io::Cursor::new(&mut ico), ImageFormat::Ico)
            .unwrap();
        let rgb = to_rgb8(&decode_image(&ico).unwrap());
        assert_eq!(rgb, DynamicImage::ImageRgba8(rgba).to_rgb8());
    }

    #[test]
    fn convert_rgb_flag() {
        let gray = DynamicImage::new_luma8(4, 4);
        let cfg = PreprocessConfig {
            do_convert_rgb: false,
            ..Default::default()
        };
        let err = preprocess(&gray, &cfg).unwrap_err();
        assert!(format!("{err:#}").contains("do_convert_rgb"), "{err:#}");
        assert!(preprocess(&DynamicImage::new_rgb8(4, 4), &cfg).is_ok());
    }

    #[test]
    fn config_defaults_and_real_file() {
        assert_eq!(
            PreprocessConfig::from_json_str("{}").unwrap(),
            PreprocessConfig::default()
        );
        // google/vit-hybrid-base-bit-384's preprocessor_config.json
        let cfg = PreprocessConfig::from_json_str(
            r#"{
              "crop_size": {"height": 384, "width": 384},
              "do_center_crop": true, "do_convert_rgb": true, "do_normalize": true,
              "do_rescale": true, "do_resize": true,
              "image_mean": [0.5, 0.5, 0.5], "image_processor_type": "ViTHybridImageProcessor",
              "image_std": [0.5, 0.5, 0.5], "resample": 3,
              "rescale_factor": 0.00392156862745098, "size": {"shortest_edge": 384}
            }"#,
        )
        .unwrap();
        assert_eq!(cfg.size, ResizeTo::ShortestEdge(384));
        assert_eq!(cfg.crop_size, (384, 384));
        assert_eq!(cfg.image_mean, [0.5; 3]);
        assert_eq!(cfg.resample, Filter::Bicubic);
        // serde_json parses this value to the same double as Python's 1/255
        assert_eq!(cfg.rescale_factor, 1.0 / 255.0);
        assert_eq!(cfg.output_size(), Some((384, 384)));
        assert_eq!(cfg.output_size_for(640, 480), (384, 384));
    }

    #[test]
    fn config_variants() {
        let parse = |s: &str| PreprocessConfig::from_json_str(s);
        let c = parse(r#"{"size": 256, "crop_size": 200, "image_mean": null, "image_std": 0.25}"#)
            .unwrap();
        assert_eq!(c.size, ResizeTo::ShortestEdge(256));
        assert_eq!(c.crop_size, (200, 200));
        assert_eq!(c.image_mean, OPENAI_CLIP_MEAN);
        assert_eq!(c.image_std, [0.25; 3]);
        let c = parse(r#"{"size": [300, 400], "crop_size": [100, 120], "do_center_crop": false}"#)
            .unwrap();
        assert_eq!(
            c.size,
            ResizeTo::Exact {
                height: 300,
                width: 400
            }
        );
        assert_eq!(c.crop_size, (100, 120));
        assert_eq!(c.output_size(), Some((300, 400)));
        let c = parse(r#"{"do_center_crop": false}"#).unwrap();
        assert_eq!(c.output_size(), None);
        assert_eq!(c.output_size_for(640, 480), (224, 298)); // int(224 * 640 / 480) = 298
    }

    #[test]
    fn config_errors_name_the_problem() {
        let err = |s: &str| format!("{:#}", PreprocessConfig::from_json_str(s).unwrap_err());
        assert!(err(r#"{"resample": 1}"#).contains("LANCZOS"));
        assert!(err(r#"{"resample": 0}"#).contains("NEAREST"));
        assert!(err(r#"{"resample": 9}"#).contains("resample 9"));
        assert!(
            err(r#"{"size": {"shortest_edge": 384, "longest_edge": 600}}"#)
                .contains("longest_edge")
        );
        assert!(err(r#"{"size": {"shortest_edge": 0}}"#).contains("shortest_edge 0"));
        assert!(err(r#"{"size": {"shortest_edge": 3.5}}"#).contains("positive integer"));
        assert!(err(r#"{"crop_size": {"shortest_edge": 3}}"#).contains("crop_size"));
        assert!(err(r#"{"image_mean": [0.5, 0.5]}"#).contains("3 values"));
        assert!(err(r#"{"image_std": [0.5, 0, 0.5]}"#).contains("zero"));
        assert!(err(r#"{"do_resize": "yes"}"#).contains("do_resize"));
        assert!(err(r#"[1, 2]"#).contains("object"));
        assert!(err("{").contains("JSON"));

        let dir = std::env::temp_dir().join(format!("vit-hybrid-pre-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("preprocessor_config.json");
        std::fs::write(&path, r#"{"resample": 5}"#).unwrap();
        let msg = format!("{:#}", PreprocessConfig::load(&path).unwrap_err());
        assert!(
            msg.contains("preprocessor_config.json") && msg.contains("HAMMING"),
            "{msg}"
        );
        let msg = format!(
            "{:#}",
            PreprocessConfig::load(&dir.join("absent.json")).unwrap_err()
        );
        assert!(msg.contains("absent.json"), "{msg}");
    }

    #[test]
    fn load_image_roundtrip_and_errors() {
        let dir = std::env::temp_dir().join(format!("vit-hybrid-img-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // PNG is lossless, and the format comes from the content, not the name
        let img = pattern(5, 3, 4);
        let path = dir.join("pattern.dat");
        img.write_to(
            &mut std::io::BufWriter::new(std::fs::File::create(&path).unwrap()),
            image::ImageFormat::Png,
        )
        .unwrap();
        assert_eq!(load_image(&path).unwrap().to_rgb8(), img);
        let px = preprocess_file(&path, &PreprocessConfig::default()).unwrap();
        assert_eq!(px.data.len(), 3 * 224 * 224);

        let garbage = dir.join("garbage.png");
        std::fs::write(&garbage, b"definitely not an image").unwrap();
        let msg = format!("{:#}", load_image(&garbage).unwrap_err());
        assert!(msg.contains("garbage.png"), "{msg}");
        let msg = format!(
            "{:#}",
            preprocess_file(&dir.join("missing.png"), &PreprocessConfig::default()).unwrap_err()
        );
        assert!(msg.contains("missing.png"), "{msg}");

        // wider than 16384 (the limit before): decoded, as Pillow decodes it
        let wide = dir.join("wide.png");
        RgbImage::new(20000, 2).save(&wide).unwrap();
        assert_eq!(load_image(&wide).unwrap().width(), 20000);
    }
}
