//! A bounded fuzz run of every parser, in the ordinary test suite (stable Rust, no libFuzzer):
//! the committed fixtures are mutated by a small seeded mutator and fed, as files, through the
//! entry points the CLI uses. Every input must end in `Ok` or `Err`: no panic, no hang (each
//! input is timed), no allocation beyond the limits the code states (a counting allocator
//! records the largest single allocation and the peak of live bytes per input).
//!
//! The cargo-fuzz targets in `fuzz/` run the same entry points for longer (README, Fuzzing).
//! `FUZZ_INPUTS_SCALE=10 cargo test --release --test fuzz_parsers -- --nocapture` runs ten
//! times as many inputs; `FUZZ_SEED=n` another sequence.

use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use vit_hybrid::config::ModelConfig;
use vit_hybrid::model::weights::{self, HostWeights};
use vit_hybrid::preprocess::{self, PreprocessConfig};
use vit_hybrid::{input, npy};

/// Counts live bytes, their peak and the largest single allocation since the last `reset`.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        p
    }
}

fn grew(size: usize) {
    let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
    PEAK.fetch_max(live, Ordering::Relaxed);
    LARGEST.fetch_max(size, Ordering::Relaxed);
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Starts measuring one input; returns the live bytes it starts from.
fn reset() -> usize {
    let live = LIVE.load(Ordering::Relaxed);
    PEAK.store(live, Ordering::Relaxed);
    LARGEST.store(0, Ordering::Relaxed);
    live
}

/// A hang guard, not a performance threshold: the slowest fixture takes milliseconds. It
/// applies to the thread's CPU time where the OS reports it (Linux), because a machine shared
/// with other builds stretches wall time fivefold; elsewhere to wall time.
const HANG_LIMIT: Duration = Duration::from_secs(5);
/// Wall time past which an input counts as hung even where CPU time is measured (blocked).
const WALL_LIMIT: Duration = Duration::from_secs(60);
/// Wall time past which the watchdog ends the process, naming the input: a real infinite loop
/// never returns to be measured.
const WATCHDOG_LIMIT: Duration = Duration::from_secs(300);

/// CPU time this thread has run (`/proc/thread-self/schedstat`, nanoseconds), where available.
fn thread_cpu_time() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace()
        .next()?
        .parse()
        .ok()
        .map(Duration::from_nanos)
}

/// The input being run and since when, for the watchdog.
static CURRENT: std::sync::Mutex<Option<(Instant, PathBuf)>> = std::sync::Mutex::new(None);

fn start_watchdog() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        std::thread::spawn(|| {
            loop {
                std::thread::sleep(Duration::from_secs(1));
                let current = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
                if let Some((since, path)) = current.as_ref()
                    && since.elapsed() > WATCHDOG_LIMIT
                {
                    eprintln!(
                        "fuzz input {} has run for {:?}: hung; aborting (the input is left there)",
                        path.display(),
                        since.elapsed()
                    );
                    std::process::abort();
                }
            }
        });
    });
}

