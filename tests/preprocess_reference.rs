//! Preprocessing of real image files against transformers' `ViTHybridImageProcessor`
//! (4.57.6, Pillow 13.0.0), on the fixtures tools/make_preprocess_fixtures.py wrote to
//! tests/fixtures/preprocess: PNGs of every colour type and bit depth, images smaller than
//! the crop, 1-pixel-wide and 1-pixel-tall images, and JPEGs of every layout (4:4:4, 4:2:2,
//! 4:2:0, 4:1:1, 4:4:0, progressive, restart markers, odd sizes, grayscale, CMYK, YCCK, Adobe
//! RGB, and damage that libjpeg steps over with a warning). No GPU needed.
//!
//! PNGs and JPEGs must match bit for bit: decoding is exact (libjpeg-turbo's decoder, as
//! Pillow's, for JPEG: src/jpeg.rs). The one intended deviation is 16-bit gray: Pillow clips
//! it to 255, the crate takes the high byte; its expected tensor is the processor's output on
//! `v >> 8` (see src/preprocess.rs `to_rgb8`). `decoded/<name>` holds Pillow's decoded pixels
//! of each JPEG, so that a decoder difference is told apart from a preprocessing one. The
//! browser build's JPEG decoder (zune-jpeg through the `image` crate) is not exact; its
//! difference is measured here on the same files and bounded.
//!
//! Expected tensors are stored as u8 levels ([3, H, W]) plus, per config, the float32 value
//! of each level (`table/<config>`, [3, 256]); the generator checked that `table[c][level]`
//! is transformers' float32 `pixel_values` bit for bit, so comparing with it is comparing
//! with `pixel_values`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};
use vit_hybrid::preprocess::{
    PreprocessConfig, decode_image_pure_rust, load_image, preprocess_file, preprocess_rgb, to_rgb8,
};

/// (key prefix, config file, level table) of each config.
const CONFIGS: &[(&str, &str, &str)] = &[
    ("", "preprocessor_config.json", "table/default"),
    ("clip/", "preprocessor_config_clip.json", "table/clip"),
];

const PNGS: &[&str] = &[
    "rgb.png",
    "rgba.png",
    "gray.png",
    "gray_alpha.png",
    "gray_2bit.png",
    "palette.png",
    "palette_trns.png",
    "gray16.png",
    "gray_alpha16.png",
    "rgb16.png",
    "rgba16.png",
    "rgb_interlaced.png",
    "small.png",
    "tall_1px.png",
    "wide_1px.png",
];

const JPEGS: &[&str] = &[
    "photo.jpg",
    "gray.jpg",
    "s444.jpg",
    "s422.jpg",
    "s411.jpg",
    "s440.jpg",
    "odd_37x23.jpg",
    "tall.jpg",
    "progressive.jpg",
    "progressive_444.jpg",
    "gray_progressive.jpg",
    "restart_blocks.jpg",
    "restart_rows.jpg",
    "cmyk.jpg",
    "ycck.jpg",
    "adobe_rgb.jpg",
    "arithmetic.jpg",
    "corrupt_scan.jpg",
    "cut_scan.jpg",
    "bad_restart.jpg",
];

/// The browser build's JPEG decoder (zune-jpeg 0.5 through the `image` crate) against
/// libjpeg-turbo: the largest difference in u8 levels of the decoded pixels over the intact
/// fixtures. Measured (`pure_rust_jpeg_decoder_is_within_bound` prints each file): 4 (s440.jpg);
/// 1-4% of pixels differ in 4:4:4, gray, CMYK and RGB files, 21-45% in chroma-subsampled ones,
/// where libjpeg-turbo's "fancy" upsampling rounds once with alternating biases and zune-jpeg
/// rounds after each direction; the rest is IDCT and YCbCr -> RGB rounding.
const PURE_RUST_MAX_DECODER_LEVELS: u8 = 4;
/// The same in u8 levels of the resized and cropped image. Measured: 4 (0.031 with
/// mean = std = 0.5), on 1.3-34% of tensor values.
const PURE_RUST_MAX_PREPROCESSED_LEVELS: f64 = 4.0;
/// Fixtures outside those bounds, and why.
const PURE_RUST_UNBOUNDED: &[(&str, &str)] = &[
    (
        "arithmetic.jpg",
        "zune-jpeg cannot decode arithmetic coding",
    ),
    (
        "cut_scan.jpg",
        "where the scan's data stops, libjpeg leaves the remaining coefficients zero and \
         zune-jpeg fills otherwise",
    ),
];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/preprocess")
}

struct Fixture {
    bytes: Vec<u8>,
}

