//! The BiT backbone: stem (conv 7x7/2, GroupNorm+ReLU, max pool 3x3/2) and bottleneck stages.
//! Field names follow the checkpoint's key segments.

use anyhow::Result;

use crate::config::ModelConfig;
use crate::gpu::Gpu;
use crate::model::weights::{HostWeights, standardize};
use crate::ops::Program;
use crate::ops::activation::Activation;
use crate::ops::conv2d::{self, Conv2d, ConvWeights};
use crate::ops::group_norm::{self, GroupNorm};
use crate::ops::matrix_texture::{self, MatrixTexture, Place};
use crate::ops::max_pool::{self, MaxPool};

const PREFIX: &str = "vit.embeddings.patch_embeddings.backbone.bit";
/// `WeightStandardizedConv2d`'s eps in transformers' BiT.
const WS_EPS: f64 = 1e-8;
const GN_EPS: f32 = 1e-5;

/// A weight-standardised conv followed by GroupNorm (+ ReLU).
pub struct ConvNorm {
    pub weight: wgpu::Buffer, // [cout, cin, k, k], standardised
    /// The same as a [cout, cin * k * k] matrix texture (CPU adapters).
    pub texture: Option<MatrixTexture>,
    pub gamma: wgpu::Buffer, // [cout]
    pub beta: wgpu::Buffer,  // [cout]
    pub cout: usize,
    pub k: usize,
    pub stride: usize,
}

impl ConvNorm {
    fn load(gpu: &Gpu, w: &HostWeights, conv: &str, norm: &str, stride: usize) -> Result<Self> {
        let t = w.get(&format!("{conv}.weight"))?;
        let (cout, cin) = (t.shape[0], t.shape[1]);
        let standardized = standardize(&t.data, cout, WS_EPS);
        let cpu = gpu.cpu_kernels();
        // CPU adapters run most convs as texture products (conv2d::texture_1x1_fits,
        // texture_im2col_fits), whose weight operand is this [cout, cin * k * k] texture.
        let k = cin * t.shape[2..].iter().product::<usize>();
        let texture = if cpu {
            Some(conv2d::texture_weight(gpu, conv, &standardized, cout, k)?)
        } else {
            None
        };
        Ok(Self {
            weight: gpu.upload(conv, &standardized),
            texture,
            gamma: gpu.upload(norm, &w.get(&format!("{norm}.weight"))?.data),
            beta: gpu.upload(norm, &w.get(&format!("{norm}.bias"))?.data),
            cout,
            k: t.shape[2],
            stride,
        })
    }

    /// conv(x), then GroupNorm (+ `residual`, + ReLU), into `y`: a buffer, and the role of
    /// the texture that may stand in for it (none: y must be in the buffer); returns y's
    /// shape (c, h, w) and where y is.
    #[allow(clippy::too_many_arguments)]
    fn record<'a>(
        &self,
        gpu: &Gpu,
        p: &mut Program,
        batch: usize,
        groups: usize,
        (relu, residual): (bool, Option<&Activation<'_>>),
        x: &Activation<'_>,
        (cin, h, w): (usize, usize, usize),
        (y, role): (&'a wgpu::Buffer, Option<&'static str>),
    ) -> ((usize, usize, usize), Activation<'a>) {
        let shape = Conv2d::same(batch, cin, h, w, self.cout, self.k, self.stride);
        let gn = GroupNorm {
            batch,
            c: self.cout,
            hw: shape.oh * shape.ow,
            groups,
            eps: GN_EPS,
            relu,
        };
        let out_shape = (self.cout, shape.oh, shape.ow);
        let path = conv2d::Path::choose(gpu, shape, self.texture.is_some());
        let weights = ConvWeights {
            buffer: &self.weight,
            texture: self.texture.as_ref(),
        };
        let (gamma, beta) = (&self.gamma, &self.beta);
        let rows = batch * self.cout;
        if path == conv2d::Path::Buffer
            || !group_norm::Variant::Slices.fits(gn)
            || !matrix_texture::fits(gpu, rows, gn.hw)
        {
            conv2d::record_path(gpu, p, path, shape, x, weights, None, Place::Buffer(y));
            let residual = residual.map(|r| r.to_buffer(gpu, p));
            group_norm::record(gpu, p, gn, y, gamma, beta, residual);
            return (out_shape, Activation::buffer(y));
        }
        // The product stores its output as a texture, which the norm reads with inline loads
        // where a buffer costs a loop over the lanes per load.
        let out = p
            .scratch_texture(gpu, "conv2d.output", (rows, gn.hw), (rows, gn.hw))
            .expect("matrix_texture::fits checked the size");
        conv2d::record_path(gpu, p, path, shape, x, weights, None, Place::Texture(&out));
        // The norm stores a texture too where one this wide fits, which the next conv reads
        // in place: no copy into a texture (1x1 convs), no loads from a buffer (im2col). The
        // residual is then read from a texture of the same layout, else from its buffer.
        let width = conv2d::input_texture_width(gn.hw);
        let texture = role
            .filter(|_| matrix_texture::fits(gpu, rows, width))
            .map(|role| {
                p.scratch_texture(gpu, role, (rows, gn.hw), (rows, width))
                    .expect("matrix_texture::fits checked the size")
            });
        let residual_texture = residual
            .filter(|_| texture.is_some())
            .map(|r| r.to_texture(gpu, p, "backbone.residual", (rows, gn.hw), width));
        let residual = match (&residual_texture, residual) {
            (Some(t), _) => Some(Place::Texture(t)),
            (None, r) => r.map(|r| Place::Buffer(r.to_buffer(gpu, p))),
        };
        let y_place = texture.as_ref().map_or(Place::Buffer(y), Place::Texture);
        group_norm::record_from_texture(gpu, p, gn, &out, y_place, gamma, beta, residual);
        let y = Activation { buffer: y, texture };
        (out_shape, y)
    }
}

