//! Image files that Pillow (and so transformers) refuses are errors here too, naming the file
//! and the cause; what Pillow forgives decodes. Each case was checked against Pillow 13.

use std::path::{Path, PathBuf};

use vit_hybrid::preprocess::load_image;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/preprocess")
        .join(name)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn error(path: &Path) -> String {
    match load_image(path) {
        Ok(_) => panic!("{} should be refused", path.display()),
        Err(e) => format!("{e:#}"),
    }
}

/// PNG chunks as (type, offset, data length).
fn chunks(png: &[u8]) -> Vec<([u8; 4], usize, usize)> {
    let mut out = Vec::new();
    let mut i = 8;
    while i + 8 <= png.len() {
        let len = u32::from_be_bytes(png[i..i + 4].try_into().unwrap()) as usize;
        out.push((png[i + 4..i + 8].try_into().unwrap(), i, len));
        i += 12 + len;
    }
    out
}

#[test]
fn truncated_jpegs_are_refused_wherever_cut() {
    let dir = tempfile::tempdir().unwrap();
    let jpeg = std::fs::read(fixture("photo.jpg")).unwrap();
    let whole = load_image(&fixture("photo.jpg")).unwrap();
    for cut in [3000, jpeg.len() / 2, jpeg.len() - 2, jpeg.len() - 1] {
        let p = write(dir.path(), &format!("cut{cut}.jpg"), &jpeg[..cut]);
        let e = error(&p);
        assert!(
            e.contains(&format!("cut{cut}.jpg")) && e.contains("truncated"),
            "{e}"
        );
    }
    let mut header_then_garbage = jpeg[..600].to_vec();
    header_then_garbage.extend((0..=255u8).cycle().take(5120));
    let p = write(dir.path(), "garbage.jpg", &header_then_garbage);
    assert!(error(&p).contains("garbage.jpg"));
    // Pillow ignores what follows the end-of-image marker.
    let mut trailing = jpeg.clone();
    trailing.extend_from_slice(b"trailing bytes");
    let p = write(dir.path(), "trailing.jpg", &trailing);
    assert_eq!(load_image(&p).unwrap(), whole);
}

#[test]
fn png_refusals_and_what_pillow_forgives() {
    let dir = tempfile::tempdir().unwrap();
    let png = std::fs::read(fixture("rgb.png")).unwrap();
    let whole = load_image(&fixture("rgb.png")).unwrap();
    let cs = chunks(&png);
    let (_, idat, idat_len) = *cs.iter().find(|c| &c.0 == b"IDAT").unwrap();

    let p = write(dir.path(), "half.png", &png[..png.len() / 2]);
    assert!(error(&p).contains("half.png"));
    let mut bad_header = png.clone();
    bad_header[8 + 8 + 13] ^= 0xFF; // IHDR's CRC
    let p = write(dir.path(), "bad_ihdr_crc.png", &bad_header);
    assert!(error(&p).contains("bad_ihdr_crc.png"));
    let mut garbage = png[..33].to_vec();
    garbage.extend((0..=255u8).cycle().take(1024));
    let p = write(dir.path(), "garbage.png", &garbage);
    assert!(error(&p).contains("garbage.png"));

    // Pillow never checks IDAT's CRC (zlib has its own checksum) and needs no IEND.
    let mut bad_idat_crc = png.clone();
    bad_idat_crc[idat + 8 + idat_len] ^= 0xFF;
    let p = write(dir.path(), "bad_idat_crc.png", &bad_idat_crc);
    assert_eq!(load_image(&p).unwrap(), whole);
    let p = write(dir.path(), "no_iend.png", &png[..png.len() - 12]);
    assert_eq!(load_image(&p).unwrap(), whole);
    // A broken zlib stream inside IDAT is still an error.
    let mut bad_data = png.clone();
    for b in &mut bad_data[idat + 8 + 100..idat + 8 + 200] {
        *b ^= 0x5A;
    }
    let p = write(dir.path(), "bad_data.png", &bad_data);
    assert!(error(&p).contains("bad_data.png"));
}
