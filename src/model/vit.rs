//! The ViT side: patch projection and token assembly, pre-norm encoder layers, final
//! LayerNorm and the classifier on the CLS token. Field names follow the checkpoint.

use anyhow::Result;

use crate::config::ModelConfig;
use crate::gpu::Gpu;
use crate::model::bit::Tap;
use crate::model::weights::HostWeights;
use crate::ops::Program;
use crate::ops::activation::Activation;
use crate::ops::attention::{self, Attention, TextureVariant};
use crate::ops::conv2d::{self, Conv2d, ConvWeights};
use crate::ops::layer_norm::{self, LayerNorm};
use crate::ops::linear::{self, Linear, Variant, Weight, WeightFormat, WeightLayout};
use crate::ops::matrix_texture::{MatrixTexture, Place, TexelFormat::F32};
use crate::ops::to_texture;
use crate::ops::tokens::{self, Tokens};

/// A linear layer's weight [out, in] (f32 or f16) and bias [out] (f32).
pub struct Dense {
    pub weight: Weight,
    pub bias: wgpu::Buffer,
    pub out: usize,
    pub inp: usize,
}

impl Dense {
    fn load(gpu: &Gpu, w: &HostWeights, name: &str, format: WeightFormat) -> Result<Self> {
        let weight = w.get(&format!("{name}.weight"))?;
        let (out, inp) = (weight.shape[0], weight.shape[1]);
        Ok(Self {
            weight: Weight::upload(gpu, name, &weight.data, out, inp, format)?,
            bias: gpu.upload(name, &w.get(&format!("{name}.bias"))?.data),
            out,
            inp,
        })
    }
}

/// A LayerNorm's weight (gamma) and bias (beta).
pub type Norm = layer_norm::Affine;

fn load_norm(gpu: &Gpu, w: &HostWeights, name: &str) -> Result<Norm> {
    let gamma = &w.get(&format!("{name}.weight"))?.data;
    let beta = &w.get(&format!("{name}.bias"))?.data;
    layer_norm::Affine::upload(gpu, name, gamma, beta)
}

pub struct EncoderLayer {
    pub layernorm_before: Norm,
    /// query, key and value stacked into one [3 * hidden, hidden] matrix at load, so one
    /// linear makes all three.
    pub qkv: Dense,
    pub attention_output: Dense,
    pub layernorm_after: Norm,
    pub intermediate: Dense,
    pub output: Dense,
}

pub struct Vit {
    pub projection: Dense, // weight [hidden, C, ph, pw]
    /// The projection's weight as a [hidden, C * ph * pw] matrix texture (CPU adapters).
    pub projection_texture: Option<MatrixTexture>,
    pub cls_token: wgpu::Buffer,           // [hidden]
    pub position_embeddings: wgpu::Buffer, // [seq, hidden]
    pub layers: Vec<EncoderLayer>,
    pub layernorm: Norm,
    pub classifier: Dense,
    hidden: usize,
    heads: usize,
    intermediate: usize,
    seq: usize,
    grid: (usize, usize),
    patch: (usize, usize),
    eps: f32,
    /// How the encoder's and head's linear weights are stored.
    format: WeightFormat,
}

/// Scratch buffers of the encoder, sized for one batch.
pub struct VitBuffers {
    pub projection: wgpu::Buffer, // [B, hidden, patches]
    pub x: wgpu::Buffer,          // [B, seq, hidden]: the residual stream
    pub h: wgpu::Buffer,          // [B, seq, hidden]: after attention
    pub normed: wgpu::Buffer,     // [B, seq, hidden]
    pub qkv: wgpu::Buffer,        // [B, seq, 3 * hidden]
    pub context: wgpu::Buffer,    // [B, seq, hidden]
    pub mlp: wgpu::Buffer,        // [B, seq, intermediate]
    pub scratch: wgpu::Buffer,    // attention's
    pub logits: wgpu::Buffer,     // [B, labels]
    /// The encoder linears' inputs as matrix textures, where their weights are textures.
    pub textures: Option<EncoderTextures>,
}

/// Inputs of the texture-reading linears (CPU adapters): each is stored in this layout by the
/// kernel before (layer_norm, the GELU linear) or copied once (attention's context).
pub struct EncoderTextures {
    pub normed: MatrixTexture,  // [B * seq, hidden]
    pub context: MatrixTexture, // [B * seq, hidden]
    pub mlp: MatrixTexture,     // [B * seq, intermediate]
    /// The QKV linear's output and attention's scratch, where attention runs as texture
    /// products (attention::textures_fit).
    pub attention: Option<(MatrixTexture, attention::TextureScratch)>,
    /// The residual stream [B * seq, hidden] between layers (x) and inside one (h), where the
    /// layer norms read it and the products add it with inline loads (hidden a multiple of 4).
    pub stream: Option<[MatrixTexture; 2]>,
}

