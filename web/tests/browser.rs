//! The library in a real browser (headless Chromium, its WebGPU on SwiftShader here), run by
//! scripts/web_test.sh through wasm-bindgen-test-runner: every fixture model's logits
//! against transformers' float64 run, PNG preprocessing bit for bit against transformers,
//! and a broken image and broken models each a clear error. Files are compiled in (a test
//! page has no file system).
#![cfg(target_arch = "wasm32")]

use std::sync::Arc;

use safetensors::{Dtype, SafeTensors};
use vit_hybrid::model::{Model, Precision};
use vit_hybrid::preprocess::{PreprocessConfig, decode_image, preprocess};
use vit_hybrid::{Gpu, input};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// Largest |logit - float64 logit| (as tests/reference.rs natively).
const LOGIT_TOLERANCE: f64 = 1e-4;

struct Fixture {
    name: &'static str,
    config: &'static str,
    preprocessor: &'static str,
    weights: &'static [u8],
    reference: &'static [u8],
}

macro_rules! fixture {
    ($name:literal) => {
        Fixture {
            name: $name,
            config: include_str!(concat!("../../tests/fixtures/", $name, "/config.json")),
            preprocessor: include_str!(concat!(
                "../../tests/fixtures/",
                $name,
                "/preprocessor_config.json"
            )),
            weights: include_bytes!(concat!(
                "../../tests/fixtures/",
                $name,
                "/model.safetensors"
            )),
            reference: include_bytes!(concat!(
                "../../tests/fixtures/",
                $name,
                "/reference.safetensors"
            )),
        }
    };
}

/// Every fixture with a float64 reference (tools/make_fixtures.py).
fn fixtures() -> [Fixture; 3] {
    [fixture!("tiny"), fixture!("odd"), fixture!("patch2")]
}

#[allow(clippy::arc_with_non_send_sync)] // one thread in the browser
async fn gpu() -> Arc<Gpu> {
    match Gpu::new_browser().await {
        Ok(g) => Arc::new(g),
        Err(e) => panic!("these tests need WebGPU in the browser: {e:#}"),
    }
}

fn f64_tensor(st: &SafeTensors, name: &str) -> (Vec<usize>, Vec<f64>) {
    let t = st
        .tensor(name)
        .unwrap_or_else(|e| panic!("reference tensor {name}: {e}"));
    assert_eq!(t.dtype(), Dtype::F64, "{name} should be float64");
    let data = t
        .data()
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
        .collect();
    (t.shape().to_vec(), data)
}

/// A fixture's model at `precision` and its reference input: (model, batch, pixels, logits).
async fn run_fixture(
    gpu: &Arc<Gpu>,
    f: &Fixture,
    precision: Precision,
) -> (Model, usize, Vec<f32>, Vec<f32>) {
    let model = Model::from_bytes(gpu.clone(), f.config, f.preprocessor, f.weights, precision)
        .await
        .unwrap_or_else(|e| panic!("{}: loading ({precision}): {e:#}", f.name));
    let st = SafeTensors::deserialize(f.reference).unwrap();
    let (shape, pixels) = f64_tensor(&st, "pixel_values");
    let pixels: Vec<f32> = pixels.iter().map(|&v| v as f32).collect();
    let batch = shape[0];
    let logits = model
        .forward_async(&pixels, batch)
        .await
        .unwrap_or_else(|e| panic!("{}: forward ({precision}): {e:#}", f.name));
    (model, batch, pixels, logits)
}

#[wasm_bindgen_test]
async fn every_fixture_matches_transformers() {
    let gpu = gpu().await;
    for f in fixtures() {
        let (model, batch, pixels, logits) = run_fixture(&gpu, &f, Precision::F32).await;
        let st = SafeTensors::deserialize(f.reference).unwrap();
        let (lshape, want) = f64_tensor(&st, "logits");
        assert_eq!(logits.len(), lshape.iter().product::<usize>(), "{}", f.name);
        let (worst, at) = logits
            .iter()
            .zip(&want)
            .map(|(&g, &w)| (g as f64 - w).abs())
            .enumerate()
            .fold((0.0f64, 0), |(m, a), (i, d)| {
                if d > m || d.is_nan() { (d, i) } else { (m, a) }
            });
        web_sys::console::log_1(&format!("{}: logits largest |diff| {worst:.3e}", f.name).into());
        assert!(
            worst <= LOGIT_TOLERANCE,
            "{}: logit {at} is {} but transformers gives {} (|diff| {worst:e} > {LOGIT_TOLERANCE:e})",
            f.name,
            logits[at],
            want[at]
        );
        // Sliced submissions (what the page uses) give the same logits.
        let mut sliced = model;
        sliced.set_submission_flops(Some(1.0));
        let again = sliced.forward_async(&pixels, batch).await.unwrap();
        assert_eq!(again, logits, "{}: sliced submissions differ", f.name);
    }
}