impl Fixture {
    fn load() -> Self {
        let path = dir().join("expected.safetensors");
        let bytes = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (regenerate with tools/make_preprocess_fixtures.py)",
                path.display()
            )
        });
        Fixture { bytes }
    }

    fn st(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.bytes).expect("expected.safetensors is not valid")
    }

    /// (shape, raw bytes) of a tensor of the given dtype.
    fn raw(&self, name: &str, dtype: Dtype) -> (Vec<usize>, Vec<u8>) {
        let st = self.st();
        let t = st
            .tensor(name)
            .unwrap_or_else(|e| panic!("expected.safetensors has no {name}: {e}"));
        assert_eq!(t.dtype(), dtype, "{name}: dtype");
        (t.shape().to_vec(), t.data().to_vec())
    }

    /// The [3, 256] level -> value table of a config.
    fn table(&self, name: &str) -> Vec<[f32; 256]> {
        let (shape, data) = self.raw(name, Dtype::F32);
        assert_eq!(shape, [3, 256], "{name}");
        let v: Vec<f32> = data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        v.chunks_exact(256).map(|c| c.try_into().unwrap()).collect()
    }

    /// Expected [3, H, W] tensor: (levels, values, height, width).
    fn expected(&self, key: &str, table: &[[f32; 256]]) -> Expected {
        let (shape, levels) = self.raw(key, Dtype::U8);
        assert_eq!(shape.len(), 3, "{key}: shape {shape:?}");
        assert_eq!(shape[0], 3, "{key}: shape {shape:?}");
        let plane = shape[1] * shape[2];
        let values = levels
            .iter()
            .enumerate()
            .map(|(i, &l)| table[i / plane][usize::from(l)])
            .collect();
        Expected {
            levels,
            values,
            height: shape[1],
            width: shape[2],
        }
    }

    fn metadata(&self) -> std::collections::HashMap<String, String> {
        let (_, meta) = SafeTensors::read_metadata(&self.bytes).unwrap();
        meta.metadata().clone().unwrap_or_default()
    }
}

struct Expected {
    levels: Vec<u8>,
    values: Vec<f32>,
    height: usize,
    width: usize,
}

/// The level of `v` in a channel's table, when it is one of its values.
fn level_of(table: &[f32; 256], v: f32) -> Option<usize> {
    table.iter().position(|t| t.to_bits() == v.to_bits())
}

/// None when `got` is `want` bit for bit; otherwise a message naming the first differing
/// element as (channel, y, x) with both values and levels, the number of differing elements
/// and the largest level difference.
fn bit_diff(
    what: &str,
    got: &[f32],
    (gh, gw): (usize, usize),
    want: &Expected,
    table: &[[f32; 256]],
) -> Option<String> {
    if (gh, gw) != (want.height, want.width) || got.len() != want.values.len() {
        return Some(format!(
            "{what}: shape [3, {gh}, {gw}] ({} values), expected [3, {}, {}]",
            got.len(),
            want.height,
            want.width
        ));
    }
    let plane = gh * gw;
    let mut first = None;
    let mut count = 0usize;
    let mut max_levels = 0usize;
    for (i, (g, w)) in got.iter().zip(&want.values).enumerate() {
        if g.to_bits() == w.to_bits() {
            continue;
        }
        count += 1;
        let c = i / plane;
        let ours = level_of(&table[c], *g);
        if let Some(l) = ours {
            max_levels = max_levels.max(l.abs_diff(usize::from(want.levels[i])));
        }
        if first.is_none() {
            let (y, x) = ((i % plane) / gw, i % gw);
            first = Some(format!(
                "first at (c {c}, y {y}, x {x}): ours {g:?} (level {}), transformers {w:?} (level {})",
                ours.map_or("none: not a table value".into(), |l| l.to_string()),
                want.levels[i]
            ));
        }
    }
    first.map(|f| {
        format!(
            "{what}: {count} of {} values differ ({:.3}%), largest level difference {max_levels}; {f}",
            got.len(),
            100.0 * count as f64 / got.len() as f64
        )
    })
}

fn config(file: &str) -> PreprocessConfig {
    PreprocessConfig::load(&dir().join(file)).unwrap_or_else(|e| panic!("{e:#}"))
}

