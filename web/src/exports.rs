//! The functions `vit-hybrid.js` calls. Results are plain JS objects; failures reject with
//! the library's message (what failed, on which file or tensor, what was expected).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use anyhow::{Context, Result};
use js_sys::{Array, Float32Array, Object, Reflect};
use vit_hybrid::model::Precision;
use vit_hybrid::{Gpu, Model, input, preprocess};
use wasm_bindgen::prelude::*;
use web_time::Instant;

thread_local! {
    static GPU: RefCell<Option<Arc<Gpu>>> = const { RefCell::new(None) };
    static MODEL: RefCell<Option<Rc<Model>>> = const { RefCell::new(None) };
    /// The last classified image's pixels, for `profile`.
    static LAST_PIXELS: RefCell<Option<Rc<Vec<f32>>>> = const { RefCell::new(None) };
}

fn js_err(e: anyhow::Error) -> JsError {
    JsError::new(&format!("{e:#}"))
}

#[wasm_bindgen(start)]
fn start() {
    // A panic aborts the module; say why in the console instead of "unreachable".
    std::panic::set_hook(Box::new(|info| {
        web_sys::console::error_1(&format!("vit-hybrid panicked: {info}").into());
    }));
}

/// The page's device, opened on first use. (An `Arc` because the library shares it so
/// natively; the page has one thread, so its handles need not be Send.)
#[allow(clippy::arc_with_non_send_sync)]
async fn gpu() -> Result<Arc<Gpu>> {
    if let Some(g) = GPU.with_borrow(Clone::clone) {
        return Ok(g);
    }
    let g = Arc::new(Gpu::new_browser().await?);
    GPU.with_borrow_mut(|slot| slot.get_or_insert(g).clone());
    Ok(GPU.with_borrow(Clone::clone).expect("just set"))
}

fn model() -> Result<Rc<Model>> {
    MODEL
        .with_borrow(Clone::clone)
        .context("no model is loaded: call vitHybrid.load(baseUrl) first")
}

fn set(obj: &Object, key: &str, value: impl Into<JsValue>) {
    // Setting a property on a fresh plain object cannot fail.
    let _ = Reflect::set(obj, &key.into(), &value.into());
}

/// Loads a model from its three files' contents, checked as the native loader checks them.
/// Replaces the current model only on success.
#[wasm_bindgen(js_name = loadModel)]
pub async fn load_model(
    config_json: String,
    preprocessor_json: String,
    safetensors: Vec<u8>,
    f16: bool,
) -> Result<JsValue, JsError> {
    let gpu = gpu().await.map_err(js_err)?;
    let precision = if f16 { Precision::F16 } else { Precision::F32 };
    let mut model = Model::from_bytes(
        gpu,
        &config_json,
        &preprocessor_json,
        &safetensors,
        precision,
    )
    .await
    .map_err(js_err)?;
    drop(safetensors);
    // Awaited slices: the browser's GPU process never holds one submission for the seconds a
    // CPU adapter (SwiftShader) takes for the full-size model, so the page keeps compositing
    // and no watchdog sees a hung GPU. On a GPU it costs a few round trips.
    model.set_submission_flops(Some(vit_hybrid::model::INTERACTIVE_SUBMISSION_FLOPS));
    // Build the one-image plan (buffers, pipelines) now, under error scopes: a model past
    // the adapter's limits fails here, at load, without spending a forward pass on it.
    let gpu = model.gpu().clone();
    gpu.checked("preparing the forward pass", async || model.prepare(1))
        .await
        .map_err(js_err)?;
    MODEL.with_borrow_mut(|m| *m = Some(Rc::new(model)));
    LAST_PIXELS.with_borrow_mut(|p| *p = None);
    info().await
}

