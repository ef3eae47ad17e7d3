//! `config.json` of a `ViTHybridForImageClassification` checkpoint, with its nested BiT
//! `backbone_config`: parsed, checked, and turned into the sizes every layer needs.
//!
//! Settings that would make transformers compute something else than what this crate
//! implements (pre-activation layers, other activations, other padding) are rejected by name.

use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use serde::Deserialize;
use serde_json::Value;

// Limits on what a config may ask for, far above any ViT or BiT checkpoint (ViT-H has 32
// layers; BiT-R152x4 8192 channels and 36 layers in a stage; ImageNet-21k 21843 labels), so
// that no field can make the derived sizes overflow or make `expected_tensors` (and the
// weights `--random-config` allocates) unbounded: a 2 KB config.json could otherwise ask for
// 2^60 layers.

/// Largest width: hidden_size, intermediate_size, heads, embedding_size, num_groups and every
/// stage's channels after `width_factor`.
pub const MAX_WIDTH: usize = 1 << 16;
/// Largest image_size or patch_size side.
pub const MAX_IMAGE_SIDE: usize = 1 << 16;
/// Most encoder layers, and most layers in one backbone stage.
pub const MAX_LAYERS: usize = 1024;
/// Most backbone stages that run (BiT has 4); also keeps the output-stride arithmetic small.
pub const MAX_STAGES: usize = 8;
/// Most classes (id2label entries or num_labels).
pub const MAX_LABELS: usize = 1 << 17;
/// Most parameters the config may describe (8 GiB as f32), checked without overflow.
pub const MAX_PARAMETERS: u64 = 1 << 31;

/// The ViT side of the config, plus the backbone.
#[derive(Clone, Debug)]
pub struct ModelConfig {
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub layer_norm_eps: f64,
    /// (height, width) the model takes.
    pub image_size: (usize, usize),
    /// (height, width) of the projection conv's kernel and stride.
    pub patch_size: (usize, usize),
    pub num_channels: usize,
    pub qkv_bias: bool,
    /// Class names in index order.
    pub labels: Vec<String>,
    pub backbone: BitConfig,
}

/// The BiT backbone's config ("bottleneck" layers, "SAME" padding only).
#[derive(Clone, Debug)]
pub struct BitConfig {
    pub embedding_size: usize,
    pub num_groups: usize,
    /// Layers per stage, for the stages that run (up to the one `out_features` names).
    pub depths: Vec<usize>,
    /// Output channels per stage: BiT's `make_div(hidden_sizes[s] * width_factor)`.
    pub stage_channels: Vec<usize>,
}

/// transformers' ViTHybridConfig fields this crate reads (the rest is ignored).
#[derive(Deserialize)]
struct RawConfig {
    hidden_size: Option<usize>,
    num_hidden_layers: Option<usize>,
    num_attention_heads: Option<usize>,
    intermediate_size: Option<usize>,
    hidden_act: Option<String>,
    layer_norm_eps: Option<f64>,
    image_size: Option<Value>,
    patch_size: Option<Value>,
    num_channels: Option<usize>,
    qkv_bias: Option<bool>,
    /// Labels are strings in every checkpoint we know, but transformers takes any JSON value.
    id2label: Option<std::collections::BTreeMap<String, Value>>,
    num_labels: Option<usize>,
    backbone_config: Option<RawBitConfig>,
    backbone_featmap_shape: Option<Vec<usize>>,
    backbone: Option<String>,
    use_timm_backbone: Option<bool>,
    model_type: Option<String>,
}

#[derive(Deserialize)]
struct RawBitConfig {
    model_type: Option<String>,
    layer_type: Option<String>,
    hidden_act: Option<String>,
    global_padding: Option<String>,
    embedding_dynamic_padding: Option<bool>,
    depths: Option<Vec<usize>>,
    hidden_sizes: Option<Vec<usize>>,
    embedding_size: Option<usize>,
    num_groups: Option<usize>,
    num_channels: Option<usize>,
    out_features: Option<Vec<String>>,
    output_stride: Option<usize>,
    width_factor: Option<f64>,
}

