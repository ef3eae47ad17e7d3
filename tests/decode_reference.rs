//! Decoded pixels against Pillow's, bit for bit, for the files where the `image` crate alone
//! differs (src/decode/): GIFs whose first frame does not cover the screen (offset, past the
//! screen, local tables, transparency, interlaced, animated, no table, gray-ramp table, short
//! table), TIFFs with associated alpha (8 and 16 bits, uncompressed, LZW, deflate, both byte
//! orders) and PNM files with maxval other than 255 (binary and plain, 1 to 65535) or plain with
//! comments in the data.
//!
//! Fixtures: tests/fixtures/decode, written by tools/make_decode_fixtures.py (Pillow 13).
//! `expected.safetensors` holds `np.asarray(Image.open(f).convert("RGB"))` of each file, except
//! 16-bit gray PNM, where it holds the high byte of Pillow's mode-I values: the crate's
//! documented deviation (README, Preprocessing). Its metadata also says, for cut copies of the
//! GIF and PNM files, whether Pillow opens them; we must agree.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};
use vit_hybrid::preprocess::{decode_image, decode_image_pure_rust, load_image, to_rgb8};

const FILES: &[&str] = &[
    "gif_offset.gif",
    "gif_offset_trns.gif",
    "gif_local_palette.gif",
    "gif_past_screen.gif",
    "gif_interlaced.gif",
    "gif_animated.gif",
    "gif_no_palette.gif",
    "gif_gray_ramp.gif",
    "gif_short_table.gif",
    "rgba_premul.tif",
    "rgba_premul_lzw.tif",
    "rgba_premul_deflate_be.tif",
    "rgba16_premul.tif",
    "rgba_unassoc.tif",
    "rgb_max100.ppm",
    "gray_max100.pgm",
    "rgb_max1.ppm",
    "gray_max1_plain.pgm",
    "gray_max2.pgm",
    "rgb_max100_plain.ppm",
    "rgb_max1000.ppm",
    "rgb_max1000_plain.ppm",
    "rgb_max65535.ppm",
    "gray_max1000.pgm",
    "rgb_max255_plain.ppm",
];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/decode")
}

fn expected_bytes() -> Vec<u8> {
    let path = dir().join("expected.safetensors");
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (regenerate with tools/make_decode_fixtures.py)",
            path.display()
        )
    })
}

fn metadata(bytes: &[u8], key: &str) -> serde_json::Value {
    let (_, meta) = SafeTensors::read_metadata(bytes).unwrap();
    let text = meta.metadata().as_ref().unwrap()[key].clone();
    serde_json::from_str(&text).unwrap()
}

/// Pillow's pixels of one fixture.
fn pillow(st: &SafeTensors<'_>, name: &str) -> image::RgbImage {
    let t = st
        .tensor(name)
        .unwrap_or_else(|e| panic!("expected.safetensors has no {name}: {e}"));
    assert_eq!(t.dtype(), Dtype::U8, "{name}");
    let s = t.shape();
    assert!(s.len() == 3 && s[2] == 3, "{name}: shape {s:?}");
    image::RgbImage::from_raw(s[1] as u32, s[0] as u32, t.data().to_vec()).unwrap()
}

/// None when equal; otherwise the size, or the count and first differing pixel.
fn diff(ours: &image::RgbImage, pillow: &image::RgbImage) -> Option<String> {
    if ours.dimensions() != pillow.dimensions() {
        return Some(format!(
            "{:?}, Pillow {:?}",
            ours.dimensions(),
            pillow.dimensions()
        ));
    }
    let differ = ours.pixels().zip(pillow.pixels()).filter(|(a, b)| a != b);
    let count = differ.clone().count();
    let first = ours
        .pixels()
        .zip(pillow.pixels())
        .position(|(a, b)| a != b)?;
    let (x, y) = (first as u32 % ours.width(), first as u32 / ours.width());
    Some(format!(
        "{count} of {} pixels differ; first at (x {x}, y {y}): ours {:?}, Pillow {:?}",
        ours.width() * ours.height(),
        ours.get_pixel(x, y).0,
        pillow.get_pixel(x, y).0
    ))
}

