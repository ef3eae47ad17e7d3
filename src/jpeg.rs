//! JPEG decoding with libjpeg-turbo's own C decoder, set up the way Pillow sets it up, so that
//! the decoded pixels are Pillow's bit for bit.
//!
//! Why this decoder: Pillow (and so transformers) decodes JPEG with libjpeg-turbo, and any
//! other decoder rounds its IDCT and chroma upsampling differently (the `image` crate's
//! zune-jpeg differs on up to 27% of tensor values). The C source comes from `mozjpeg-sys`,
//! which vendors mozjpeg 4 (a libjpeg-turbo fork whose own work is in the encoder; its decoder
//! is libjpeg-turbo's 2.1 code) and compiles it with the `cc` crate: no cmake, no NASM. SIMD is
//! off; libjpeg-turbo's SIMD kernels are made to give the same bytes as its C ones (islow
//! IDCT, fancy upsampling, colour conversion), and the fixtures, decoded by Pillow 13's SIMD
//! build of libjpeg-turbo 3.2, confirm it. What 3.x added, lossless JPEG, is refused here.
//!
//! What Pillow's decoder (`libImaging/JpegDecode.c`, `JpegImagePlugin.py`) does, and so we do:
//! - mode from the number of components in the frame header: 1 is `L`, 3 is `RGB`
//!   (`out_color_space = JCS_RGB`), 4 is `CMYK` (`JCS_CMYK`, libjpeg turning YCCK into CMYK);
//!   anything else, or samples that are not 8 bits, is refused;
//! - libjpeg's defaults otherwise: the accurate integer IDCT (`JDCT_ISLOW`), fancy upsampling,
//!   block smoothing for progressive files (which changes nothing once every scan is read);
//! - four-component files are taken as Adobe writes them, inverted (`CMYK;I`, whether or not an
//!   Adobe marker is present), then `convert("RGB")` applies Pillow's `cmyk2rgb`;
//! - warnings (corrupt data libjpeg can step over) are not errors: Pillow's `output_message`
//!   prints nothing and nobody reads the warning count;
//! - data that ends before libjpeg has what it needs is "image file is truncated": Pillow's
//!   source manager suspends, finds the file at its end and raises that.
//!
//! One deliberate difference: a file with more than [`MAX_SCANS`] scans is refused, where
//! Pillow would go on. Each scan of a progressive file is a pass over the image, so a small
//! crafted file with thousands of scans takes minutes; encoders write about ten.
//!
//! Errors: libjpeg's `error_exit` must not return. Here it unwinds, as `mozjpeg-sys` documents
//! (its `unwinding` feature compiles the C with `-fexceptions`), carrying the message to the
//! `catch_unwind` in [`decode`]; `resume_unwind` skips the panic hook, so nothing is printed.
//! The decompressor is destroyed on every path, by its `Drop`.

// With panic=abort, the unwinding that carries libjpeg's errors would end the process on the
// first corrupt file.
#[cfg(panic = "abort")]
compile_error!("src/jpeg.rs needs panic = \"unwind\": libjpeg's errors unwind to catch_unwind");

use std::ffi::{c_int, c_long, c_ulong};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use anyhow::{Result, bail};
use mozjpeg_sys as ffi;

/// The colour model of decoded pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Color {
    /// One byte per pixel (Pillow's `L`).
    Gray,
    /// Three bytes per pixel; four-component (CMYK, YCCK) files arrive already converted as
    /// Pillow's `convert("RGB")` converts them.
    Rgb,
}

/// Decoded pixels, rows top to bottom without padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub width: u32,
    pub height: u32,
    pub color: Color,
    pub data: Vec<u8>,
}

/// Limits checked before libjpeg allocates the image.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most pixels (Pillow's decompression-bomb limit).
    pub max_pixels: u64,
    /// Most bytes libjpeg's own buffers may take (whole-image coefficient arrays of progressive
    /// files), and separately the most the decoded pixels may take.
    pub max_bytes: u64,
}

/// Most scans a file may have: Pillow writes 10 for colour and 6 for gray, mozjpeg a few
/// more, a hand-made `jpegtran -scans` script at most one per coefficient band and bit.
pub const MAX_SCANS: c_int = 500;

/// The message an unwinding `error_exit` carries to [`decode`].
struct JpegError(String);