fn stack_qkv(
    w: &HostWeights,
    p: &str,
    hidden: usize,
    with_bias: bool,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let mut weight = Vec::with_capacity(3 * hidden * hidden);
    let mut bias = Vec::with_capacity(3 * hidden);
    for n in ["query", "key", "value"] {
        weight.extend_from_slice(&w.get(&format!("{p}.{n}.weight"))?.data);
        if with_bias {
            bias.extend_from_slice(&w.get(&format!("{p}.{n}.bias"))?.data);
        } else {
            bias.extend(std::iter::repeat_n(0.0, hidden));
        }
    }
    Ok((weight, bias))
}

impl Vit {
    /// Uploads the ViT weights, the linears' in `format` (the projection, a conv, stays f32).
    pub fn load(
        gpu: &Gpu,
        cfg: &ModelConfig,
        w: &HostWeights,
        format: WeightFormat,
    ) -> Result<Self> {
        let hidden = cfg.hidden_size;
        let mut layers = Vec::new();
        for i in 0..cfg.num_hidden_layers {
            let p = format!("vit.encoder.layer.{i}");
            let (qkv_w, qkv_b) =
                stack_qkv(w, &format!("{p}.attention.attention"), hidden, cfg.qkv_bias)?;
            layers.push(EncoderLayer {
                layernorm_before: load_norm(gpu, w, &format!("{p}.layernorm_before"))?,
                qkv: Dense {
                    weight: Weight::upload(gpu, "qkv", &qkv_w, 3 * hidden, hidden, format)?,
                    bias: gpu.upload("qkv", &qkv_b),
                    out: 3 * hidden,
                    inp: hidden,
                },
                attention_output: Dense::load(
                    gpu,
                    w,
                    &format!("{p}.attention.output.dense"),
                    format,
                )?,
                layernorm_after: load_norm(gpu, w, &format!("{p}.layernorm_after"))?,
                intermediate: Dense::load(gpu, w, &format!("{p}.intermediate.dense"), format)?,
                output: Dense::load(gpu, w, &format!("{p}.output.dense"), format)?,
            });
        }
        let proj = "vit.embeddings.patch_embeddings.projection";
        let pw = w.get(&format!("{proj}.weight"))?;
        // A conv weight [hidden, C, ph, pw], kept f32: conv2d reads it as [hidden, C * ph * pw].
        let (proj_out, proj_in) = (pw.shape[0], pw.shape[1..].iter().product());
        let cpu = gpu.cpu_kernels();
        let projection_texture = if cpu {
            Some(conv2d::texture_weight(
                gpu, proj, &pw.data, proj_out, proj_in,
            )?)
        } else {
            None
        };
        Ok(Self {
            projection_texture,
            projection: Dense {
                weight: Weight::upload_in(
                    gpu,
                    proj,
                    &pw.data,
                    (proj_out, proj_in),
                    WeightFormat::F32,
                    WeightLayout::Buffer,
                )?,
                bias: gpu.upload(proj, &w.get(&format!("{proj}.bias"))?.data),
                out: hidden,
                inp: pw.shape[1],
            },
            cls_token: gpu.upload("cls_token", &w.get("vit.embeddings.cls_token")?.data),
            position_embeddings: gpu.upload(
                "position_embeddings",
                &w.get("vit.embeddings.position_embeddings")?.data,
            ),
            layers,
            layernorm: load_norm(gpu, w, "vit.layernorm")?,
            classifier: Dense::load(gpu, w, "classifier", format)?,
            hidden,
            heads: cfg.num_attention_heads,
            intermediate: cfg.intermediate_size,
            seq: cfg.seq_len(),
            grid: cfg.grid(),
            patch: cfg.patch_size,
            eps: cfg.layer_norm_eps as f32,
            format,
        })
    }

    /// The encoder's and head's linears, in forward order.
    fn linears(&self) -> impl Iterator<Item = &Dense> {
        self.layers
            .iter()
            .flat_map(|l| [&l.qkv, &l.attention_output, &l.intermediate, &l.output])
            .chain([&self.classifier])
    }