/// Every (config, image) pair of `names` preprocessed from its file, bit for bit against the
/// processor's output.
fn assert_files_match_transformers(names: &[&str], what: &str) {
    let fx = Fixture::load();
    let mut failures = Vec::new();
    for &(prefix, file, table) in CONFIGS {
        let cfg = config(file);
        let table = fx.table(table);
        for name in names {
            let key = format!("{prefix}{name}");
            let want = fx.expected(&key, &table);
            match preprocess_file(&dir().join(name), &cfg) {
                Ok(px) => {
                    if let Some(msg) =
                        bit_diff(&key, &px.data, (px.height, px.width), &want, &table)
                    {
                        failures.push(msg);
                    }
                }
                Err(e) => failures.push(format!("{key}: {e:#}")),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} {what} cases differ from transformers:\n{}",
        failures.len(),
        names.len() * CONFIGS.len(),
        failures.join("\n")
    );
}

#[test]
fn pngs_match_transformers_bit_for_bit() {
    assert_files_match_transformers(PNGS, "PNG");
}

#[test]
fn jpegs_match_transformers_bit_for_bit() {
    assert_files_match_transformers(JPEGS, "JPEG");
}

/// The documented deviation: 16-bit gray keeps its high byte where transformers (Pillow)
/// clips to 255. The file is made so that the two differ on most pixels.
#[test]
fn gray16_deviates_from_transformers_as_documented() {
    let fx = Fixture::load();
    for &(prefix, file, table) in CONFIGS {
        let cfg = config(file);
        let table = fx.table(table);
        let px = preprocess_file(&dir().join("gray16.png"), &cfg).unwrap();
        let ours = fx.expected(&format!("{prefix}gray16.png"), &table);
        assert!(
            bit_diff("gray16.png", &px.data, (px.height, px.width), &ours, &table).is_none(),
            "{prefix}gray16.png should be the processor's output on v >> 8"
        );
        let theirs = fx.expected(&format!("{prefix}transformers/gray16.png"), &table);
        let differ = ours
            .levels
            .iter()
            .zip(&theirs.levels)
            .filter(|(a, b)| a != b)
            .count();
        let white = theirs.levels.iter().filter(|&&l| l == 255).count();
        println!(
            "{prefix}gray16.png: transformers' own output differs from ours in {differ} of {} \
             values ({:.1}% of its values are 255: Pillow's clip)",
            ours.levels.len(),
            100.0 * white as f64 / theirs.levels.len() as f64
        );
        assert!(differ > ours.levels.len() / 2);
    }
}

/// Pillow's decoded pixels of a fixture JPEG, as an RGB image.
fn pillow_decoded(fx: &Fixture, name: &str) -> image::RgbImage {
    let (shape, data) = fx.raw(&format!("decoded/{name}"), Dtype::U8);
    assert_eq!(shape.len(), 3, "decoded/{name}: {shape:?}");
    assert_eq!(shape[2], 3, "decoded/{name}: {shape:?}");
    image::RgbImage::from_raw(shape[1] as u32, shape[0] as u32, data).unwrap()
}

/// (values that differ, pixels that differ, largest difference in levels) between two decodings.
fn pixel_diff(ours: &image::RgbImage, pillow: &image::RgbImage) -> (usize, usize, u8) {
    let (mut values, mut pixels, mut max) = (0, 0, 0u8);
    for (a, b) in ours.pixels().zip(pillow.pixels()) {
        let d = (0..3).map(|c| a[c].abs_diff(b[c])).max().unwrap();
        max = max.max(d);
        values += (0..3).filter(|&c| a[c] != b[c]).count();
        pixels += usize::from(d > 0);
    }
    (values, pixels, max)
}

/// The decoder on its own: libjpeg-turbo set up as Pillow sets it up gives Pillow's pixels.
#[test]
fn jpeg_decoding_matches_pillow_bit_for_bit() {
    let fx = Fixture::load();
    let mut failures = Vec::new();
    for name in JPEGS {
        let pillow = pillow_decoded(&fx, name);
        let ours = match load_image(&dir().join(name)) {
            Ok(img) => to_rgb8(&img),
            Err(e) => {
                failures.push(format!("{name}: {e:#}"));
                continue;
            }
        };
        if ours.dimensions() != pillow.dimensions() {
            failures.push(format!(
                "{name}: {:?}, Pillow {:?}",
                ours.dimensions(),
                pillow.dimensions()
            ));
            continue;
        }
        let (values, pixels, max) = pixel_diff(&ours, &pillow);
        if values > 0 {
            let first = ours.pixels().zip(pillow.pixels()).position(|(a, b)| a != b);
            let (x, y) = first.map_or((0, 0), |i| {
                (i as u32 % ours.width(), i as u32 / ours.width())
            });
            failures.push(format!(
                "{name}: {values} values in {pixels} pixels differ from Pillow's, by up to {max} \
                 levels; first at (x {x}, y {y}): ours {:?}, Pillow {:?}",
                ours.get_pixel(x, y).0,
                pillow.get_pixel(x, y).0
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// With Pillow's decoded pixels as input the preprocessing itself is exact, so every
/// difference in the next test is the decoder's.
#[test]
fn jpeg_preprocessing_of_pillow_pixels_is_exact() {
    let fx = Fixture::load();
    let mut failures = Vec::new();
    for &(prefix, file, table) in CONFIGS {
        let cfg = config(file);
        let table = fx.table(table);
        for name in JPEGS {
            let key = format!("{prefix}{name}");
            let want = fx.expected(&key, &table);
            let px = preprocess_rgb(&pillow_decoded(&fx, name), &cfg).unwrap();
            if let Some(msg) = bit_diff(&key, &px.data, (px.height, px.width), &want, &table) {
                failures.push(msg);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The browser build's decoder (no libjpeg there): how far zune-jpeg is from Pillow on every
/// fixture, decoded and after preprocessing, printed for the README and bounded.
#[test]
fn pure_rust_jpeg_decoder_is_within_bound() {
    let fx = Fixture::load();
    let (cfg, table) = (config(CONFIGS[0].1), fx.table(CONFIGS[0].2));
    let min_std = cfg.image_std.iter().copied().fold(f64::INFINITY, f64::min);
    // one level of the resized image is 1/255/std in the normalised tensor, give or take the
    // float32 rounding of the two values compared
    let bound = PURE_RUST_MAX_PREPROCESSED_LEVELS / 255.0 / min_std + 1e-6;
    let mut failures = Vec::new();
    for name in JPEGS {
        let pillow = pillow_decoded(&fx, name);
        let bytes = std::fs::read(dir().join(name)).unwrap();
        let exempt = PURE_RUST_UNBOUNDED.iter().find(|(n, _)| n == name);
        let img = match decode_image_pure_rust(&bytes) {
            Ok(img) => img,
            Err(e) => {
                println!("{name}: zune-jpeg refuses it: {e:#}");
                if exempt.is_none() {
                    failures.push(format!("{name}: {e:#}"));
                }
                continue;
            }
        };
        let ours = to_rgb8(&img);
        assert_eq!(ours.dimensions(), pillow.dimensions(), "{name}: size");
        let (values, pixels, max) = pixel_diff(&ours, &pillow);
        let px = vit_hybrid::preprocess::preprocess(&img, &cfg).unwrap();
        let want = fx.expected(name, &table);
        let (mut max_abs, mut differ) = (0f64, 0usize);
        for (g, w) in px.data.iter().zip(&want.values) {
            max_abs = max_abs.max((f64::from(*g) - f64::from(*w)).abs());
            differ += usize::from(g.to_bits() != w.to_bits());
        }
        let n = pillow.width() as usize * pillow.height() as usize;
        println!(
            "{name}: decoded: max {max} level(s), {pixels} of {n} pixels ({:.1}%), {values} of \
             {} values; tensor: {differ} of {} values ({:.1}%), max abs diff {max_abs:.4}",
            100.0 * pixels as f64 / n as f64,
            3 * n,
            px.data.len(),
            100.0 * differ as f64 / px.data.len() as f64
        );
        if let Some((_, why)) = exempt {
            println!("  (not bounded: {why})");
        } else if max > PURE_RUST_MAX_DECODER_LEVELS || max_abs > bound {
            failures.push(format!(
                "{name}: {max} levels decoded (bound {PURE_RUST_MAX_DECODER_LEVELS}), {max_abs} \
                 in the tensor (bound {bound})"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every image the generator wrote is tested, and every stored tensor is used.
#[test]
fn fixture_list_is_complete() {
    let fx = Fixture::load();
    let meta = fx.metadata();
    let images: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&meta["images"]).unwrap();
    let listed: BTreeSet<&str> = images.keys().map(String::as_str).collect();
    let tested: BTreeSet<&str> = PNGS.iter().chain(JPEGS).copied().collect();
    assert_eq!(
        listed, tested,
        "images in expected.safetensors vs this test"
    );

    let mut keys: BTreeSet<String> = BTreeSet::new();
    for &(prefix, _, table) in CONFIGS {
        keys.insert(table.to_string());
        for name in &tested {
            keys.insert(format!("{prefix}{name}"));
        }
        keys.insert(format!("{prefix}transformers/gray16.png"));
    }
    for name in JPEGS {
        keys.insert(format!("decoded/{name}"));
    }
    let stored: BTreeSet<String> = fx.st().names().into_iter().map(String::from).collect();
    assert_eq!(stored, keys, "tensors in expected.safetensors");
    println!(
        "fixtures made with Pillow {}, transformers {}",
        meta["pillow"], meta["transformers"]
    );
}