/// The allocation limits the code states, per parser: (largest single allocation, peak live
/// bytes above the start), given the input file's length.
fn limits(kind: Kind, file_len: usize) -> (usize, usize) {
    const MIB: usize = 1 << 20;
    match kind {
        // Reading the text, then sizes capped by config::MAX_* (at most ~115k expected tensors).
        Kind::Config => (file_len + 16 * MIB, 64 * MIB + 8 * file_len),
        // The preprocessed tensor is capped at MAX_OUTPUT_ELEMENTS f32 (plus its u8 canvas).
        Kind::Preprocessor => {
            let out = 4 * preprocess::MAX_OUTPUT_ELEMENTS;
            (out, out + out / 4 + 64 * MIB)
        }
        // Every tensor converted to f32 (at most twice the file's bytes for f16/bf16), plus the
        // header's parse, whose length is capped at MAX_HEADER_BYTES.
        Kind::Safetensors => (
            2 * file_len + MIB,
            2 * file_len + 16 * weights::MAX_HEADER_BYTES as usize,
        ),
        // The data is exactly what the file holds; the header is capped at MAX_HEADER_BYTES.
        Kind::Npy => (
            file_len + MIB,
            file_len + npy::MAX_HEADER_BYTES as usize + MIB,
        ),
        // The decoder (output buffer included) under MAX_DECODE_BYTES, the RGB copy of at most
        // MAX_IMAGE_PIXELS, the file's bytes, and the model's small tensor.
        Kind::Image => {
            let decode = preprocess::MAX_DECODE_BYTES as usize;
            let rgb = 3 * preprocess::MAX_IMAGE_PIXELS as usize;
            (decode, decode + rgb + 2 * file_len + 16 * MIB)
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Config,
    Preprocessor,
    Safetensors,
    Npy,
    Image,
}

/// splitmix64: small, seeded, the same sequence on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

/// Integers that sit on the edges parsers get wrong (sizes, lengths, counts).
const INTERESTING: [u64; 14] = [
    0,
    1,
    2,
    0x7F,
    0x80,
    0xFF,
    0x100,
    0x7FFF,
    0xFFFF,
    0x1_0000,
    0x7FFF_FFFF,
    0xFFFF_FFFF,
    0x7FFF_FFFF_FFFF_FFFF,
    u64::MAX,
];

/// One random edit of `b`. `hot` is how many leading bytes hold the header: most edits land
/// there, where a corrupt byte changes what the parser does rather than only a pixel.
fn mutate_bytes(b: &mut Vec<u8>, hot: usize, rng: &mut Rng, others: &[&[u8]]) {
    let pos = |rng: &mut Rng, len: usize| {
        if rng.chance(4) {
            rng.below(len)
        } else {
            rng.below(hot.min(len))
        }
    };
    if b.is_empty() {
        b.push(rng.next() as u8);
        return;
    }
    match rng.below(10) {
        0 => {
            let i = pos(rng, b.len());
            b[i] ^= 1 << rng.below(8);
        }
        1 => {
            let i = pos(rng, b.len());
            b[i] = [0, 0xFF, 0x7F, 0x80, 1, rng.next() as u8][rng.below(6)];
        }
        2 => {
            // An integer field overwritten, either byte order, 1 to 8 bytes wide.
            let v = INTERESTING[rng.below(INTERESTING.len())];
            let width = [1, 2, 4, 8][rng.below(4)];
            let bytes = if rng.chance(2) {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            };
            let bytes = if bytes[0] == 0 && width < 8 {
                &bytes[8 - width..]
            } else {
                &bytes[..width]
            };
            let i = pos(rng, b.len());
            for (k, &x) in bytes.iter().enumerate() {
                if let Some(d) = b.get_mut(i + k) {
                    *d = x;
                }
            }
        }
        3 => {
            let cut = pos(rng, b.len());
            b.truncate(cut);
        }
        4 => {
            let i = pos(rng, b.len() + 1);
            let n = 1 + rng.below(16);
            let ins: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            b.splice(i..i, ins);
        }
        5 => {
            // A chunk duplicated in place (repeated chunks, doubled markers).
            let i = pos(rng, b.len());
            let n = 1 + rng.below(64.min(b.len() - i));
            let chunk = b[i..i + n].to_vec();
            let at = pos(rng, b.len() + 1);
            b.splice(at..at, chunk);
        }
        6 => {
            let i = pos(rng, b.len());
            let n = 1 + rng.below(64.min(b.len() - i));
            b.drain(i..i + n);
        }
        7 => {
            // Splice: our head, another fixture's tail (or the other way round).
            let other = others[rng.below(others.len())];
            let i = pos(rng, b.len());
            let j = rng.below(other.len());
            if rng.chance(2) {
                b.truncate(i);
                b.extend_from_slice(&other[j..]);
            } else {
                let mut head = other[..j].to_vec();
                head.extend_from_slice(&b[i..]);
                *b = head;
            }
        }
        8 => {
            let i = pos(rng, b.len());
            let n = 1 + rng.below(32.min(b.len() - i));
            let v = rng.next() as u8;
            b[i..i + n].fill(v);
        }
        _ => {
            // An ASCII digit changed: npy shapes and JSON numbers are text.
            let digits: Vec<usize> = (0..b.len()).filter(|&i| b[i].is_ascii_digit()).collect();
            if !digits.is_empty() {
                let i = digits[rng.below(digits.len())];
                b[i] = match rng.below(3) {
                    0 => b'0',
                    1 => b'9',
                    _ => b'0' + rng.below(10) as u8,
                };
                if rng.chance(3) {
                    b.splice(i..i, std::iter::repeat_n(b'9', 1 + rng.below(24)));
                }
            }
        }
    }
}

/// Values a config field should be checked against: zeros, negatives, huge and tiny numbers,
/// wrong types, empty and long containers.
fn interesting_json(rng: &mut Rng) -> Value {
    let vals = [
        "0",
        "1",
        "-1",
        "2",
        "3",
        "7",
        "8",
        "255",
        "65536",
        "65537",
        "2147483648",
        "4294967296",
        "9007199254740993",
        "18446744073709551615",
        "-9223372036854775808",
        "0.0",
        "-0.0",
        "0.5",
        "1e-300",
        "1e300",
        "-1e300",
        "null",
        "true",
        "false",
        "\"\"",
        "\"same\"",
        "\"stem\"",
        "\"stage9\"",
        "\"stage0\"",
        "\"stage18446744073709551616\"",
        "\"bottleneck\"",
        "\"gelu\"",
        "[]",
        "{}",
        "[0]",
        "[1, 2]",
        "[0, 0, 0]",
        "[1e300, 1e300, 1e300]",
        "[65536, 65536, 65536, 65536]",
        "[1024, 1024, 1024, 1024, 1024, 1024, 1024, 1024]",
        "{\"height\": 1, \"width\": 1}",
        "{\"height\": 65536, \"width\": 65536}",
        "{\"shortest_edge\": 65536}",
        "{\"longest_edge\": 5}",
        "{\"0\": \"a\", \"2\": \"b\"}",
        "{\"0\": \"a\", \"00\": \"b\"}",
    ];
    serde_json::from_str(vals[rng.below(vals.len())]).expect("valid JSON")
}

/// Every node of `v` as a JSON pointer.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                pointers(
                    x,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                pointers(x, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// One JSON-aware edit: a value replaced (by an interesting one or another node of any
/// fixture), a key removed or added, an array element duplicated or dropped.
fn mutate_json(text: &[u8], rng: &mut Rng, keys: &[String], others: &[&[u8]]) -> Option<Vec<u8>> {
    let mut v: Value = serde_json::from_slice(text).ok()?;
    let mut ptrs = Vec::new();
    pointers(&v, String::new(), &mut ptrs);
    let target = ptrs[rng.below(ptrs.len())].clone();
    let node = v.pointer_mut(&target)?;
    match rng.below(6) {
        0 | 1 => *node = interesting_json(rng),
        2 => {
            // A node of another fixture, so the value has a plausible shape.
            let other: Value = serde_json::from_slice(others[rng.below(others.len())]).ok()?;
            let mut op = Vec::new();
            pointers(&other, String::new(), &mut op);
            let p = &op[rng.below(op.len())];
            *node = other.pointer(p)?.clone();
        }
        3 => match node {
            Value::Object(m) if !m.is_empty() => {
                let k = m.keys().nth(rng.below(m.len()))?.clone();
                m.remove(&k);
            }
            Value::Array(a) if !a.is_empty() => {
                let i = rng.below(a.len());
                a.remove(i);
            }
            _ => *node = interesting_json(rng),
        },
        4 => match node {
            Value::Object(m) => {
                let k = keys[rng.below(keys.len())].clone();
                m.insert(k, interesting_json(rng));
            }
            Value::Array(a) if !a.is_empty() => {
                let i = rng.below(a.len());
                let x = a[i].clone();
                let n = [1, 7, 100][rng.below(3)];
                a.extend(std::iter::repeat_n(x, n));
            }
            _ => *node = interesting_json(rng),
        },
        _ => {
            // Numbers nudged by one, where off-by-one bounds live.
            if let Some(n) = node.as_u64() {
                *node = Value::from(if rng.chance(2) {
                    n.saturating_add(1)
                } else {
                    n.saturating_sub(1)
                });
            } else {
                *node = interesting_json(rng);
            }
        }
    }
    serde_json::to_vec_pretty(&v).ok()
}

/// One fixture: its bytes, the file extension the CLI keys on, and its header's length.
struct Seed {
    bytes: Vec<u8>,
    ext: &'static str,
    hot: usize,
    /// The model folder whose other files go with it (configs and weights are checked
    /// against each other).
    model: Option<PathBuf>,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("reading fixture {}: {e}", p.display()))
}

const MODELS: [&str; 3] = ["tiny", "odd", "patch2"];

fn seeds(kind: Kind) -> Vec<Seed> {
    let r = root();
    let model = |m: &str| Some(r.join("tests/fixtures").join(m));
    match kind {
        Kind::Config => {
            let mut s: Vec<Seed> = MODELS
                .iter()
                .map(|m| Seed {
                    bytes: read(&r.join(format!("tests/fixtures/{m}/config.json"))),
                    ext: "json",
                    hot: usize::MAX,
                    model: model(m),
                })
                .collect();
            s.push(Seed {
                bytes: read(&r.join("tests/data/vit-hybrid-base-bit-384.config.json")),
                ext: "json",
                hot: usize::MAX,
                model: None,
            });
            s
        }
        Kind::Preprocessor => [
            "tests/fixtures/tiny/preprocessor_config.json",
            "tests/fixtures/preprocess/preprocessor_config.json",
            "tests/fixtures/preprocess/preprocessor_config_clip.json",
            "tests/data/vit-hybrid-base-bit-384.preprocessor_config.json",
        ]
        .iter()
        .map(|p| Seed {
            bytes: read(&r.join(p)),
            ext: "json",
            hot: usize::MAX,
            model: None,
        })
        .collect(),
        Kind::Safetensors => MODELS
            .iter()
            .map(|m| {
                let bytes = read(&r.join(format!("tests/fixtures/{m}/model.safetensors")));
                let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
                Seed {
                    bytes,
                    ext: "safetensors",
                    hot: 8 + header,
                    model: model(m),
                }
            })
            .collect(),
        Kind::Npy => npy_seeds(),
        Kind::Image => image_seeds(),
    }
}

/// `.npy` files as `vit-hybrid preprocess` writes them (the tiny model's input shapes, and
/// small ones), and format v2/v3 headers NumPy writes for long headers.
fn npy_seeds() -> Vec<Seed> {
    let dir = tempfile::tempdir().unwrap();
    let mut out = Vec::new();
    for shape in [vec![3, 96, 96], vec![1, 3, 96, 96], vec![2, 3], vec![]] {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n).map(|i| (i % 17) as f32 * 0.25 - 2.0).collect();
        let p = dir.path().join("seed.npy");
        npy::write_f32(&p, &shape, &data).unwrap();
        let bytes = read(&p);
        for version in [1u8, 2, 3] {
            let bytes = if version == 1 {
                bytes.clone()
            } else {
                // Same header text, 4-byte length.
                let len = u16::from_le_bytes([bytes[8], bytes[9]]) as u32;
                let mut b = b"\x93NUMPY".to_vec();
                b.extend_from_slice(&[version, 0]);
                b.extend_from_slice(&len.to_le_bytes());
                b.extend_from_slice(&bytes[10..]);
                b
            };
            out.push(Seed {
                hot: 12 + u16::from_le_bytes([bytes[8], bytes[9]]) as usize,
                bytes,
                ext: "npy",
                model: None,
            });
        }
    }
    out
}

/// Every committed image, and the per-format seeds (tests/fixtures/fuzz/images, written by
/// `write_fuzz_seeds`) for the formats the fixtures do not cover.
fn image_seeds() -> Vec<Seed> {
    let mut paths: Vec<PathBuf> = Vec::new();
    for dir in [
        "tests/fixtures/preprocess",
        "tests/fixtures/decode",
        "tests/fixtures/fuzz/images",
        "examples/images",
        "examples/images/digits",
    ] {
        for e in std::fs::read_dir(root().join(dir)).unwrap().flatten() {
            let p = e.path();
            let ext = p.extension().and_then(|e| e.to_str()).unwrap_or_default();
            if p.is_file() && !["md", "json", "safetensors"].contains(&ext) {
                paths.push(p);
            }
        }
    }
    paths.sort();
    paths
        .iter()
        .map(|p| Seed {
            bytes: read(p),
            // The format is taken from the content, so one extension serves all.
            ext: "img",
            hot: 1024,
            model: None,
        })
        .collect()
}

/// The pixels every per-format seed is encoded from: a crop of the bundled photo, small so a
/// mutated seed decodes in microseconds.
fn seed_image() -> image::RgbaImage {
    let photo = image::open(root().join("examples/images/chelsea.png")).unwrap();
    let mut img = photo.crop_imm(150, 40, 40, 28).to_rgba8();
    for (x, y, p) in img.enumerate_pixels_mut() {
        p[3] = ((x * 7 + y * 3) % 256) as u8;
    }
    img
}

/// Writes tests/fixtures/fuzz: one small image per format and colour type the decoders treat
/// differently, and the small `.npy` seeds (the cargo-fuzz targets start from these too).
/// Run by hand after changing the formats:
/// `cargo test --release --test fuzz_parsers -- --ignored write_fuzz_seeds`.
#[test]
#[ignore]
fn write_fuzz_seeds() {
    let _serial = serial();
    use image::{DynamicImage, ImageFormat};
    let dir = root().join("tests/fixtures/fuzz/images");
    std::fs::create_dir_all(&dir).unwrap();
    let rgba = DynamicImage::ImageRgba8(seed_image());
    let rgb = DynamicImage::ImageRgb8(rgba.to_rgb8());
    let gray = DynamicImage::ImageLuma8(rgba.to_luma8());
    let rgb16 = DynamicImage::ImageRgb16(rgba.to_rgb16());
    let cases: [(&str, &DynamicImage, ImageFormat); 16] = [
        ("rgb.gif", &rgb, ImageFormat::Gif),
        ("rgba.gif", &rgba, ImageFormat::Gif),
        ("rgb.bmp", &rgb, ImageFormat::Bmp),
        ("rgba.bmp", &rgba, ImageFormat::Bmp),
        ("gray.bmp", &gray, ImageFormat::Bmp),
        ("rgb.tiff", &rgb, ImageFormat::Tiff),
        ("rgb16.tiff", &rgb16, ImageFormat::Tiff),
        ("gray.tiff", &gray, ImageFormat::Tiff),
        ("rgba.webp", &rgba, ImageFormat::WebP),
        ("rgb.webp", &rgb, ImageFormat::WebP),
        ("rgb.ppm", &rgb, ImageFormat::Pnm),
        ("gray.pgm", &gray, ImageFormat::Pnm),
        ("rgb.qoi", &rgb, ImageFormat::Qoi),
        ("rgba.qoi", &rgba, ImageFormat::Qoi),
        ("rgb.tga", &rgb, ImageFormat::Tga),
        ("rgba.tga", &rgba, ImageFormat::Tga),
    ];
    for (name, img, format) in cases {
        img.save_with_format(dir.join(name), format).unwrap();
    }
    let dir = root().join("tests/fixtures/fuzz/npy");
    std::fs::create_dir_all(&dir).unwrap();
    for (i, s) in npy_seeds().iter().enumerate() {
        if s.bytes.len() < 1024 {
            std::fs::write(dir.join(format!("seed{i}.npy")), &s.bytes).unwrap();
        }
    }
}

/// Writes one input where the CLI would find it and runs the CLI's entry point on it.
fn run_one(kind: Kind, seed: &Seed, path: &Path, pre: &PreprocessConfig, tiny: &ModelConfig) {
    match kind {
        Kind::Config => {
            if let Ok(cfg) = ModelConfig::load(path) {
                let _ = (cfg.multiply_adds(), cfg.seq_len(), cfg.parameter_count());
                // The loader checks the weights against this config next.
                if let Some(m) = &seed.model {
                    let _ = HostWeights::load(&m.join("model.safetensors"), &cfg);
                }
            }
        }
        Kind::Preprocessor => {
            if let Ok(cfg) = PreprocessConfig::load(path) {
                for (w, h) in [(7, 5), (1, 3), (40, 1)] {
                    let img =
                        image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 7]));
                    let _ = preprocess::preprocess_rgb(&img, &cfg);
                }
            }
        }
        Kind::Safetensors => {
            let m = seed.model.as_ref().expect("weights belong to a model");
            if let Ok(cfg) = ModelConfig::load(&m.join("config.json")) {
                let _ = HostWeights::load(path, &cfg);
            }
        }
        Kind::Npy | Kind::Image => {
            let _ = input::load(path, tiny, pre);
        }
    }
}