    /// Weights of the encoder's and head's linears: (parameters, bytes on the GPU).
    pub fn linear_weights(&self) -> (usize, usize) {
        self.linears()
            .map(|d| (d.out * d.inp, d.weight.bytes()))
            .fold((0, 0), |(p, b), (dp, db)| (p + dp, b + db))
    }

    /// The entry point the encoder's linears run on this adapter.
    pub fn linear_variant(&self, gpu: &Gpu) -> Variant {
        let d = self.hidden;
        Variant::choose(gpu, Linear::new(self.seq, 3 * d, d), self.format)
    }

    fn attention_shape(&self, batch: usize) -> Attention {
        Attention {
            batch,
            seq: self.seq,
            heads: self.heads,
            head_dim: self.hidden / self.heads,
        }
    }

    /// Whether every encoder linear reads its operands from textures (CPU adapters).
    pub fn uses_textures(&self) -> bool {
        self.layers.iter().all(|l| {
            [&l.qkv, &l.attention_output, &l.intermediate, &l.output]
                .iter()
                .all(|d| d.weight.layout() == WeightLayout::Texture)
        })
    }

    /// The most images one chunk may hold so that its tokens fit a matrix texture.
    pub fn max_images_per_chunk(&self, gpu: &Gpu) -> usize {
        if !self.uses_textures() {
            return usize::MAX;
        }
        let max_rows = gpu.limits().max_texture_dimension_2d as usize / linear::TEXTURE_ROWS
            * linear::TEXTURE_ROWS;
        (max_rows / self.seq.max(1)).max(1)
    }

    pub fn alloc(&self, gpu: &Gpu, batch: usize) -> Result<VitBuffers> {
        let tokens = batch * self.seq;
        let patches = self.grid.0 * self.grid.1;
        let textures = if self.uses_textures() {
            let t = |name: &str, cols| linear::texture_for(gpu, name, tokens, cols);
            let a = self.attention_shape(batch);
            let attention = if attention::textures_fit(gpu, a) {
                Some((
                    attention::qkv_texture(gpu, a)?,
                    attention::TextureScratch::new(gpu, a, TextureVariant::choose(gpu, a))?,
                ))
            } else {
                None
            };
            let stream = if self.hidden.is_multiple_of(4) {
                let s = |name| MatrixTexture::new(gpu, name, tokens, self.hidden, tokens, F32);
                Some([s("stream.x")?, s("stream.h")?])
            } else {
                None
            };
            Some(EncoderTextures {
                normed: t("normed.texture", self.hidden)?,
                context: t("context.texture", self.hidden)?,
                mlp: t("mlp.texture", self.intermediate)?,
                attention,
                stream,
            })
        } else {
            None
        };
        Ok(VitBuffers {
            projection: gpu.storage("projection", batch * self.hidden * patches),
            x: gpu.storage("x", tokens * self.hidden),
            h: gpu.storage("h", tokens * self.hidden),
            normed: gpu.storage("normed", tokens * self.hidden),
            qkv: gpu.storage("qkv", tokens * 3 * self.hidden),
            context: gpu.storage("context", tokens * self.hidden),
            mlp: gpu.storage("mlp", tokens * self.intermediate),
            scratch: gpu.storage(
                "attention.scratch",
                self.attention_shape(batch).scratch_len(),
            ),
            logits: gpu.storage("logits", batch * self.classifier.out),
            textures,
        })
    }

    /// Largest f32 count of any one buffer per image (to split batches under binding limits).
    pub fn max_buffer_len_per_image(&self) -> usize {
        let a = self.attention_shape(1).scratch_len();
        let tokens = self.seq;
        a.max(tokens * 3 * self.hidden)
            .max(tokens * self.intermediate)
    }

