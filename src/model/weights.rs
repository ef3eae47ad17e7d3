//! Checkpoint tensors on the host: read from `model.safetensors` (memory-mapped; F32, F16 and
//! BF16 converted to f32) and checked against the config before anything reaches the GPU.

use std::collections::HashMap;
#[cfg(not(target_arch = "wasm32"))]
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use safetensors::{Dtype, SafeTensors};

use crate::config::ModelConfig;

/// Largest JSON header a `model.safetensors` may have. The real checkpoint's is 40 KB (356
/// tensors); the safetensors crate itself would parse up to 100 MB, and parsing costs several
/// times the header's size in small allocations, so a corrupt length is refused first.
pub const MAX_HEADER_BYTES: u64 = 16 << 20;

/// Refuses a header length (the file's first 8 bytes, little-endian) above
/// [`MAX_HEADER_BYTES`] or past the end of the file, before anything is parsed.
fn check_header_len(bytes: &[u8]) -> Result<()> {
    let Some(prefix) = bytes.get(..8) else {
        bail!(
            "{} bytes, shorter than the 8-byte header length",
            bytes.len()
        );
    };
    let n = u64::from_le_bytes(prefix.try_into().expect("8 bytes"));
    if n > MAX_HEADER_BYTES {
        bail!("its header claims {n} bytes, more than the {MAX_HEADER_BYTES} allowed");
    }
    if n > bytes.len() as u64 - 8 {
        bail!(
            "its header claims {n} bytes but only {} follow",
            bytes.len() - 8
        );
    }
    Ok(())
}

/// One f32 tensor and the dtype it was stored as.
#[derive(Clone, Debug)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
    pub dtype: String,
}

/// Every tensor the config asks for, checked for presence and shape.
#[derive(Debug)]
pub struct HostWeights {
    tensors: HashMap<String, HostTensor>,
    /// Tensors in the file that the model does not use.
    pub unused: Vec<String>,
}

fn to_f32(name: &str, dtype: Dtype, bytes: &[u8]) -> Result<Vec<f32>> {
    let chunk = |n: usize| -> Result<std::slice::ChunksExact<'_, u8>> {
        if !bytes.len().is_multiple_of(n) {
            bail!(
                "tensor {name}: {} bytes is not a whole number of {dtype:?} values",
                bytes.len()
            );
        }
        Ok(bytes.chunks_exact(n))
    };
    Ok(match dtype {
        Dtype::F32 => chunk(4)?
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => chunk(2)?
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => chunk(2)?
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        other => {
            bail!("tensor {name}: dtype {other:?} is not supported (expected F32, F16 or BF16)")
        }
    })
}

/// Refuses a tensor holding NaN or infinite values: one such weight turns every logit into
/// NaN, and a run must not print that as an answer.
fn ensure_finite(name: &str, data: &[f32]) -> Result<()> {
    // One pass over every weight at load; the counts are only taken for the error.
    if !data.iter().all(|v| v.is_finite()) {
        let nan = data.iter().filter(|v| v.is_nan()).count();
        let inf = data.len() - nan - data.iter().filter(|v| v.is_finite()).count();
        bail!(
            "tensor {name} holds {nan} NaN and {inf} infinite values (of {}); weights must be finite",
            data.len()
        );
    }
    Ok(())
}

/// The shard files a `model.safetensors.index.json` names, each once, in name order. A name
/// must be a plain file name: the index cannot point outside the model folder.
pub fn shard_files(index_json: &str) -> Result<Vec<String>> {
    let v: serde_json::Value = serde_json::from_str(index_json).context("not valid JSON")?;
    let map = v
        .get("weight_map")
        .and_then(|m| m.as_object())
        .context("no \"weight_map\" object (tensor name -> shard file)")?;
    let mut files = std::collections::BTreeSet::new();
    for (tensor, file) in map {
        let file = file
            .as_str()
            .with_context(|| format!("weight_map: tensor {tensor}'s shard is not a file name"))?;
        let plain = !file.is_empty()
            && file != "."
            && file != ".."
            && !file.contains(['/', '\\'])
            && std::path::Path::new(file).file_name().is_some();
        ensure!(
            plain,
            "weight_map: tensor {tensor}'s shard {file:?} is not a file name in the model folder"
        );
        files.insert(file.to_string());
    }
    ensure!(!files.is_empty(), "weight_map is empty");
    Ok(files.into_iter().collect())
}