struct Report {
    inputs: usize,
    slowest: Duration,
    largest: usize,
    peak: usize,
}

/// Runs `count` mutated inputs of `kind`; returns what was measured, or the first failures.
fn fuzz(kind: Kind, count: usize, seed: u64, scratch: &Path) -> Result<Report, Vec<String>> {
    let seeds = seeds(kind);
    let all: Vec<&[u8]> = seeds.iter().map(|s| s.bytes.as_slice()).collect();
    let mut keys: Vec<String> = Vec::new();
    if matches!(kind, Kind::Config | Kind::Preprocessor) {
        for s in &seeds {
            let v: Value = serde_json::from_slice(&s.bytes).unwrap();
            let mut p = Vec::new();
            pointers(&v, String::new(), &mut p);
            keys.extend(
                p.iter()
                    .filter_map(|p| p.rsplit('/').next().map(str::to_string)),
            );
        }
        keys.retain(|k| !k.is_empty() && k.parse::<usize>().is_err());
        keys.sort();
        keys.dedup();
    }
    let pre = PreprocessConfig::load(&root().join("tests/fixtures/tiny/preprocessor_config.json"))
        .unwrap();
    let tiny = ModelConfig::load(&root().join("tests/fixtures/tiny/config.json")).unwrap();
    let mut rng = Rng(seed ^ (kind as u64).wrapping_mul(0x1234_5678_9ABC_DEF1));
    let mut failures = Vec::new();
    let mut report = Report {
        inputs: 0,
        slowest: Duration::ZERO,
        largest: 0,
        peak: 0,
    };
    for n in 0..count {
        let s = &seeds[rng.below(seeds.len())];
        let mut bytes = s.bytes.clone();
        for _ in 0..1 + rng.below(4) {
            let json = !keys.is_empty() && rng.chance(2);
            match json
                .then(|| mutate_json(&bytes, &mut rng, &keys, &all))
                .flatten()
            {
                Some(b) => bytes = b,
                None => mutate_bytes(&mut bytes, s.hot, &mut rng, &all),
            }
        }
        let path = scratch.join(format!("input.{}", s.ext));
        std::fs::write(&path, &bytes).unwrap();
        let (largest_limit, peak_limit) = limits(kind, bytes.len());
        *CURRENT.lock().unwrap() = Some((Instant::now(), path.clone()));
        let cpu_start = thread_cpu_time();
        let start_live = reset();
        let t = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| run_one(kind, s, &path, &pre, &tiny)));
        let wall = t.elapsed();
        let largest = LARGEST.load(Ordering::Relaxed);
        let peak = PEAK.load(Ordering::Relaxed).saturating_sub(start_live);
        let took = match (cpu_start, thread_cpu_time()) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => wall,
        };
        *CURRENT.lock().unwrap() = None;
        report.inputs += 1;
        report.slowest = report.slowest.max(took);
        report.largest = report.largest.max(largest);
        report.peak = report.peak.max(peak);
        let problem = if let Err(p) = result {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Some(format!("panicked: {msg}"))
        } else if took > HANG_LIMIT || wall > WALL_LIMIT {
            Some(format!(
                "took {took:?} ({wall:?} of wall time), over the {HANG_LIMIT:?} hang limit"
            ))
        } else if largest > largest_limit {
            Some(format!(
                "allocated {largest} bytes at once, over its limit of {largest_limit}"
            ))
        } else if peak > peak_limit {
            Some(format!(
                "held {peak} bytes at its peak, over its limit of {peak_limit}"
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            let keep =
                std::env::temp_dir().join(format!("vit-hybrid-fuzz-{kind:?}-{seed}-{n}.{}", s.ext));
            std::fs::write(&keep, &bytes).unwrap();
            failures.push(format!(
                "{kind:?} input {n} {problem}; the input is saved at {}",
                keep.display()
            ));
            if failures.len() >= 5 {
                break;
            }
        }
    }
    if failures.is_empty() {
        Ok(report)
    } else {
        Err(failures)
    }
}