/// Decodes a whole JPEG file held in memory.
pub fn decode(bytes: &[u8], limits: Limits) -> Result<Decoded> {
    let mut d = Decompressor::new();
    match catch_unwind(AssertUnwindSafe(|| d.run(bytes, limits))) {
        Ok(r) => r,
        Err(payload) => match payload.downcast::<JpegError>() {
            Ok(e) => bail!("{}", e.0),
            // A panic of our own (a bug) keeps unwinding; the callers name the file.
            Err(other) => resume_unwind(other),
        },
    }
}

/// A libjpeg decompressor and its error manager, boxed because libjpeg keeps pointers to both.
struct Decompressor {
    cinfo: Box<ffi::jpeg_decompress_struct>,
    _err: Box<ffi::jpeg_error_mgr>,
    _progress: Box<ffi::jpeg_progress_mgr>,
}

impl Decompressor {
    fn new() -> Self {
        // SAFETY: both structs are plain C data for which all-zero is the state libjpeg expects
        // before `jpeg_std_error` / `jpeg_create_decompress` fill them in; both are boxed, so
        // the pointers libjpeg keeps (cinfo.err, the memory manager's back-pointer) stay valid
        // until `drop` destroys the decompressor. `jpeg_create_decompress` itself can only fail
        // on allocation, through `error_exit`, which unwinds to the caller's `catch_unwind`.
        unsafe {
            let mut err: Box<ffi::jpeg_error_mgr> = Box::new(std::mem::zeroed());
            ffi::jpeg_std_error(&mut err);
            err.error_exit = Some(error_exit);
            err.output_message = Some(output_message);
            let mut progress: Box<ffi::jpeg_progress_mgr> = Box::new(std::mem::zeroed());
            progress.progress_monitor = Some(progress_monitor);
            let mut cinfo: Box<ffi::jpeg_decompress_struct> = Box::new(std::mem::zeroed());
            cinfo.common.err = &mut *err;
            ffi::jpeg_create_decompress(&mut *cinfo);
            // After create, which zeroes the struct but for `err`.
            cinfo.common.progress = &mut *progress;
            Decompressor {
                cinfo,
                _err: err,
                _progress: progress,
            }
        }
    }

    /// Everything from the header to the last row. Any libjpeg error unwinds out of here.
    fn run(&mut self, bytes: &[u8], limits: Limits) -> Result<Decoded> {
        let cinfo = &mut *self.cinfo;
        // SAFETY: `bytes` outlives the decompressor's use of it (all of it happens in this
        // call; `drop` reads nothing). The source manager `jpeg_mem_src` installs is libjpeg's
        // own; only its refill callback is replaced.
        unsafe {
            ffi::jpeg_mem_src(cinfo, bytes.as_ptr(), bytes.len() as c_ulong);
            (*cinfo.src).fill_input_buffer = Some(fill_input_buffer);
            (*cinfo.common.mem).max_memory_to_use =
                c_long::try_from(limits.max_bytes).unwrap_or(c_long::MAX);
            ffi::jpeg_read_header(cinfo, 1);
        }
        let (width, height) = (cinfo.image_width, cinfo.image_height);
        let pixels = u64::from(width) * u64::from(height);
        if pixels > limits.max_pixels {
            bail!(
                "{width}x{height} is {pixels} pixels, more than the {} Pillow opens (a \
                 decompression bomb?)",
                limits.max_pixels
            );
        }
        // Samples of other than 8 bits are libjpeg's error (JERR_BAD_PRECISION) already, as
        // they are Pillow's ("cannot handle 12-bit layers").
        let (color, out_space, channels) = match cinfo.num_components {
            1 => (Color::Gray, ffi::J_COLOR_SPACE::JCS_GRAYSCALE, 1),
            3 => (Color::Rgb, ffi::J_COLOR_SPACE::JCS_RGB, 3),
            4 => (Color::Rgb, ffi::J_COLOR_SPACE::JCS_CMYK, 4),
            n => bail!("cannot handle {n}-layer images (as Pillow)"),
        };
        let out_len = width as u64 * height as u64 * if color == Color::Gray { 1 } else { 3 };
        if out_len > limits.max_bytes {
            bail!(
                "{width}x{height} pixels need {out_len} bytes, more than the {} this tool \
                 allocates",
                limits.max_bytes
            );
        }
        cinfo.out_color_space = out_space;
        // libjpeg's defaults already, and what Pillow decodes with (it changes them only in
        // draft mode); set so that a change of defaults cannot change our pixels.
        cinfo.dct_method = ffi::J_DCT_METHOD::JDCT_ISLOW;
        cinfo.do_fancy_upsampling = 1;
        cinfo.do_block_smoothing = 1;
        cinfo.scale_num = 1;
        cinfo.scale_denom = 1;
        let w = width as usize;
        let mut data = vec![0u8; out_len as usize];
        let row_len = w * if color == Color::Gray { 1 } else { 3 };
        let mut cmyk_row = vec![0u8; if channels == 4 { w * 4 } else { 0 }];
        // SAFETY: each `jpeg_read_scanlines` call gets one row pointer to a buffer of
        // `output_width * output_components` bytes, which is `w * channels` since scaling is
        // off and the colour space was fixed above (checked after start).
        unsafe {
            ffi::jpeg_start_decompress(cinfo);
            if cinfo.output_width != width
                || cinfo.output_height != height
                || cinfo.output_components != channels
            {
                bail!(
                    "libjpeg set up {}x{} pixels of {} components for a {width}x{height} image \
                     of {channels}",
                    cinfo.output_width,
                    cinfo.output_height,
                    cinfo.output_components
                );
            }
            for row in data.chunks_exact_mut(row_len.max(1)).take(height as usize) {
                let dest = if channels == 4 {
                    cmyk_row.as_mut_ptr()
                } else {
                    row.as_mut_ptr()
                };
                let mut rows = [dest];
                // Without a suspending source one row is always delivered; 0 would mean
                // libjpeg has no more rows, which the check after start rules out.
                if ffi::jpeg_read_scanlines(cinfo, rows.as_mut_ptr(), 1) != 1 {
                    bail!("libjpeg stopped before the last row");
                }
                if channels == 4 {
                    cmyk_to_rgb(&cmyk_row, row);
                }
            }
            // Reads on to the end-of-image marker: a file cut after its last row is still
            // truncated to Pillow, which calls this too.
            ffi::jpeg_finish_decompress(cinfo);
        }
        Ok(Decoded {
            width,
            height,
            color,
            data,
        })
    }
}