    /// Records projection, tokens, encoder, final norm and head; logits land in `bufs.logits`.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        gpu: &Gpu,
        p: &mut Program,
        batch: usize,
        features: &Activation<'_>,
        (c, fh, fw): (usize, usize, usize),
        bufs: &VitBuffers,
        tap: &mut dyn FnMut(&mut Program, Tap<'_>),
    ) {
        let d = self.hidden;
        let rows = batch * self.seq;
        let stream = |name: String, value| Tap {
            name,
            value,
            len: rows * d,
            shape: vec![batch, self.seq, d],
        };

        p.set_scope("embeddings");
        let conv = Conv2d::valid(batch, c, fh, fw, d, self.patch.0, self.patch.1);
        let bias = Some(&self.projection.bias);
        let texture = self.projection_texture.as_ref();
        let path = conv2d::Path::choose(gpu, conv, texture.is_some());
        let weights = ConvWeights {
            buffer: self
                .projection
                .weight
                .buffer()
                .expect("the projection is uploaded as a buffer"),
            texture,
        };
        let y = Place::Buffer(&bufs.projection);
        conv2d::record_path(gpu, p, path, conv, features, weights, bias, y);
        let patches = conv.oh * conv.ow;
        tokens::record(
            gpu,
            p,
            Tokens {
                batch,
                dim: d,
                patches,
            },
            &bufs.projection,
            &self.cls_token,
            &self.position_embeddings,
            &bufs.x,
        );
        tap(p, stream("embeddings".into(), Activation::buffer(&bufs.x)));
        // The residual stream: x and h, in textures where the encoder has them.
        let stream_textures = bufs.textures.as_ref().and_then(|t| t.stream.as_ref());
        if let Some([x, _]) = stream_textures {
            to_texture::record(gpu, p, &bufs.x, d, x);
        }
        let in_stream = |buffer, i: usize| Activation {
            buffer,
            texture: stream_textures.map(|s| s[i].clone()),
        };
        let (x, h) = (in_stream(&bufs.x, 0), in_stream(&bufs.h, 1));

        let ln = LayerNorm {
            rows,
            dim: d,
            eps: self.eps,
        };
        let tex = bufs.textures.as_ref();
        // Where each linear's input lives: the textures on CPU adapters, else the buffers.
        let normed = tex.map_or(Place::Buffer(&bufs.normed), |t| Place::Texture(&t.normed));
        let context = tex.map_or(Place::Buffer(&bufs.context), |t| Place::Texture(&t.context));
        let mlp = tex.map_or(Place::Buffer(&bufs.mlp), |t| Place::Texture(&t.mlp));
        let dense = |p: &mut Program, shape: Linear, x, d: &Dense, res, y| {
            let v = Variant::for_layout(gpu, shape, d.weight.format, d.weight.layout());
            linear::record_io(gpu, p, shape, v, x, &d.weight, Some(&d.bias), res, y);
        };
        for (i, layer) in self.layers.iter().enumerate() {
            p.set_scope(format!("encoder.layer.{i}.attention"));
            let before = &layer.layernorm_before;
            layer_norm::record(gpu, p, ln, x.place(), before, normed);
            let qkv = Linear::new(rows, 3 * d, d);
            let shape = self.attention_shape(batch);
            match tex {
                Some(EncoderTextures {
                    attention: Some((qkv_t, scratch)),
                    context: context_t,
                    ..
                }) => {
                    dense(p, qkv, normed, &layer.qkv, None, Place::Texture(qkv_t));
                    attention::record_textures(gpu, p, shape, qkv_t, scratch, context_t);
                }
                _ => {
                    dense(p, qkv, normed, &layer.qkv, None, Place::Buffer(&bufs.qkv));
                    attention::record(gpu, p, shape, &bufs.qkv, &bufs.scratch, &bufs.context);
                    if let Some(t) = tex {
                        to_texture::record(gpu, p, &bufs.context, d, &t.context);
                    }
                }
            }
            let out = Linear::new(rows, d, d);
            let o = &layer.attention_output;
            dense(p, out, context, o, Some(x.place()), h.place());

            p.set_scope(format!("encoder.layer.{i}.mlp"));
            let after = &layer.layernorm_after;
            layer_norm::record(gpu, p, ln, h.place(), after, normed);
            let (up, down) = (&layer.intermediate, &layer.output);
            let up_shape = Linear {
                gelu: true,
                ..Linear::new(rows, up.out, d)
            };
            dense(p, up_shape, normed, up, None, mlp);
            let down_shape = Linear::new(rows, d, up.out);
            dense(p, down_shape, mlp, down, Some(h.place()), x.place());
            tap(p, stream(format!("layers.{i}"), x.clone()));
        }

        p.set_scope("head");
        layer_norm::record(
            gpu,
            p,
            ln,
            x.place(),
            &self.layernorm,
            Place::Buffer(&bufs.normed),
        );
        tap(
            p,
            stream("layernorm".into(), Activation::buffer(&bufs.normed)),
        );
        // The classifier reads only the CLS token: row b*seq of the normed stream.
        let head = Linear {
            x_row_stride: self.seq * d,
            ..Linear::new(batch, self.classifier.out, d)
        };
        let cls = &self.classifier;
        linear::record(
            gpu,
            p,
            head,
            &bufs.normed,
            &cls.weight,
            Some(&cls.bias),
            None,
            &bufs.logits,
        );
    }
}