/// Inputs per parser: together about 10 s of CPU in release (wall time stretches on a shared
/// machine: 60-90 s there with other builds running on its 2 cores). Safetensors inputs are
/// the dearest (each converts a whole fixture's weights).
const INPUTS: [(Kind, usize); 5] = [
    (Kind::Config, 2500),
    (Kind::Preprocessor, 2500),
    (Kind::Safetensors, 400),
    (Kind::Npy, 2000),
    (Kind::Image, 3000),
];

/// Tests in this binary run one at a time: the allocation counters are process-wide.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn mutated_fixtures_never_panic_hang_or_overallocate() {
    let _serial = serial();
    let scale: usize = std::env::var("FUZZ_INPUTS_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(9);
    let scratch = tempfile::tempdir().unwrap();
    start_watchdog();
    let mut failures = Vec::new();
    let mut total = 0;
    for (kind, count) in INPUTS {
        let t = Instant::now();
        match fuzz(kind, count * scale, seed, scratch.path()) {
            Ok(r) => {
                total += r.inputs;
                println!(
                    "{kind:?}: {} inputs in {:.1?}, slowest {:.1?}, largest allocation {} B, \
                     peak {} B",
                    r.inputs,
                    t.elapsed(),
                    r.slowest,
                    r.largest,
                    r.peak
                );
            }
            Err(f) => failures.extend(f),
        }
    }
    println!("{total} mutated inputs tried (seed {seed})");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// Regressions: one per bug the fuzzers found, each the smallest input that showed it.

/// The tiny fixture's config.json with `edit` applied.
fn tiny_config_with(edit: impl FnOnce(&mut Value)) -> String {
    let mut v: Value =
        serde_json::from_slice(&read(&root().join("tests/fixtures/tiny/config.json"))).unwrap();
    edit(&mut v);
    v.to_string()
}

/// Parses `text`, which must fail quickly, within `max_alloc` bytes at once, naming `what`.
fn assert_config_refused(text: &str, what: &str, max_alloc: usize) {
    reset();
    let t = Instant::now();
    let err = match catch_unwind(|| ModelConfig::from_json_str(text)) {
        Ok(Ok(_)) => panic!("config should be refused ({what})"),
        Ok(Err(e)) => format!("{e:#}"),
        Err(_) => panic!("config parsing panicked ({what})"),
    };
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "{what}: {:?}",
        t.elapsed()
    );
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(largest <= max_alloc, "{what}: allocated {largest} bytes");
    assert!(err.contains(what), "error should name {what:?}: {err}");
}