impl Drop for Decompressor {
    fn drop(&mut self) {
        // SAFETY: created in `new`; destroying is valid in any state, including after an
        // error unwound out of the middle of a call, and frees all of libjpeg's memory.
        unsafe { ffi::jpeg_destroy_decompress(&mut self.cinfo) }
    }
}

/// Pillow's `CMYK;I` unpacking (every channel inverted, as Adobe writes CMYK) followed by its
/// `cmyk2rgb` (`libImaging/Convert.c`): `nk - nk * c / 255` per channel with `nk = 255 - k`,
/// where the division is Pillow's rounded `MULDIV255`. Checked against Pillow 13 on every
/// (channel, K) pair.
fn cmyk_to_rgb(cmyk: &[u8], rgb: &mut [u8]) {
    let muldiv255 = |a: u32, b: u32| {
        let t = a * b + 128;
        ((t >> 8) + t) >> 8
    };
    for (o, p) in rgb.chunks_exact_mut(3).zip(cmyk.chunks_exact(4)) {
        let nk = u32::from(p[3]); // 255 - inverted K
        for c in 0..3 {
            let v = 255 - u32::from(p[c]);
            o[c] = (nk - muldiv255(v, nk)) as u8;
        }
    }
}

/// libjpeg wants more input than the file has.
unsafe extern "C-unwind" fn fill_input_buffer(
    _cinfo: &mut ffi::jpeg_decompress_struct,
) -> ffi::boolean {
    resume_unwind(Box::new(JpegError(
        "image file is truncated: the JPEG data ends before the decoder is done".into(),
    )))
}

unsafe extern "C-unwind" fn error_exit(cinfo: &mut ffi::jpeg_common_struct) {
    let msg = format!("corrupt JPEG data: {}", message(cinfo));
    resume_unwind(Box::new(JpegError(msg)))
}

/// Called by libjpeg as it reads each row of blocks of each scan.
unsafe extern "C-unwind" fn progress_monitor(cinfo: &mut ffi::jpeg_common_struct) {
    // SAFETY: installed only on a decompressor, whose struct starts with the common fields.
    let scans = unsafe {
        (*(cinfo as *mut ffi::jpeg_common_struct).cast::<ffi::jpeg_decompress_struct>())
            .input_scan_number
    };
    if scans > MAX_SCANS {
        resume_unwind(Box::new(JpegError(format!(
            "the JPEG has more than {MAX_SCANS} scans; refused, as decoding that many can take \
             minutes"
        ))));
    }
}

