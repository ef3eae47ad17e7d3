//! The BiT backbone: stem (conv 7x7/2, GroupNorm+ReLU, max pool 3x3/2) and bottleneck stages.
//! Field names follow the checkpoint's key segments.

use anyhow::Result;

use crate::config::ModelConfig;
use crate::gpu::Gpu;
use crate::model::weights::{HostWeights, standardize};
use crate::ops::Program;
use crate::ops::conv2d::{self, Conv2d};
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
        let cpu = gpu.info.device_type == wgpu::DeviceType::Cpu;
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

    /// conv(x) -> y, then GroupNorm (+ `residual`, + ReLU) in place; returns y's shape
    /// (c, h, w).
    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        gpu: &Gpu,
        p: &mut Program,
        batch: usize,
        groups: usize,
        (relu, residual): (bool, Option<&wgpu::Buffer>),
        x: &wgpu::Buffer,
        (cin, h, w): (usize, usize, usize),
        y: &wgpu::Buffer,
    ) -> (usize, usize, usize) {
        let shape = Conv2d::same(batch, cin, h, w, self.cout, self.k, self.stride);
        let gn = GroupNorm {
            batch,
            c: self.cout,
            hw: shape.oh * shape.ow,
            groups,
            eps: GN_EPS,
            relu,
        };
        // CPU adapters run the conv as a texture product wherever one of conv2d's texture
        // paths fits.
        let texture = self.texture.as_ref().filter(|_| {
            conv2d::texture_1x1_fits(gpu, shape) || conv2d::texture_im2col_fits(gpu, shape)
        });
        let product = |t: &MatrixTexture, y: Place<'_>, p: &mut Program| {
            if conv2d::texture_1x1_fits(gpu, shape) {
                conv2d::record_1x1_texture(gpu, p, shape, x, t, None, y);
            } else {
                conv2d::record_im2col_texture(gpu, p, shape, x, t, None, y);
            }
        };
        let rows = batch * self.cout;
        match texture {
            // The product stores its output as a texture, which the norm reads with inline
            // loads where a buffer costs a loop over the lanes per load.
            Some(t)
                if group_norm::Variant::Slices.fits(gn)
                    && matrix_texture::fits(gpu, rows, gn.hw) =>
            {
                let out = p
                    .scratch_texture(gpu, "conv2d.output", (rows, gn.hw), (rows, gn.hw))
                    .expect("matrix_texture::fits checked the size");
                product(t, Place::Texture(&out), p);
                let (gamma, beta) = (&self.gamma, &self.beta);
                group_norm::record_from_texture(gpu, p, gn, &out, y, gamma, beta, residual);
            }
            Some(t) => {
                product(t, Place::Buffer(y), p);
                group_norm::record(gpu, p, gn, y, &self.gamma, &self.beta, residual);
            }
            None => {
                conv2d::record(gpu, p, shape, x, &self.weight, None, y);
                group_norm::record(gpu, p, gn, y, &self.gamma, &self.beta, residual);
            }
        }
        (self.cout, shape.oh, shape.ow)
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
    pub buffer: &'a wgpu::Buffer,
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

    /// Records the backbone on `pixels` [B, 3, H, W]; returns the buffer holding the feature
    /// map [B, C, h, w] and that shape. `tap` sees each stage's output right after it is made.
    pub fn record<'a>(
        &self,
        gpu: &Gpu,
        p: &mut Program,
        batch: usize,
        pixels: &wgpu::Buffer,
        bufs: &'a BackboneBuffers,
        tap: &mut dyn FnMut(&mut Program, Tap<'_>),
    ) -> (&'a wgpu::Buffer, (usize, usize, usize)) {
        let g = self.groups;
        let (h, w) = self.image_size;
        p.set_scope("backbone.stem");
        let stem = self
            .embedder
            .record(gpu, p, batch, g, (true, None), pixels, (3, h, w), &bufs.a);
        let pool = MaxPool::same(batch, stem.0, stem.1, stem.2, 3, 2);
        max_pool::record(gpu, p, pool, &bufs.a, &bufs.b);
        let mut shape = (stem.0, pool.oh, pool.ow);
        let (mut x, mut y) = (&bufs.b, &bufs.a);
        tap(
            p,
            Tap {
                name: "stem".into(),
                buffer: x,
                len: batch * shape.0 * shape.1 * shape.2,
                shape: vec![batch, shape.0, shape.1, shape.2],
            },
        );
        for (s, layers) in self.stages.iter().enumerate() {
            for (l, layer) in layers.iter().enumerate() {
                p.set_scope(format!("backbone.stages.{s}.layers.{l}"));
                let shortcut = match &layer.downsample {
                    Some(ds) => {
                        let plain = (false, None);
                        ds.record(gpu, p, batch, g, plain, x, shape, &bufs.shortcut);
                        &bufs.shortcut
                    }
                    None => x,
                };
                let relu = (true, None);
                let m1 = layer
                    .conv1
                    .record(gpu, p, batch, g, relu, x, shape, &bufs.mid1);
                let m2 = layer
                    .conv2
                    .record(gpu, p, batch, g, relu, &bufs.mid1, m1, &bufs.mid2);
                // ReLU(norm3(conv3) + shortcut), the add fused into the norm's pass.
                let add_relu = (true, Some(shortcut));
                let out = layer
                    .conv3
                    .record(gpu, p, batch, g, add_relu, &bufs.mid2, m2, y);
                shape = out;
                std::mem::swap(&mut x, &mut y);
            }
            tap(
                p,
                Tap {
                    name: format!("stages.{s}"),
                    buffer: x,
                    len: batch * shape.0 * shape.1 * shape.2,
                    shape: vec![batch, shape.0, shape.1, shape.2],
                },
            );
        }
        (x, shape)
    }
}