#[test]
fn config_sizes_that_would_hang_overflow_or_exhaust_memory_are_refused() {
    let _serial = serial();
    // A stage of 2^60 layers: `expected_tensors` looped for ever.
    let text = tiny_config_with(|v| v["backbone_config"]["depths"][0] = Value::from(1u64 << 60));
    assert_config_refused(&text, "depths", 1 << 20);
    let text = tiny_config_with(|v| v["num_hidden_layers"] = Value::from(1u64 << 40));
    assert_config_refused(&text, "num_hidden_layers", 1 << 20);
    // 2^40 labels without id2label: one String each, before any check.
    let text = tiny_config_with(|v| {
        v.as_object_mut().unwrap().remove("id2label");
        v["num_labels"] = Value::from(1u64 << 40);
    });
    assert_config_refused(&text, "num_labels", 1 << 20);
    // Stage widths past u64 once multiplied (`multiply_adds`, shapes): overflow panics in
    // debug builds.
    let text = tiny_config_with(|v| v["backbone_config"]["width_factor"] = Value::from(1e300));
    assert_config_refused(&text, "width_factor", 1 << 20);
    let text =
        tiny_config_with(|v| v["backbone_config"]["hidden_sizes"][0] = Value::from(1u64 << 40));
    assert_config_refused(&text, "hidden_sizes", 1 << 20);
    let text = tiny_config_with(|v| v["image_size"] = Value::from(1 << 19));
    assert_config_refused(&text, "image_size", 1 << 20);
    // 64 stages: the output-stride loop doubled its stride past usize.
    let text = tiny_config_with(|v| {
        let b = &mut v["backbone_config"];
        b["depths"] = Value::from(vec![1; 64]);
        b["hidden_sizes"] = Value::from(vec![8; 64]);
        b["out_features"] = Value::from(vec!["stage64"]);
        b["output_stride"] = Value::from(u64::MAX);
    });
    assert_config_refused(&text, "stages", 1 << 20);
    // "50" and "050" both index 50, leaving 550 without a label: an `expect` panicked.
    let text = tiny_config_with(|v| {
        let m = v["id2label"].as_object_mut().unwrap();
        m.remove("5");
        m.insert("05".into(), Value::from("five again"));
        m.remove("6");
        m.insert("5".into(), Value::from("five"));
    });
    assert_config_refused(&text, "two keys for index 5", 1 << 20);
    // Each size alone in range, together 4 * 65536^2 * 1024 parameters.
    let text = tiny_config_with(|v| {
        v["hidden_size"] = Value::from(65536);
        v["num_attention_heads"] = Value::from(1);
        v["num_hidden_layers"] = Value::from(1024);
    });
    assert_config_refused(&text, "parameters", 64 << 20);
}