/// `BitBottleneckLayer` (non-pre-activation).
pub struct Bottleneck {
    pub downsample: Option<ConvNorm>,
    pub conv1: ConvNorm,
    pub conv2: ConvNorm,
    pub conv3: ConvNorm,
}

/// Scratch buffers the backbone reuses between layers, sized for one batch.
pub struct BackboneBuffers {
    /// Ping-pong pair holding layer inputs and outputs (also the stem's conv output).
    pub a: wgpu::Buffer,
    pub b: wgpu::Buffer,
    pub mid1: wgpu::Buffer,
    pub mid2: wgpu::Buffer,
    pub shortcut: wgpu::Buffer,
}

pub struct Backbone {
    pub embedder: ConvNorm,
    pub stages: Vec<Vec<Bottleneck>>,
    groups: usize,
    image_size: (usize, usize),
}

/// An intermediate output the caller may want to keep: its name and where it lives.
pub struct Tap<'a> {
    pub name: String,
    pub value: Activation<'a>,
    pub len: usize,
    pub shape: Vec<usize>,
}

impl Backbone {
    pub fn load(gpu: &Gpu, cfg: &ModelConfig, w: &HostWeights) -> Result<Self> {
        let embedder = ConvNorm::load(
            gpu,
            w,
            &format!("{PREFIX}.embedder.convolution"),
            &format!("{PREFIX}.embedder.norm"),
            2,
        )?;
        let mut stages = Vec::new();
        for (s, &depth) in cfg.backbone.depths.iter().enumerate() {
            let mut layers = Vec::new();
            for l in 0..depth {
                let p = format!("{PREFIX}.encoder.stages.{s}.layers.{l}");
                let stride = if l == 0 && s > 0 { 2 } else { 1 };
                let cn = |i: usize, stride: usize| {
                    ConvNorm::load(
                        gpu,
                        w,
                        &format!("{p}.conv{i}"),
                        &format!("{p}.norm{i}"),
                        stride,
                    )
                };
                layers.push(Bottleneck {
                    downsample: if l == 0 {
                        Some(ConvNorm::load(
                            gpu,
                            w,
                            &format!("{p}.downsample.conv"),
                            &format!("{p}.downsample.norm"),
                            stride,
                        )?)
                    } else {
                        None
                    },
                    conv1: cn(1, 1)?,
                    conv2: cn(2, stride)?,
                    conv3: cn(3, 1)?,
                });
            }
            stages.push(layers);
        }
        Ok(Self {
            embedder,
            stages,
            groups: cfg.backbone.num_groups,
            image_size: cfg.image_size,
        })
    }

    /// f32 elements per image of each scratch buffer: (a/b, mid1, mid2, shortcut).
    pub fn buffer_lens(cfg: &ModelConfig) -> (usize, usize, usize, usize) {
        let (sh, sw) = cfg.stem_conv_size();
        let mut ab = cfg.backbone.embedding_size * sh * sw;
        let (mut mid1, mut mid2, mut sc) = (1, 1, 1);
        let mut in_size = cfg.stem_size();
        for (s, &(oh, ow)) in cfg.stage_sizes().iter().enumerate() {
            let out = cfg.backbone.stage_channels[s];
            let mid = cfg.backbone.mid_channels(s);
            ab = ab.max(out * oh * ow);
            mid1 = mid1.max(mid * in_size.0 * in_size.1);
            mid2 = mid2.max(mid * oh * ow);
            sc = sc.max(out * oh * ow);
            in_size = (oh, ow);
        }
        (ab, mid1, mid2, sc)
    }