/// Decodes an encoded image (PNG, JPEG, WebP, GIF, BMP, ...), preprocesses it as the
/// checkpoint's processor does and classifies it: `{top: [{index, label, probability}],
/// logits: number[], width, height, timing: {decodeMs, forwardMs}}`.
#[wasm_bindgen]
pub async fn classify(bytes: Vec<u8>, top_k: usize) -> Result<JsValue, JsError> {
    let model = model().map_err(js_err)?;
    let t = Instant::now();
    let image = preprocess::decode_image(&bytes)
        .context("the image")
        .map_err(js_err)?;
    let pixels = input::from_image(&image, &model).map_err(js_err)?;
    let decode_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let mut results = model
        .classify_async(&pixels, 1, top_k)
        .await
        .map_err(js_err)?;
    let forward_ms = t.elapsed().as_secs_f64() * 1e3;
    let result = results
        .pop()
        .context("the forward pass returned no result")
        .and_then(|r| r)
        .map_err(js_err)?;
    LAST_PIXELS.with_borrow_mut(|p| *p = Some(Rc::new(pixels)));

    let top = Array::new();
    for p in &result.top {
        let o = Object::new();
        set(&o, "index", p.index as u32);
        set(&o, "label", p.label.as_str());
        set(&o, "probability", p.probability);
        top.push(&o);
    }
    let out = Object::new();
    set(&out, "top", top);
    // Through a Float32Array so each logit arrives as the exact f32 value.
    let logits = Float32Array::from(result.logits.as_slice());
    set(&out, "logits", Array::from(&logits));
    set(&out, "width", image.width());
    set(&out, "height", image.height());
    let timing = Object::new();
    set(&timing, "decodeMs", decode_ms);
    set(&timing, "forwardMs", forward_ms);
    set(&out, "timing", timing);
    Ok(out.into())
}

/// GPU time per shader of one forward pass of the last classified image (timestamp queries
/// where the device has them, else each dispatch submitted alone and timed on the page):
/// `{method, totalMs, shaders: [{name, ms, dispatches}]}`, largest first.
#[wasm_bindgen]
pub async fn profile() -> Result<JsValue, JsError> {
    let model = model().map_err(js_err)?;
    let pixels = LAST_PIXELS
        .with_borrow(Clone::clone)
        .context("no image classified yet")
        .map_err(js_err)?;
    let (times, method) = model.profile_async(&pixels, 1).await.map_err(js_err)?;
    let rows = vit_hybrid::profile::aggregate(&times, |t| format!("{}:{}", t.kernel, t.entry));
    let shaders = Array::new();
    for r in &rows {
        let o = Object::new();
        set(&o, "name", r.key.as_str());
        set(&o, "ms", r.seconds * 1e3);
        set(&o, "dispatches", r.dispatches as u32);
        shaders.push(&o);
    }
    let out = Object::new();
    set(
        &out,
        "method",
        match method {
            vit_hybrid::profile::Method::Timestamps => "timestamps",
            vit_hybrid::profile::Method::SeparateSubmissions => "separate submissions",
        },
    );
    set(
        &out,
        "totalMs",
        times.iter().map(|t| t.seconds).sum::<f64>() * 1e3,
    );
    set(&out, "shaders", shaders);
    Ok(out.into())
}

/// The adapter (opening the device if needed) and the model, if one is loaded.
#[wasm_bindgen]
pub async fn info() -> Result<JsValue, JsError> {
    let gpu = gpu().await.map_err(js_err)?;
    let adapter = Object::new();
    let i = &gpu.info;
    set(&adapter, "name", i.name.as_str());
    set(&adapter, "vendor", i.vendor.to_string());
    set(&adapter, "driver", i.driver.as_str());
    set(&adapter, "description", gpu.describe());
    set(&adapter, "deviceType", format!("{:?}", i.device_type));
    let features = gpu.device.features();
    let names = Array::new();
    for (name, f) in [
        ("timestamp-query", wgpu::Features::TIMESTAMP_QUERY),
        ("shader-f16", wgpu::Features::SHADER_F16),
    ] {
        if features.contains(f) {
            names.push(&name.into());
        }
    }
    set(&adapter, "features", names);
    let l = gpu.limits();
    set(
        &adapter,
        "maxStorageBufferBindingSize",
        l.max_storage_buffer_binding_size as f64,
    );
    set(&adapter, "maxBufferSize", l.max_buffer_size as f64);
    set(
        &adapter,
        "maxTextureDimension2D",
        l.max_texture_dimension_2d,
    );
    let out = Object::new();
    set(&out, "adapter", adapter);
    match MODEL.with_borrow(Clone::clone) {
        Some(m) => {
            let o = Object::new();
            set(&o, "labels", m.config.num_labels() as u32);
            let (h, w) = m.config.image_size;
            set(
                &o,
                "imageSize",
                Array::of2(&(h as u32).into(), &(w as u32).into()),
            );
            set(&o, "hiddenSize", m.config.hidden_size as u32);
            set(&o, "layers", m.config.num_hidden_layers as u32);
            set(&o, "parameters", m.info.parameter_count as f64);
            set(&o, "tensors", m.info.tensor_count as u32);
            set(&o, "precision", m.precision().as_str());
            set(&o, "weightBytes", m.weight_bytes() as f64);
            set(&o, "linearVariant", format!("{:?}", m.linear_variant()));
            set(&out, "model", o);
        }
        None => set(&out, "model", JsValue::NULL),
    }
    Ok(out.into())
}