const PNGS: &[(&str, &[u8])] = &[
    (
        "rgb.png",
        include_bytes!("../../tests/fixtures/preprocess/rgb.png"),
    ),
    (
        "rgba.png",
        include_bytes!("../../tests/fixtures/preprocess/rgba.png"),
    ),
    (
        "gray.png",
        include_bytes!("../../tests/fixtures/preprocess/gray.png"),
    ),
    (
        "gray_alpha.png",
        include_bytes!("../../tests/fixtures/preprocess/gray_alpha.png"),
    ),
    (
        "gray_2bit.png",
        include_bytes!("../../tests/fixtures/preprocess/gray_2bit.png"),
    ),
    (
        "palette.png",
        include_bytes!("../../tests/fixtures/preprocess/palette.png"),
    ),
    (
        "palette_trns.png",
        include_bytes!("../../tests/fixtures/preprocess/palette_trns.png"),
    ),
    (
        "gray16.png",
        include_bytes!("../../tests/fixtures/preprocess/gray16.png"),
    ),
    (
        "gray_alpha16.png",
        include_bytes!("../../tests/fixtures/preprocess/gray_alpha16.png"),
    ),
    (
        "rgb16.png",
        include_bytes!("../../tests/fixtures/preprocess/rgb16.png"),
    ),
    (
        "rgba16.png",
        include_bytes!("../../tests/fixtures/preprocess/rgba16.png"),
    ),
    (
        "rgb_interlaced.png",
        include_bytes!("../../tests/fixtures/preprocess/rgb_interlaced.png"),
    ),
    (
        "small.png",
        include_bytes!("../../tests/fixtures/preprocess/small.png"),
    ),
    (
        "tall_1px.png",
        include_bytes!("../../tests/fixtures/preprocess/tall_1px.png"),
    ),
    (
        "wide_1px.png",
        include_bytes!("../../tests/fixtures/preprocess/wide_1px.png"),
    ),
];

/// (key prefix, config, level table) per config, as in tests/preprocess_reference.rs.
const CONFIGS: &[(&str, &str, &str)] = &[
    (
        "",
        include_str!("../../tests/fixtures/preprocess/preprocessor_config.json"),
        "table/default",
    ),
    (
        "clip/",
        include_str!("../../tests/fixtures/preprocess/preprocessor_config_clip.json"),
        "table/clip",
    ),
];

const EXPECTED: &[u8] = include_bytes!("../../tests/fixtures/preprocess/expected.safetensors");