impl HostWeights {
    /// Reads and checks `model.safetensors` against `config`.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn load(path: &Path, config: &ModelConfig) -> Result<Self> {
        let file = std::fs::File::open(path)
            .with_context(|| format!("opening weights {}", path.display()))?;
        // SAFETY: the map is only read, and only while this function runs; a file changed
        // underneath us can give wrong numbers but not unsoundness in safe code that copies.
        let map = unsafe { memmap2::Mmap::map(&file) }
            .with_context(|| format!("memory-mapping weights {}", path.display()))?;
        Self::from_bytes(&map, config, &path.display().to_string())
    }

    /// Reads a sharded checkpoint: `model.safetensors.index.json` (transformers'
    /// `save_pretrained` with `max_shard_size`) names the shard file of every tensor; the
    /// shards are read and checked as one file would be.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn load_sharded(index: &Path, config: &ModelConfig) -> Result<Self> {
        let shown = index.display();
        let text = std::fs::read_to_string(index).with_context(|| format!("reading {shown}"))?;
        let files = shard_files(&text).with_context(|| format!("in {shown}"))?;
        let dir = index.parent().unwrap_or(Path::new("."));
        let mut maps = Vec::new();
        for name in &files {
            let path = dir.join(name);
            let file = std::fs::File::open(&path).with_context(|| {
                format!(
                    "opening weights shard {} ({shown} names it)",
                    path.display()
                )
            })?;
            // SAFETY: as in `load`.
            let map = unsafe { memmap2::Mmap::map(&file) }
                .with_context(|| format!("memory-mapping weights {}", path.display()))?;
            maps.push((map, path.display().to_string()));
        }
        let shards: Vec<(&[u8], &str)> = maps.iter().map(|(m, n)| (&m[..], n.as_str())).collect();
        Self::from_shards(&shards, config, &shown.to_string())
    }

    /// [`HostWeights::load`] on the file's bytes (`shown` names the file in errors): the part
    /// the fuzz targets drive, without the file system.
    pub fn from_bytes(bytes: &[u8], config: &ModelConfig, shown: &str) -> Result<Self> {
        Self::from_shards(&[(bytes, shown)], config, shown)
    }

    /// Every shard's tensors (`(bytes, file name)`), checked against `config` as one
    /// checkpoint (`shown` names it in errors about tensors no shard holds).
    fn from_shards(shards: &[(&[u8], &str)], config: &ModelConfig, shown: &str) -> Result<Self> {
        let mut found = HashMap::new();
        for &(bytes, file) in shards {
            check_header_len(bytes).with_context(|| {
                format!("{file} is not a valid safetensors file (truncated or corrupt?)")
            })?;
            let st = SafeTensors::deserialize(bytes).with_context(|| {
                format!("{file} is not a valid safetensors file (truncated or corrupt?)")
            })?;
            for (name, view) in st.iter() {
                if let Some((_, other)) = found.insert(name.to_string(), (view, file)) {
                    bail!("tensor {name} is in two shards: {other} and {file}");
                }
            }
        }
        let mut tensors = HashMap::new();
        for (name, shape) in config.expected_tensors() {
            let (view, shown) = found.remove(&name).with_context(|| {
                format!("{shown}: tensor {name} is missing (expected shape {shape:?})")
            })?;
            if view.shape() != shape.as_slice() {
                bail!(
                    "{shown}: tensor {name} has shape {:?}, expected {shape:?} from config.json",
                    view.shape()
                );
            }
            let data = to_f32(&name, view.dtype(), view.data())
                .and_then(|d| ensure_finite(&name, &d).map(|()| d))
                .with_context(|| format!("in {shown}"))?;
            let dtype = format!("{:?}", view.dtype());
            tensors.insert(name, HostTensor { shape, data, dtype });
        }
        let mut unused: Vec<String> = found.into_keys().collect();
        unused.sort();
        Ok(Self { tensors, unused })
    }

    /// Builds weights from tensors held in memory, with the same checks as `load`.
    pub fn from_tensors(
        config: &ModelConfig,
        mut given: HashMap<String, HostTensor>,
    ) -> Result<Self> {
        let mut tensors = HashMap::new();
        for (name, shape) in config.expected_tensors() {
            let t = given
                .remove(&name)
                .with_context(|| format!("tensor {name} is missing (expected shape {shape:?})"))?;
            if t.shape != shape || t.data.len() != shape.iter().product::<usize>() {
                bail!("tensor {name} has shape {:?}, expected {shape:?}", t.shape);
            }
            ensure_finite(&name, &t.data)?;
            tensors.insert(name, t);
        }
        let mut unused: Vec<String> = given.into_keys().collect();
        unused.sort();
        Ok(Self { tensors, unused })
    }

    /// Seeded random weights of the right shapes (benchmarks and the full-size test); norm
    /// scales near 1 and small biases so activations stay in range.
    pub fn random(config: &ModelConfig, seed: u64) -> Self {
        let mut state = seed ^ 0x5DEE_CE66_D1CE_4E5B;
        let mut next = move || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        let tensors = config
            .expected_tensors()
            .into_iter()
            .map(|(name, shape)| {
                let n: usize = shape.iter().product();
                let fan_in = if shape.len() > 1 {
                    shape[1..].iter().product::<usize>()
                } else {
                    1
                };
                let is_norm_scale = name.ends_with("norm.weight")
                    || name.contains("layernorm") && name.ends_with(".weight")
                    || name.contains(".norm") && name.ends_with(".weight");
                let data = (0..n)
                    .map(|_| {
                        let u = next();
                        if is_norm_scale {
                            1.0 + 0.2 * u
                        } else if shape.len() == 1 {
                            0.1 * u
                        } else {
                            // Uniform with variance 1/fan_in keeps linears norm-preserving.
                            u * (12.0 / fan_in as f32).sqrt()
                        }
                    })
                    .collect();
                (
                    name,
                    HostTensor {
                        shape,
                        data,
                        dtype: "F32".into(),
                    },
                )
            })
            .collect();
        Self {
            tensors,
            unused: Vec::new(),
        }
    }

    pub fn get(&self, name: &str) -> Result<&HostTensor> {
        self.tensors
            .get(name)
            .with_context(|| format!("tensor {name} is not in the checked weights"))
    }

    pub fn tensor_count(&self) -> usize {
        self.tensors.len()
    }

    pub fn parameter_count(&self) -> usize {
        self.tensors.values().map(|t| t.data.len()).sum()
    }

    /// How many tensors were stored as each dtype, e.g. `[("F32", 356)]`.
    pub fn dtype_counts(&self) -> Vec<(String, usize)> {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for t in self.tensors.values() {
            *counts.entry(&t.dtype).or_default() += 1;
        }
        let mut v: Vec<(String, usize)> = counts
            .into_iter()
            .map(|(k, n)| (k.to_string(), n))
            .collect();
        v.sort();
        v
    }
}

/// BiT's weight standardisation, per output channel over in*kh*kw: (w - mean) / sqrt(var + eps)
/// with the biased variance, computed in f64 once at load.
pub fn standardize(w: &[f32], out_channels: usize, eps: f64) -> Vec<f32> {
    let per = w.len() / out_channels.max(1);
    let mut out = Vec::with_capacity(w.len());
    for row in w.chunks(per.max(1)) {
        let n = row.len() as f64;
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        let inv = 1.0 / (var + eps).sqrt();
        out.extend(row.iter().map(|&v| ((v as f64 - mean) * inv) as f32));
    }
    out
}