#[test]
fn decoded_pixels_match_pillow_bit_for_bit() {
    let bytes = expected_bytes();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut failures = Vec::new();
    for name in FILES {
        let want = pillow(&st, name);
        let file = std::fs::read(dir().join(name)).unwrap();
        // The browser build takes the same path for these formats.
        for (what, got) in [
            ("", load_image(&dir().join(name))),
            (" (pure Rust)", decode_image_pure_rust(&file)),
        ] {
            match got {
                Ok(img) => {
                    if let Some(d) = diff(&to_rgb8(&img), &want) {
                        failures.push(format!("{name}{what}: {d}"));
                    }
                }
                Err(e) => failures.push(format!("{name}{what}: {e:#}")),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} decodings differ from Pillow:\n{}",
        failures.len(),
        2 * FILES.len(),
        failures.join("\n")
    );
}

/// Cut copies: we open exactly those Pillow opens (a GIF missing only its trailer, plain PNM
/// missing only its final newline) and refuse the rest.
#[test]
fn truncated_files_are_refused_where_pillow_refuses_them() {
    let bytes = expected_bytes();
    let cuts = metadata(&bytes, "truncations");
    let mut failures = Vec::new();
    let mut checked = 0;
    for (name, cases) in cuts.as_object().unwrap() {
        let file = std::fs::read(dir().join(name)).unwrap();
        for (cut, pillow_opens) in cases.as_object().unwrap() {
            let cut: usize = cut.parse().unwrap();
            let ours = decode_image(&file[..cut]);
            checked += 1;
            if ours.is_ok() != pillow_opens.as_bool().unwrap() {
                failures.push(format!(
                    "{name} cut to {cut} bytes: Pillow {}, ours {}",
                    if pillow_opens.as_bool().unwrap() {
                        "opens it"
                    } else {
                        "refuses it"
                    },
                    match ours {
                        Ok(_) => "Ok".to_string(),
                        Err(e) => format!("{e:#}"),
                    }
                ));
            }
        }
    }
    println!("{checked} cut files checked");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Headers that claim more pixels than the data holds, or than the limits allow, fail
/// cleanly (the fuzz test measures that no large allocation happens first).
#[test]
fn absurd_headers_are_errors() {
    let gif = std::fs::read(dir().join("gif_offset.gif")).unwrap();
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "PPM of 16384 x 16384",
            b"P6 16384 16384 100\n\x01\x02\x03".to_vec(),
        ),
        (
            "PPM of 16000 x 10000, 3 bytes",
            b"P6 16000 10000 100\n\x01\x02\x03".to_vec(),
        ),
        (
            "plain PGM of 16000 x 10000",
            b"P2 16000 10000 100\n1 2 3\n".to_vec(),
        ),
        ("PGM with maxval 0", b"P5 1 1 0\n\x00".to_vec()),
        ("PGM with maxval 65536", b"P5 1 1 65536\n\x00\x00".to_vec()),
        (
            "plain PPM with a sample above maxval",
            b"P3 1 1 100\n1 2 101\n".to_vec(),
        ),
        (
            "plain PPM with a bad token",
            b"P3 1 1 100\n1 2 x\n".to_vec(),
        ),
        (
            "PPM with a header token too long",
            b"P6 00000000001 1 100\n\0\0\0".to_vec(),
        ),
    ];
    // The screen at 65535 x 65535.
    let mut g = gif.clone();
    g[6..10].copy_from_slice(&[0xFF; 4]);
    cases.push(("GIF screen of 65535 x 65535", g));
    // The first frame at 16384 x 10000 (within the limits) with its few bytes of data.
    let mut g = gif.clone();
    // Its 256-entry global table, then the image descriptor.
    let at = 13 + 3 * 256;
    assert_eq!(g[at], 0x2C);
    g[at + 5..at + 9].copy_from_slice(&[0x00, 0x40, 0x10, 0x27]);
    cases.push(("GIF frame of 16384 x 10000, 1 KB of data", g));
    let mut failures = Vec::new();
    for (what, bytes) in cases {
        match decode_image(&bytes) {
            Ok(img) => failures.push(format!("{what}: decoded {}x{}", img.width(), img.height())),
            Err(e) => println!("{what}: {e:#}"),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every file in the folder is tested and has its expected pixels.
#[test]
fn fixture_list_is_complete() {
    let bytes = expected_bytes();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let stored: BTreeSet<String> = st.names().into_iter().map(String::from).collect();
    let on_disk: BTreeSet<String> = std::fs::read_dir(dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".md") && !n.ends_with(".safetensors"))
        .collect();
    let tested: BTreeSet<String> = FILES.iter().map(|s| s.to_string()).collect();
    assert_eq!(stored, tested, "expected.safetensors vs this test");
    assert_eq!(on_disk, tested, "tests/fixtures/decode vs this test");
    let notes = metadata(&bytes, "notes");
    assert_eq!(notes.as_object().unwrap().len(), FILES.len());
}