/// Pillow's `output_message`: says nothing, so warnings pass silently.
unsafe extern "C-unwind" fn output_message(_cinfo: &mut ffi::jpeg_common_struct) {}

/// libjpeg's text for its current error.
fn message(cinfo: &mut ffi::jpeg_common_struct) -> String {
    // SAFETY: `cinfo.err` is the boxed error manager set in `Decompressor::new`;
    // `format_message` writes at most JMSG_LENGTH_MAX (200) bytes, NUL included, into the
    // buffer. mozjpeg-sys declares the buffer as a shared 80-byte array; it is written to, so
    // the function is called through a pointer type that says so.
    unsafe {
        let Some(format) = cinfo.err.as_ref().and_then(|e| e.format_message) else {
            return "unknown libjpeg error".into();
        };
        let format: unsafe extern "C-unwind" fn(&mut ffi::jpeg_common_struct, *mut u8) =
            std::mem::transmute(format);
        let mut buf = [0u8; 200];
        format(cinfo, buf.as_mut_ptr());
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmyk_conversion_extremes() {
        // Inverted storage: 255 is no ink. No ink and no black is white; full black is black
        // whatever the other inks; full cyan alone leaves no red.
        let mut rgb = [0u8; 9];
        cmyk_to_rgb(
            &[255, 255, 255, 255, 0, 0, 0, 0, 0, 255, 255, 255],
            &mut rgb,
        );
        assert_eq!(rgb, [255, 255, 255, 0, 0, 0, 0, 255, 255]);
    }

    const LIMITS: Limits = Limits {
        max_pixels: u64::MAX,
        max_bytes: 1 << 30,
    };

    /// A progressive fixture with its first scan (header and data) repeated `copies` more times:
    /// libjpeg warns of a bogus progression and goes on, so only the scan count can stop it.
    fn with_repeated_first_scan(copies: usize) -> Vec<u8> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/preprocess/progressive.jpg"
        );
        let b = std::fs::read(path).unwrap();
        let sos = b.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
        let mut end = sos + 2 + usize::from(u16::from_be_bytes([b[sos + 2], b[sos + 3]]));
        while b[end] != 0xFF || matches!(b[end + 1], 0x00 | 0xD0..=0xD7) {
            end += 1;
        }
        let mut out = b[..end].to_vec();
        for _ in 0..copies {
            out.extend_from_slice(&b[sos..end]);
        }
        out.extend_from_slice(&b[end..]);
        out
    }

    #[test]
    fn pixel_count_is_limited_before_decoding() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/preprocess/photo.jpg"
        );
        let b = std::fs::read(path).unwrap();
        let small = Limits {
            max_pixels: 100,
            ..LIMITS
        };
        let e = decode(&b, small).unwrap_err();
        assert!(e.to_string().contains("decompression bomb"), "{e}");
        decode(&b, LIMITS).unwrap();
    }

    #[test]
    fn scan_count_is_limited() {
        decode(&with_repeated_first_scan(20), LIMITS).unwrap();
        let e = decode(&with_repeated_first_scan(MAX_SCANS as usize), LIMITS).unwrap_err();
        assert!(e.to_string().contains("scans"), "{e}");
    }

    /// Without `image_integrity`'s walk in front: libjpeg asking for data past the end is
    /// "truncated", wherever the cut, as under Pillow.
    #[test]
    fn truncation_is_reported_by_the_decoder_itself() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/preprocess/photo.jpg"
        );
        let b = std::fs::read(path).unwrap();
        decode(&b, LIMITS).unwrap();
        for cut in [20, 400, b.len() / 2, b.len() - 2, b.len() - 1] {
            let e = decode(&b[..cut], LIMITS).unwrap_err().to_string();
            assert!(e.contains("truncated"), "cut at {cut}: {e}");
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_crash() {
        for bytes in [
            &b""[..],
            b"\xff\xd8",
            b"\xff\xd8\xff\xdb\x00\x02",
            b"not a jpeg",
        ] {
            assert!(decode(bytes, LIMITS).is_err(), "{bytes:?}");
        }
    }
}