/// Every PNG fixture decodes and preprocesses to transformers' `pixel_values` bit for bit
/// (stored as u8 levels plus each config's float32 value per level).
#[wasm_bindgen_test]
fn pngs_preprocess_exactly_as_transformers() {
    let st = SafeTensors::deserialize(EXPECTED).unwrap();
    let mut failures = Vec::new();
    for &(prefix, config, table_name) in CONFIGS {
        let cfg = PreprocessConfig::from_json_str(config).unwrap();
        let t = st.tensor(table_name).unwrap();
        assert_eq!(t.shape(), [3, 256], "{table_name}");
        let table: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        for &(name, bytes) in PNGS {
            let key = format!("{prefix}{name}");
            let want = st.tensor(&key).unwrap();
            assert_eq!(want.dtype(), Dtype::U8, "{key}");
            let (h, w) = (want.shape()[1], want.shape()[2]);
            let plane = h * w;
            let got = match decode_image(bytes).and_then(|img| preprocess(&img, &cfg)) {
                Ok(p) => p,
                Err(e) => {
                    failures.push(format!("{key}: {e:#}"));
                    continue;
                }
            };
            if (got.height, got.width) != (h, w) {
                failures.push(format!(
                    "{key}: {}x{} pixels, expected {w}x{h}",
                    got.width, got.height
                ));
                continue;
            }
            let wrong = got
                .data
                .iter()
                .zip(want.data())
                .enumerate()
                .filter(|&(i, (&g, &l))| {
                    g.to_bits() != table[(i / plane) * 256 + usize::from(l)].to_bits()
                })
                .count();
            if wrong > 0 {
                failures.push(format!(
                    "{key}: {wrong} of {} values differ",
                    got.data.len()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A broken image is an error that says what is wrong, not a panic or an answer.
#[wasm_bindgen_test]
async fn a_broken_image_is_a_clear_error() {
    let f = &fixtures()[0];
    let model = Model::from_bytes(
        gpu().await,
        f.config,
        f.preprocessor,
        f.weights,
        Precision::F32,
    )
    .await
    .unwrap();
    let png = PNGS[0].1;
    for (what, bytes) in [
        ("not an image", b"definitely not an image".as_slice()),
        ("a truncated PNG", &png[..png.len() / 2]),
        ("nothing", &[][..]),
    ] {
        let err = decode_image(bytes)
            .and_then(|img| input::from_image(&img, &model))
            .expect_err(what);
        let msg = format!("{err:#}");
        assert!(
            ["image", "PNG", "format", "decod"]
                .iter()
                .any(|w| msg.contains(w)),
            "{what}: unclear error: {msg}"
        );
    }
}

/// Broken models are errors naming the file and what was expected.
#[wasm_bindgen_test]
async fn a_broken_model_is_a_clear_error() {
    let gpu = gpu().await;
    let f = &fixtures()[0];
    let cut = &f.weights[..f.weights.len() / 2];
    let cases: [(&str, &str, &str, &[u8], &str); 5] = [
        (
            "truncated weights",
            f.config,
            f.preprocessor,
            cut,
            "model.safetensors",
        ),
        (
            "no weights",
            f.config,
            f.preprocessor,
            &[],
            "model.safetensors",
        ),
        (
            "a config that is not JSON",
            "{",
            f.preprocessor,
            f.weights,
            "config.json",
        ),
        (
            "weights of another model",
            fixtures()[1].config,
            fixtures()[1].preprocessor,
            f.weights,
            "tensor",
        ),
        (
            "a preprocessor that never fits the model",
            fixtures()[1].config,
            f.preprocessor,
            fixtures()[1].weights,
            "image_size",
        ),
    ];
    for (what, config, pre, weights, needle) in cases {
        let err = Model::from_bytes(gpu.clone(), config, pre, weights, Precision::F32)
            .await
            .err()
            .unwrap_or_else(|| panic!("{what}: loaded without error"));
        let msg = format!("{err:#}");
        assert!(
            msg.contains(needle),
            "{what}: error does not name {needle}: {msg}"
        );
    }
}

/// f16 linear weights (unpacked from u32 pairs where the browser has no `shader-f16`, as on
/// SwiftShader) stay within the bound tests/reference.rs states natively: relative L2 error
/// of the logits against float64 at most 5e-3.
#[wasm_bindgen_test]
async fn f16_weights_stay_close() {
    let gpu = gpu().await;
    for f in fixtures() {
        let (_, _, _, logits) = run_fixture(&gpu, &f, Precision::F16).await;
        let st = SafeTensors::deserialize(f.reference).unwrap();
        let (_, want) = f64_tensor(&st, "logits");
        let num: f64 = logits
            .iter()
            .zip(&want)
            .map(|(&g, &w)| (g as f64 - w).powi(2))
            .sum();
        let den: f64 = want.iter().map(|w| w * w).sum();
        let err = (num / den).sqrt();
        assert!(
            err <= 5e-3,
            "{}: f16 logits relative L2 error {err:e} > 5e-3",
            f.name
        );
    }
}

/// A model whose activations do not fit the adapter's buffer limits (the tiny model at an
/// image size past them) fails with a message naming the limit, not a GPU crash.
#[wasm_bindgen_test]
async fn a_model_past_the_adapters_limits_is_a_clear_error() {
    use vit_hybrid::config::ModelConfig;
    use vit_hybrid::model::weights::HostWeights;
    let gpu = gpu().await;
    let f = &fixtures()[0];
    let limit = gpu.max_binding_bytes() as f64;
    // The stem's output, (size / 2)^2 x 16 channels of f32, passes the limit.
    let side = 32 * ((2.0 * (limit / 64.0).sqrt() + 64.0) / 32.0).ceil() as usize;
    let mut json: serde_json::Value = serde_json::from_str(f.config).unwrap();
    json["image_size"] = side.into();
    json["backbone_featmap_shape"][2] = (side / 16).into();
    json["backbone_featmap_shape"][3] = (side / 16).into();
    let config = ModelConfig::from_json_str(&json.to_string()).unwrap();
    let pre = PreprocessConfig::from_json_str(f.preprocessor).unwrap();
    let weights = HostWeights::random(&config, 0);
    let err = async {
        let model = Model::from_weights_with(gpu.clone(), config, pre, &weights, Precision::F32)?;
        gpu.checked("preparing", async || model.prepare(1)).await
    }
    .await
    .expect_err("a model past the adapter's limits loaded");
    let msg = format!("{err:#}");
    assert!(msg.contains("binds at most"), "unclear error: {msg}");
}
