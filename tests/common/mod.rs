//! Shared test helpers: the GPU (a test without one fails and says why), seeded data and the
//! one tolerance check that names the worst element.
#![allow(dead_code)]

use std::sync::{Arc, OnceLock};

use vit_hybrid::gpu::{Gpu, GpuOptions};

/// One device per test binary; a missing adapter fails the test with the reason.
pub fn gpu() -> Arc<Gpu> {
    static GPU: OnceLock<Result<Arc<Gpu>, String>> = OnceLock::new();
    GPU.get_or_init(|| {
        Gpu::new(&GpuOptions::default())
            .map(Arc::new)
            .map_err(|e| format!("{e:#}"))
    })
    .clone()
    .unwrap_or_else(|e| panic!("these tests need a GPU adapter (lavapipe will do): {e}"))
}

/// Deterministic uniform values in [lo, hi) (splitmix64), so failures reproduce.
pub fn random(seed: u64, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let u = (z >> 40) as f32 / (1u64 << 24) as f32;
            lo + (hi - lo) * u
        })
        .collect()
}

/// Checks |got - want| <= atol + rtol * |want| everywhere; on failure names the worst index.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: length {} != expected {}",
        got.len(),
        want.len()
    );
    let mut worst = (0usize, 0.0f32);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let excess = if g.is_finite() {
            (g - w).abs() - (atol + rtol * w.abs())
        } else {
            f32::INFINITY
        };
        if excess > worst.1 || (i == 0 && excess > 0.0) {
            worst = (i, excess);
        }
    }
    let (i, excess) = worst;
    assert!(
        excess <= 0.0,
        "{what}: element {i} is {} but expected {} (|diff| {:e}, allowed {:e} = {atol:e} + {rtol:e} * |expected|)",
        got[i],
        want[i],
        (got[i] - want[i]).abs(),
        atol + rtol * want[i].abs()
    );
    let max_diff = got
        .iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs())
        .fold(0.0f32, f32::max);
    eprintln!(
        "{what}: ok, largest |diff| {max_diff:e} over {} values",
        got.len()
    );
}

/// ||a - b|| / ||b|| in f64.
pub fn rel_l2(a: &[f32], b: &[f64]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(&x, &y)| (x as f64 - y).powi(2)).sum();
    let den: f64 = b.iter().map(|y| y * y).sum();
    (num / den.max(1e-300)).sqrt()
}

/// Replaces `dir`'s model.safetensors by two shards and the index that transformers'
/// `save_pretrained(max_shard_size=...)` writes (`model-0000K-of-00002.safetensors`).
pub fn split_into_shards(dir: &std::path::Path) {
    use safetensors::{SafeTensors, tensor::TensorView};
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = st.names().into_iter().map(str::to_string).collect();
    names.sort();
    let mut weight_map = serde_json::Map::new();
    for (i, part) in names.chunks(names.len().div_ceil(2)).enumerate() {
        let file = format!("model-0000{}-of-00002.safetensors", i + 1);
        let views: Vec<(String, TensorView<'_>)> = part
            .iter()
            .map(|n| (n.clone(), st.tensor(n).unwrap()))
            .collect();
        safetensors::serialize_to_file(views, None, &dir.join(&file)).unwrap();
        for n in part {
            weight_map.insert(n.clone(), file.clone().into());
        }
    }
    std::fs::remove_file(&path).unwrap();
    let index = serde_json::json!({"metadata": {"total_size": 0}, "weight_map": weight_map});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
}