impl RawBitConfig {
    /// What ViTHybridConfig builds when `backbone_config` is absent.
    fn vit_hybrid_default() -> Self {
        Self {
            model_type: Some("bit".into()),
            layer_type: Some("bottleneck".into()),
            hidden_act: None,
            global_padding: Some("same".into()),
            embedding_dynamic_padding: Some(true),
            depths: Some(vec![3, 4, 9]),
            hidden_sizes: None,
            embedding_size: None,
            num_groups: None,
            num_channels: None,
            out_features: Some(vec!["stage3".into()]),
            output_stride: None,
            width_factor: None,
        }
    }
}

/// BiT's channel rounding (`make_div` in transformers' modeling_bit.py, divisor 8).
pub fn make_div(v: f64, divisor: usize) -> usize {
    let d = divisor as f64;
    let mut new_v = d.max(((v + d / 2.0) as usize / divisor * divisor) as f64);
    if new_v < 0.9 * v {
        new_v += d;
    }
    new_v as usize
}

/// A size that transformers accepts as an int or an `[h, w]` pair.
fn pair(v: Option<&Value>, default: usize, name: &str) -> Result<(usize, usize)> {
    let as_size = |v: &Value| -> Result<usize> {
        let n = v.as_u64().with_context(|| {
            format!("config.json: `{name}` must be a positive integer, got {v}")
        })?;
        ensure!(
            n > 0 && n <= MAX_IMAGE_SIDE as u64,
            "config.json: `{name}` = {n} is out of range 1..={MAX_IMAGE_SIDE}"
        );
        Ok(n as usize)
    };
    match v {
        None | Some(Value::Null) => Ok((default, default)),
        Some(Value::Array(a)) if a.len() == 2 => Ok((as_size(&a[0])?, as_size(&a[1])?)),
        Some(v @ Value::Number(_)) => {
            let n = as_size(v)?;
            Ok((n, n))
        }
        Some(v) => bail!("config.json: `{name}` must be an integer or [height, width], got {v}"),
    }
}

/// A count with a default, in `1..=max`.
fn positive(v: Option<usize>, default: usize, name: &str, max: usize) -> Result<usize> {
    let n = v.unwrap_or(default);
    ensure!(n > 0, "config.json: `{name}` must be positive, got 0");
    at_most(n, name, max)
}

/// A count in `0..=max`.
fn at_most(n: usize, name: &str, max: usize) -> Result<usize> {
    ensure!(
        n <= max,
        "config.json: `{name}` = {n} is implausibly large (at most {max})"
    );
    Ok(n)
}