/// A large file that is no image is refused from its first bytes: not read (or allocated)
/// whole first.
#[test]
fn a_large_non_image_is_refused_without_reading_it() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zeros.jpg");
    std::fs::write(&path, vec![0u8; 64 << 20]).unwrap();
    reset();
    let err = format!("{:#}", preprocess::load_image(&path).unwrap_err());
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(err.contains("unrecognised image format"), "{err}");
    assert!(
        largest < 1 << 20,
        "allocated {largest} bytes before refusing"
    );
}

/// A minimal PNG: signature, IHDR for `w` x `h` RGB, one empty IDAT, IEND.
fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    let chunk = |kind: &[u8; 4], body: &[u8]| {
        let mut c = (body.len() as u32).to_be_bytes().to_vec();
        c.extend_from_slice(kind);
        c.extend_from_slice(body);
        let mut crc = !0u32;
        for &b in kind.iter().chain(body) {
            crc ^= b as u32;
            for _ in 0..8 {
                crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
            }
        }
        c.extend_from_slice(&(!crc).to_be_bytes());
        c
    };
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(
        b"IDAT",
        &[0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ));
    png.extend(chunk(b"IEND", &[]));
    png
}

#[test]
fn decompression_bombs_are_refused_before_the_pixels_are_allocated() {
    let _serial = serial();
    // 16000 x 16000 RGB: 768 MB of pixels, 256M pixels (over
    // Pillow's limit). The decoder allocated the whole buffer before finding no data.
    let png = png_header_only(16000, 16000);
    reset();
    let err = format!("{:#}", preprocess::decode_image(&png).unwrap_err());
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(err.contains("decompression bomb"), "{err}");
    assert!(
        largest < 1 << 20,
        "allocated {largest} bytes before refusing"
    );
    // At the limit itself the header is accepted (and the missing data is the error).
    let side = (preprocess::MAX_IMAGE_PIXELS as f64).sqrt() as u32;
    let err = format!(
        "{:#}",
        preprocess::decode_image(&png_header_only(side, side)).unwrap_err()
    );
    assert!(!err.contains("decompression bomb"), "{err}");
}