    pub fn alloc(gpu: &Gpu, cfg: &ModelConfig, batch: usize) -> BackboneBuffers {
        let (ab, mid1, mid2, sc) = Self::buffer_lens(cfg);
        BackboneBuffers {
            a: gpu.storage("backbone.a", ab * batch),
            b: gpu.storage("backbone.b", ab * batch),
            mid1: gpu.storage("backbone.mid1", mid1 * batch),
            mid2: gpu.storage("backbone.mid2", mid2 * batch),
            shortcut: gpu.storage("backbone.shortcut", sc * batch),
        }
    }

    /// Records the backbone on `pixels` [B, 3, H, W]; returns where the feature map
    /// [B, C, h, w] is and its shape. `tap` sees each stage's output right after it is made.
    pub fn record<'a>(
        &self,
        gpu: &Gpu,
        p: &mut Program,
        batch: usize,
        pixels: &wgpu::Buffer,
        bufs: &'a BackboneBuffers,
        tap: &mut dyn FnMut(&mut Program, Tap<'_>),
    ) -> (Activation<'a>, (usize, usize, usize)) {
        let g = self.groups;
        let (h, w) = self.image_size;
        p.set_scope("backbone.stem");
        let pixels = Activation::buffer(pixels);
        // The stem's norm stores a texture where one fits, and the max pool reads it and
        // stores one for the first stage's 1x1 convs to read in place (CPU adapters).
        let plain = (true, None);
        let slot = (&bufs.a, Some("backbone.stem"));
        let (stem, stem_out) =
            self.embedder
                .record(gpu, p, batch, g, plain, &pixels, (3, h, w), slot);
        let pool = MaxPool::same(batch, stem.0, stem.1, stem.2, 3, 2);
        let pooled = match &stem_out.texture {
            Some(t) if max_pool::texture_fits(gpu, pool) => {
                let (rows, ohw) = (batch * pool.c, pool.oh * pool.ow);
                let width = conv2d::input_texture_width(ohw);
                let y = p
                    .scratch_texture(gpu, "backbone.pooled", (rows, ohw), (rows, width))
                    .expect("max_pool::texture_fits checked the size");
                max_pool::record_texture(gpu, p, pool, t, &y);
                Some(y)
            }
            _ => {
                let x = stem_out.to_buffer(gpu, p);
                max_pool::record(gpu, p, pool, x, &bufs.b);
                None
            }
        };
        let mut shape = (stem.0, pool.oh, pool.ow);
        let len = |(c, h, w): (usize, usize, usize)| batch * c * h * w;
        let mut x = Activation {
            buffer: &bufs.b,
            texture: pooled,
        };
        tap(
            p,
            Tap {
                name: "stem".into(),
                value: x.clone(),
                len: len(shape),
                shape: vec![batch, shape.0, shape.1, shape.2],
            },
        );
        // Layer outputs alternate between a and b; the texture roles follow the buffers.
        let slots = [(&bufs.a, Some("backbone.a")), (&bufs.b, Some("backbone.b"))];
        let mut next = 0;
        for (s, layers) in self.stages.iter().enumerate() {
            for (l, layer) in layers.iter().enumerate() {
                p.set_scope(format!("backbone.stages.{s}.layers.{l}"));
                let shortcut = match &layer.downsample {
                    Some(ds) => {
                        let plain = (false, None);
                        let slot = (&bufs.shortcut, Some("backbone.shortcut"));
                        ds.record(gpu, p, batch, g, plain, &x, shape, slot).1
                    }
                    None => x.clone(),
                };
                let relu = (true, None);
                let (m1, mid1) = layer.conv1.record(
                    gpu,
                    p,
                    batch,
                    g,
                    relu,
                    &x,
                    shape,
                    (&bufs.mid1, Some("backbone.mid1")),
                );
                let (m2, mid2) = layer.conv2.record(
                    gpu,
                    p,
                    batch,
                    g,
                    relu,
                    &mid1,
                    m1,
                    (&bufs.mid2, Some("backbone.mid2")),
                );
                // ReLU(norm3(conv3) + shortcut), the add fused into the norm's pass.
                let add_relu = (true, Some(&shortcut));
                let (out, y) =
                    layer
                        .conv3
                        .record(gpu, p, batch, g, add_relu, &mid2, m2, slots[next]);
                shape = out;
                x = y;
                next = 1 - next;
            }
            tap(
                p,
                Tap {
                    name: format!("stages.{s}"),
                    value: x.clone(),
                    len: len(shape),
                    shape: vec![batch, shape.0, shape.1, shape.2],
                },
            );
        }
        (x, shape)
    }
}