impl ModelConfig {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading model config {}", path.display()))?;
        Self::from_json_str(&text).with_context(|| format!("in {}", path.display()))
    }

    pub fn from_json_str(text: &str) -> Result<Self> {
        let raw: RawConfig =
            serde_json::from_str(text).context("config.json is not a valid ViTHybrid config")?;
        if let Some(t) = &raw.model_type {
            ensure!(
                t == "vit-hybrid" || t == "vit_hybrid",
                "config.json: model_type is {t:?}, expected \"vit-hybrid\""
            );
        }
        if raw.use_timm_backbone == Some(true) || raw.backbone.is_some() {
            bail!(
                "config.json: a timm or named backbone is not supported, only an inline BiT backbone_config"
            );
        }
        let act = raw.hidden_act.as_deref().unwrap_or("gelu");
        ensure!(
            act == "gelu",
            "config.json: hidden_act {act:?} is not supported (only \"gelu\", the exact erf form)"
        );
        let hidden_size = positive(raw.hidden_size, 768, "hidden_size", MAX_WIDTH)?;
        let num_attention_heads = positive(
            raw.num_attention_heads,
            12,
            "num_attention_heads",
            MAX_WIDTH,
        )?;
        ensure!(
            hidden_size % num_attention_heads == 0,
            "config.json: hidden_size {hidden_size} is not a multiple of num_attention_heads {num_attention_heads}"
        );
        let num_channels = positive(raw.num_channels, 3, "num_channels", MAX_WIDTH)?;
        ensure!(
            num_channels == 3,
            "config.json: num_channels {num_channels} is not supported (images are RGB: 3)"
        );
        let labels: Vec<String> = match (&raw.id2label, raw.num_labels) {
            (Some(map), _) => {
                let mut labels = vec![None; map.len()];
                for (k, v) in map {
                    let i: usize =
                        k.parse().ok().filter(|&i| i < map.len()).with_context(|| {
                            format!(
                                "config.json: id2label key {k:?} is not an index 0..{}",
                                map.len()
                            )
                        })?;
                    // "7" and "007" are distinct JSON keys but one index; with a duplicate
                    // some other index has no label.
                    ensure!(
                        labels[i].is_none(),
                        "config.json: id2label has two keys for index {i} (one is {k:?})"
                    );
                    labels[i] = Some(match v {
                        Value::String(s) => s.clone(),
                        // transformers keeps a null as None; the default name says more.
                        Value::Null => format!("LABEL_{i}"),
                        other => other.to_string(),
                    });
                }
                // n distinct indices below n: every slot is filled.
                labels.into_iter().flatten().collect()
            }
            (None, Some(n)) => {
                ensure!(
                    n <= MAX_LABELS,
                    "config.json: num_labels {n} is implausibly large (at most {MAX_LABELS})"
                );
                (0..n).map(|i| format!("LABEL_{i}")).collect()
            }
            (None, None) => (0..2).map(|i| format!("LABEL_{i}")).collect(),
        };
        ensure!(!labels.is_empty(), "config.json: id2label is empty");
        ensure!(
            labels.len() <= MAX_LABELS,
            "config.json: {} labels is implausibly many (at most {MAX_LABELS})",
            labels.len()
        );
        let eps = raw.layer_norm_eps.unwrap_or(1e-12);
        ensure!(
            eps.is_finite() && eps >= 0.0,
            "config.json: layer_norm_eps {eps} is invalid"
        );
        let backbone = BitConfig::from_raw(
            raw.backbone_config
                .unwrap_or_else(RawBitConfig::vit_hybrid_default),
        )?;
        let cfg = Self {
            hidden_size,
            // No layers is a valid ViT (transformers builds one: the embeddings go straight to
            // the final norm), so 0 is allowed here, unlike the widths.
            num_hidden_layers: at_most(
                raw.num_hidden_layers.unwrap_or(12),
                "num_hidden_layers",
                MAX_LAYERS,
            )?,
            num_attention_heads,
            intermediate_size: positive(
                raw.intermediate_size,
                3072,
                "intermediate_size",
                MAX_WIDTH,
            )?,
            layer_norm_eps: eps,
            image_size: pair(raw.image_size.as_ref(), 224, "image_size")?,
            patch_size: pair(raw.patch_size.as_ref(), 1, "patch_size")?,
            num_channels,
            qkv_bias: raw.qkv_bias.unwrap_or(true),
            labels,
            backbone,
        };
        // transformers sizes the projection and position embeddings from this field rather
        // than from a backbone run, so a checkpoint whose field disagrees cannot run there.
        if let Some(shape) = &raw.backbone_featmap_shape {
            let (fh, fw) = cfg.feature_size();
            let want = [cfg.feature_channels(), fh, fw];
            ensure!(
                shape.len() == 4 && shape[1..] == want,
                "config.json: backbone_featmap_shape {shape:?} disagrees with the backbone, which \
                 gives [1, {}, {fh}, {fw}] for image_size {:?}",
                want[0],
                cfg.image_size
            );
        }
        let (gh, gw) = cfg.grid();
        ensure!(
            gh > 0 && gw > 0,
            "config.json: image_size {:?} gives a {}x{} feature map, smaller than patch_size {:?}",
            cfg.image_size,
            cfg.feature_size().0,
            cfg.feature_size().1,
            cfg.patch_size
        );
        let params = cfg.parameter_count();
        ensure!(
            params.is_some_and(|n| n <= MAX_PARAMETERS),
            "config.json: the model it describes has {} parameters, more than the {MAX_PARAMETERS} \
             this tool loads",
            params.map_or_else(|| "more than 2^64".to_string(), |n| n.to_string())
        );
        Ok(cfg)
    }

    /// Parameters of every expected tensor, `None` past `u64`.
    pub fn parameter_count(&self) -> Option<u64> {
        self.expected_tensors()
            .iter()
            .try_fold(0u64, |sum, (_, shape)| {
                let n = shape
                    .iter()
                    .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))?;
                sum.checked_add(n)
            })
    }

    pub fn num_labels(&self) -> usize {
        self.labels.len()
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// Spatial size after the stem conv (SAME, stride 2).
    pub fn stem_conv_size(&self) -> (usize, usize) {
        (self.image_size.0.div_ceil(2), self.image_size.1.div_ceil(2))
    }

    /// Spatial size after the stem's max pool (SAME, stride 2).
    pub fn stem_size(&self) -> (usize, usize) {
        let (h, w) = self.stem_conv_size();
        (h.div_ceil(2), w.div_ceil(2))
    }

    /// Spatial size of each stage's output: stage 0 keeps its input size, the others halve it
    /// (rounding up, as SAME padding does).
    pub fn stage_sizes(&self) -> Vec<(usize, usize)> {
        let mut size = self.stem_size();
        (0..self.backbone.depths.len())
            .map(|s| {
                if s > 0 {
                    size = (size.0.div_ceil(2), size.1.div_ceil(2));
                }
                size
            })
            .collect()
    }

    /// The backbone's output (feature map) size and channels.
    pub fn feature_size(&self) -> (usize, usize) {
        self.stage_sizes()
            .last()
            .copied()
            .unwrap_or_else(|| self.stem_size())
    }

    pub fn feature_channels(&self) -> usize {
        self.backbone
            .stage_channels
            .last()
            .copied()
            .unwrap_or(self.backbone.embedding_size)
    }

    /// Token grid after the patch projection (kernel = stride = patch_size, no padding).
    pub fn grid(&self) -> (usize, usize) {
        let (h, w) = self.feature_size();
        (h / self.patch_size.0, w / self.patch_size.1)
    }

    pub fn num_patches(&self) -> usize {
        let (h, w) = self.grid();
        h * w
    }

    /// Tokens per image: the patches and the CLS token.
    pub fn seq_len(&self) -> usize {
        self.num_patches() + 1
    }

    /// Every tensor the checkpoint must hold, with its shape, in checkpoint order.
    pub fn expected_tensors(&self) -> Vec<(String, Vec<usize>)> {
        let mut t = Vec::new();
        let bb = "vit.embeddings.patch_embeddings.backbone.bit";
        let e = self.backbone.embedding_size;
        t.push((
            format!("{bb}.embedder.convolution.weight"),
            vec![e, self.num_channels, 7, 7],
        ));
        t.push((format!("{bb}.embedder.norm.weight"), vec![e]));
        t.push((format!("{bb}.embedder.norm.bias"), vec![e]));
        let mut cin = e;
        for (s, &depth) in self.backbone.depths.iter().enumerate() {
            let out = self.backbone.stage_channels[s];
            let mid = self.backbone.mid_channels(s);
            for l in 0..depth {
                let p = format!("{bb}.encoder.stages.{s}.layers.{l}");
                let lin = if l == 0 { cin } else { out };
                if l == 0 {
                    t.push((format!("{p}.downsample.conv.weight"), vec![out, cin, 1, 1]));
                    t.push((format!("{p}.downsample.norm.weight"), vec![out]));
                    t.push((format!("{p}.downsample.norm.bias"), vec![out]));
                }
                for (i, (o, ci, k)) in [(mid, lin, 1), (mid, mid, 3), (out, mid, 1)]
                    .into_iter()
                    .enumerate()
                {
                    t.push((format!("{p}.conv{}.weight", i + 1), vec![o, ci, k, k]));
                    t.push((format!("{p}.norm{}.weight", i + 1), vec![o]));
                    t.push((format!("{p}.norm{}.bias", i + 1), vec![o]));
                }
            }
            cin = out;
        }
        let d = self.hidden_size;
        let (ph, pw) = self.patch_size;
        t.push(("vit.embeddings.cls_token".into(), vec![1, 1, d]));
        t.push((
            "vit.embeddings.position_embeddings".into(),
            vec![1, self.seq_len(), d],
        ));
        t.push((
            "vit.embeddings.patch_embeddings.projection.weight".into(),
            vec![d, self.feature_channels(), ph, pw],
        ));
        t.push((
            "vit.embeddings.patch_embeddings.projection.bias".into(),
            vec![d],
        ));
        for i in 0..self.num_hidden_layers {
            let p = format!("vit.encoder.layer.{i}");
            for n in ["layernorm_before", "layernorm_after"] {
                t.push((format!("{p}.{n}.weight"), vec![d]));
                t.push((format!("{p}.{n}.bias"), vec![d]));
            }
            for n in ["query", "key", "value"] {
                t.push((format!("{p}.attention.attention.{n}.weight"), vec![d, d]));
                if self.qkv_bias {
                    t.push((format!("{p}.attention.attention.{n}.bias"), vec![d]));
                }
            }
            t.push((format!("{p}.attention.output.dense.weight"), vec![d, d]));
            t.push((format!("{p}.attention.output.dense.bias"), vec![d]));
            t.push((
                format!("{p}.intermediate.dense.weight"),
                vec![self.intermediate_size, d],
            ));
            t.push((
                format!("{p}.intermediate.dense.bias"),
                vec![self.intermediate_size],
            ));
            t.push((
                format!("{p}.output.dense.weight"),
                vec![d, self.intermediate_size],
            ));
            t.push((format!("{p}.output.dense.bias"), vec![d]));
        }
        t.push(("vit.layernorm.weight".into(), vec![d]));
        t.push(("vit.layernorm.bias".into(), vec![d]));
        t.push(("classifier.weight".into(), vec![self.num_labels(), d]));
        t.push(("classifier.bias".into(), vec![self.num_labels()]));
        t
    }

    /// Multiply-adds of one image's forward pass (for GFLOP/s figures).
    pub fn multiply_adds(&self) -> f64 {
        let mut macs = 0.0;
        let (h, w) = self.stem_conv_size();
        let e = self.backbone.embedding_size;
        macs += (h * w * e * self.num_channels * 49) as f64;
        let mut cin = e;
        for (s, &(oh, ow)) in self.stage_sizes().iter().enumerate() {
            let out = self.backbone.stage_channels[s];
            let mid = self.backbone.mid_channels(s);
            let px = (oh * ow) as f64;
            let in_px = if s == 0 { px } else { px * 4.0 };
            for l in 0..self.backbone.depths[s] {
                let lin = if l == 0 { cin } else { out };
                let conv1_px = if l == 0 { in_px } else { px };
                macs += conv1_px * (lin * mid) as f64 + px * (mid * mid * 9 + mid * out) as f64;
                if l == 0 {
                    macs += px * (cin * out) as f64;
                }
            }
            cin = out;
        }
        let d = self.hidden_size as f64;
        let n = self.seq_len() as f64;
        let (ph, pw) = self.patch_size;
        macs += self.num_patches() as f64 * d * (self.feature_channels() * ph * pw) as f64;
        let per_layer =
            n * (4.0 * d * d + 2.0 * d * self.intermediate_size as f64) + 2.0 * n * n * d;
        macs += per_layer * self.num_hidden_layers as f64;
        macs += d * self.num_labels() as f64;
        macs
    }
}