/// GIF and PNM headers that claim many pixels over a few bytes of data (src/decode/) fail
/// before a buffer of that size exists: PNM checks the data's length against the header, GIF
/// decodes its frame in chunks of at most 1 MiB and stops where the data does.
#[test]
fn lying_gif_and_pnm_headers_fail_before_allocating_their_pixels() {
    let _serial = serial();
    let gif = read(&root().join("tests/fixtures/decode/gif_offset.gif"));
    let mut big_frame = gif.clone();
    // Its 256-entry global table, then the image descriptor.
    let at = 13 + 3 * 256;
    assert_eq!(big_frame[at], 0x2C);
    // 16384 x 10000: within the limits, 164 MB of indices and 492 MB of RGB if trusted.
    big_frame[at + 5..at + 9].copy_from_slice(&[0x00, 0x40, 0x10, 0x27]);
    let mut big_screen = gif;
    big_screen[6..10].copy_from_slice(&[0xFF; 4]);
    let cases: [(&str, Vec<u8>); 4] = [
        ("binary PPM", b"P6 16000 10000 100\n\x01\x02\x03".to_vec()),
        ("plain PPM", b"P3 16000 10000 1000\n1 2 3\n".to_vec()),
        ("GIF frame", big_frame),
        ("GIF screen", big_screen),
    ];
    for (what, bytes) in cases {
        reset();
        let err = preprocess::decode_image(&bytes).unwrap_err();
        let largest = LARGEST.load(Ordering::Relaxed);
        assert!(
            largest <= 2 << 20,
            "{what}: allocated {largest} bytes before refusing ({err:#})"
        );
    }
}

#[test]
fn tga_files_are_decoded() {
    let _serial = serial();
    // TGA has no magic number, so guessing the format from the content never found it: every
    // .tga the CLI was given was "unrecognised image format".
    let img = image::RgbImage::from_fn(5, 3, |x, y| image::Rgb([x as u8 * 40, y as u8 * 80, 9]));
    let mut tga = Vec::new();
    image::DynamicImage::ImageRgb8(img.clone())
        .write_to(&mut std::io::Cursor::new(&mut tga), image::ImageFormat::Tga)
        .unwrap();
    let decoded = preprocess::decode_image(&tga).unwrap();
    assert_eq!(decoded.to_rgb8(), img);
    let err = format!(
        "{:#}",
        preprocess::decode_image(b"definitely not an image").unwrap_err()
    );
    assert!(err.contains("unrecognised image format"), "{err}");
}

#[test]
fn header_lengths_are_capped_before_parsing() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    // safetensors: a header length of 1 GiB in front of a 1 GiB file would be parsed.
    let mut st = (1u64 << 30).to_le_bytes().to_vec();
    st.extend_from_slice(b"{}");
    let tiny = ModelConfig::load(&root().join("tests/fixtures/tiny/config.json")).unwrap();
    let err = format!(
        "{:#}",
        HostWeights::from_bytes(&st, &tiny, "m.safetensors").unwrap_err()
    );
    assert!(err.contains("more than the"), "{err}");
    // npy: a v2 header of 1 MB, longer than NumPy reads.
    let mut npy = b"\x93NUMPY\x02\x00".to_vec();
    npy.extend_from_slice(&(1u32 << 20).to_le_bytes());
    npy.extend(std::iter::repeat_n(b' ', 1 << 20));
    let p = dir.path().join("long.npy");
    std::fs::write(&p, &npy).unwrap();
    let err = format!("{:#}", npy::read_f32(&p).unwrap_err());
    assert!(
        err.contains("long.npy") && err.contains("more than the"),
        "{err}"
    );
}