impl BitConfig {
    fn from_raw(raw: RawBitConfig) -> Result<Self> {
        let what = "config.json backbone_config";
        if let Some(t) = &raw.model_type {
            ensure!(
                t == "bit",
                "{what}: model_type {t:?} is not supported (only \"bit\")"
            );
        }
        let layer = raw.layer_type.as_deref().unwrap_or("preactivation");
        ensure!(
            layer == "bottleneck",
            "{what}: layer_type {layer:?} is not supported (only \"bottleneck\")"
        );
        let act = raw.hidden_act.as_deref().unwrap_or("relu");
        ensure!(
            act == "relu",
            "{what}: hidden_act {act:?} is not supported (only \"relu\")"
        );
        let pad = raw.global_padding.as_deref().unwrap_or("None");
        ensure!(
            pad.eq_ignore_ascii_case("same"),
            "{what}: global_padding {pad:?} is not supported (only \"SAME\")"
        );
        ensure!(
            raw.embedding_dynamic_padding == Some(true),
            "{what}: embedding_dynamic_padding must be true (the stem pool pads like SAME)"
        );
        let ch = raw.num_channels.unwrap_or(3);
        ensure!(
            ch == 3,
            "{what}: num_channels {ch} is not supported (only 3)"
        );
        let depths = raw.depths.unwrap_or_else(|| vec![3, 4, 6, 3]);
        let hidden_sizes = raw
            .hidden_sizes
            .unwrap_or_else(|| vec![256, 512, 1024, 2048]);
        let width = raw.width_factor.unwrap_or(1.0);
        ensure!(
            width > 0.0 && width.is_finite(),
            "{what}: width_factor {width} is invalid"
        );
        let num_stages = depths.len().min(hidden_sizes.len());
        ensure!(num_stages > 0, "{what}: depths is empty");
        // transformers' BitBackbone stage names: "stem", "stage1", ...; the feature map is the
        // last one `out_features` names, so later stages never run.
        let out = raw
            .out_features
            .as_ref()
            .and_then(|f| f.last().cloned())
            .unwrap_or_else(|| format!("stage{num_stages}"));
        let used = if out == "stem" {
            0
        } else {
            out.strip_prefix("stage")
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|&n| (1..=num_stages).contains(&n))
                .with_context(|| {
                    format!("{what}: out_features names {out:?}, expected \"stem\" or stage1..stage{num_stages}")
                })?
        };
        ensure!(
            used <= MAX_STAGES,
            "{what}: out_features runs {used} stages, implausibly many (at most {MAX_STAGES})"
        );
        // Dilation replaces striding once the output stride is reached; that path is not built.
        let output_stride = raw.output_stride.unwrap_or(32);
        let mut stride = 4;
        for s in 1..used {
            ensure!(
                stride < output_stride,
                "{what}: output_stride {output_stride} would dilate stage {} (not supported)",
                s + 1
            );
            stride *= 2;
        }
        let depths: Vec<usize> = depths[..used].to_vec();
        ensure!(depths.iter().all(|&d| d > 0), "{what}: a stage has depth 0");
        ensure!(
            depths.iter().all(|&d| d <= MAX_LAYERS),
            "{what}: depths {depths:?} has a stage deeper than {MAX_LAYERS} layers"
        );
        let num_groups = positive(raw.num_groups, 32, "backbone_config.num_groups", MAX_WIDTH)?;
        let embedding_size = positive(
            raw.embedding_size,
            64,
            "backbone_config.embedding_size",
            MAX_WIDTH,
        )?;
        let stage_channels: Vec<usize> = hidden_sizes[..used]
            .iter()
            .map(|&h| make_div(h as f64 * width, 8))
            .collect();
        ensure!(
            stage_channels.iter().all(|&c| c <= MAX_WIDTH),
            "{what}: hidden_sizes {hidden_sizes:?} x width_factor {width} gives stages wider than \
             {MAX_WIDTH} channels"
        );
        let cfg = Self {
            embedding_size,
            num_groups,
            depths,
            stage_channels,
        };
        ensure!(
            embedding_size % num_groups == 0,
            "{what}: embedding_size {embedding_size} is not divisible by num_groups {num_groups}"
        );
        for s in 0..cfg.depths.len() {
            for c in [cfg.stage_channels[s], cfg.mid_channels(s)] {
                ensure!(
                    c % num_groups == 0,
                    "{what}: stage {} has {c} channels, not divisible by num_groups {num_groups}",
                    s + 1
                );
            }
        }
        Ok(cfg)
    }

    /// Bottleneck width of stage `s`: `make_div(out * 0.25)`.
    pub fn mid_channels(&self, s: usize) -> usize {
        make_div(self.stage_channels[s] as f64 * 0.25, 8)
    }
}
