//! `attention`: the multi-head self-attention core, softmax(q k^T / sqrt(head_dim)) v per head,
//! between the fused QKV linear and the output projection.
//!
//! Three dispatches of one shader: scores (S = scale * q k^T into the scratch buffer), softmax
//! (rows of S in place) and context (S v, heads concatenated), in one of two sets of entry
//! points (see [`Variant`]).

use anyhow::Result;

use crate::gpu::Gpu;
use crate::ops::linear::{self, Linear, Weight};
use crate::ops::matrix_texture::{self, MatrixTexture, Place, TexelFormat};
use crate::ops::{Bind, Call, Kernel, MAX_GROUPS_PER_DIM, Program, grid_1d, kernel, to_texture};

pub const KERNEL: Kernel = kernel!("attention");

/// CPU adapters with subgroups: the whole core in one dispatch (shaders/attention_fused.wgsl).
pub const KERNEL_FUSED: Kernel = kernel!("attention_fused");

/// Output tile edge of the `Tiled` multiplies (shaders/attention.wgsl `TILE`).
const TILE: usize = 64;
/// Queries and keys (or dims) per workgroup of the `Cpu` multiplies (`CPU_ROWS`, `CPU_COLS`).
const CPU_ROWS: usize = 128;
const CPU_COLS: usize = 64;
/// Rows per workgroup of `softmax_cpu` (`CPU_SOFTMAX_ROWS`).
const CPU_SOFTMAX_ROWS: usize = 64;

/// Keep in sync with `Params` in shaders/attention.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct AttentionParams {
    pub batch: u32,
    pub seq: u32,
    pub heads: u32,
    pub head_dim: u32,
    pub scale: f32,
    pub s_stride: u32,
}

/// Shape of one attention call.
#[derive(Clone, Copy, Debug)]
pub struct Attention {
    pub batch: usize,
    /// Tokens per image.
    pub seq: usize,
    pub heads: usize,
    pub head_dim: usize,
}

impl Attention {
    /// Width of q, k, v and the output: heads * head_dim.
    pub fn hidden(&self) -> usize {
        self.heads * self.head_dim
    }

    /// Row stride of the score matrix: seq rounded up to 4, so rows can be moved as vec4s.
    pub fn score_stride(&self) -> usize {
        self.seq.next_multiple_of(4)
    }

    /// f32 elements of scratch the dispatches need: the score matrix [B, heads, seq,
    /// score_stride].
    pub fn scratch_len(&self) -> usize {
        self.batch * self.heads * self.seq * self.score_stride()
    }
}

/// The shader's two sets of entry points; both leave the same result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// Any shape: the multiplies stage 64x64 tiles through workgroup memory and softmax spreads
    /// a row over a workgroup (GPUs).
    Tiled,
    /// `head_dim` a multiple of 4: the multiplies read vec4s straight from the buffers into
    /// 16x8 register blocks and softmax gives each invocation a row. CPU adapters (lavapipe)
    /// load lane by lane from workgroup memory as from buffers and pay for every barrier, so
    /// this is ~3x faster there; on a GPU its uncoalesced loads and 128 accumulators per
    /// invocation would not be.
    Cpu,
}

impl Variant {
    /// The fastest variant that is correct for `shape` on this adapter.
    pub fn choose(gpu: &Gpu, shape: Attention) -> Self {
        if gpu.cpu_kernels() && cpu_fits(shape) {
            Variant::Cpu
        } else {
            Variant::Tiled
        }
    }

    fn entries(self) -> [&'static str; 3] {
        match self {
            Variant::Tiled => ["scores", "softmax", "context"],
            Variant::Cpu => ["scores_cpu", "softmax_cpu", "context_cpu"],
        }
    }

    /// Workgroups of the three dispatches, in order.
    fn workgroups(self, shape: Attention) -> [usize; 3] {
        let bh = shape.batch * shape.heads;
        let rows = bh * shape.seq;
        match self {
            Variant::Tiled => {
                let seq_tiles = shape.seq.div_ceil(TILE);
                [
                    bh * seq_tiles * seq_tiles,
                    rows,
                    bh * seq_tiles * shape.head_dim.div_ceil(TILE),
                ]
            }
            Variant::Cpu => {
                let row_tiles = shape.seq.div_ceil(CPU_ROWS);
                [
                    bh * row_tiles * shape.seq.div_ceil(CPU_COLS),
                    rows.div_ceil(CPU_SOFTMAX_ROWS),
                    bh * row_tiles * shape.head_dim.div_ceil(CPU_COLS),
                ]
            }
        }
    }
}

/// Whether q, k and v can be read as whole vec4s (head_dim 0 is left out: nothing to read).
fn cpu_fits(shape: Attention) -> bool {
    shape.head_dim > 0 && shape.head_dim.is_multiple_of(4)
}

/// Records the three dispatches. `scratch` holds at least `shape.scratch_len()` floats and is
/// overwritten.
pub fn record(
    gpu: &Gpu,
    program: &mut Program,
    shape: Attention,
    qkv: &wgpu::Buffer,     // [B, seq, 3 * hidden]
    scratch: &wgpu::Buffer, // [B, heads, seq, score_stride]
    out: &wgpu::Buffer,     // [B, seq, hidden]
) {
    let variant = Variant::choose(gpu, shape);
    record_variant(gpu, program, shape, variant, qkv, scratch, out);
}

/// [`record`] with the entry points chosen by the caller (tests run both variants on any
/// adapter). Panics if `variant` cannot handle `shape`.
pub fn record_variant(
    gpu: &Gpu,
    program: &mut Program,
    shape: Attention,
    variant: Variant,
    qkv: &wgpu::Buffer,     // [B, seq, 3 * hidden]
    scratch: &wgpu::Buffer, // [B, heads, seq, score_stride]
    out: &wgpu::Buffer,     // [B, seq, hidden]
) {
    let Attention {
        batch,
        seq,
        heads,
        head_dim,
    } = shape;
    assert!(
        variant == Variant::Tiled || cpu_fits(shape),
        "attention: {variant:?} needs head_dim a positive multiple of 4, got {shape:?}"
    );
    let hidden = shape.hidden();
    let tokens = batch * seq;
    let check = |what: &str, buf: &wgpu::Buffer, len: usize| {
        assert!(
            buf.size() >= (len * 4) as u64,
            "attention {shape:?}: {what} needs {len} floats, buffer holds {}",
            buf.size() / 4
        );
    };
    check("qkv", qkv, tokens * 3 * hidden);
    check("scratch", scratch, shape.scratch_len());
    check("out", out, tokens * hidden);
    assert!(
        shape.scratch_len().max(tokens * 3 * hidden) <= u32::MAX as usize,
        "attention {shape:?}: indices pass u32"
    );

    let params = AttentionParams {
        batch: batch as u32,
        seq: seq as u32,
        heads: heads as u32,
        head_dim: head_dim as u32,
        scale: (1.0 / (head_dim as f64).sqrt()) as f32,
        s_stride: shape.score_stride() as u32,
    };
    let bh = (batch * heads) as f64;
    let (n, d) = (seq as f64, head_dim as f64);
    let scores = bh * n * n;
    let [scores_entry, softmax_entry, context_entry] = variant.entries();
    let [scores_groups, softmax_groups, context_groups] = variant.workgroups(shape);
    program.push(
        gpu,
        Call {
            kernel: &KERNEL,
            entry: scores_entry,
            params,
            bindings: &[Bind::from(scratch), Bind::from(qkv)],
            workgroups: grid_1d(scores_groups),
            flops: 2.0 * scores * d,
            bytes: 4.0 * (2.0 * bh * n * d + scores),
        },
    );
    program.push(
        gpu,
        Call {
            kernel: &KERNEL,
            entry: softmax_entry,
            params,
            bindings: &[Bind::from(scratch)],
            workgroups: grid_1d(softmax_groups),
            flops: 4.0 * scores,
            // Tiled reads a row three times and writes it twice, Cpu reads it twice.
            bytes: 4.0 * scores * if variant == Variant::Tiled { 5.0 } else { 3.0 },
        },
    );
    program.push(
        gpu,
        Call {
            kernel: &KERNEL,
            entry: context_entry,
            params,
            bindings: &[Bind::from(scratch), Bind::from(qkv), Bind::from(out)],
            workgroups: grid_1d(context_groups),
            flops: 2.0 * scores * d,
            bytes: 4.0 * (scores + 2.0 * bh * n * d),
        },
    );
}

/// CPU reference: per head, stable softmax of the scaled scores, then the weighted sum of v,
/// accumulating in f64.
pub fn cpu(shape: Attention, qkv: &[f32]) -> Vec<f32> {
    let Attention {
        batch,
        seq,
        heads,
        head_dim,
    } = shape;
    let hidden = shape.hidden();
    let stride = 3 * hidden;
    let scale = 1.0 / (head_dim as f64).sqrt();
    let mut out = vec![0.0f32; batch * seq * hidden];
    let mut p = vec![0.0f64; seq];
    for b in 0..batch {
        let row = |t: usize, part: usize, h: usize| {
            let start = (b * seq + t) * stride + part * hidden + h * head_dim;
            &qkv[start..start + head_dim]
        };
        for h in 0..heads {
            for i in 0..seq {
                let q = row(i, 0, h);
                for (j, pj) in p.iter_mut().enumerate() {
                    let dot: f64 = q
                        .iter()
                        .zip(row(j, 1, h))
                        .map(|(&a, &k)| a as f64 * k as f64)
                        .sum();
                    *pj = dot * scale;
                }
                let max = p.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let mut sum = 0.0;
                for pj in p.iter_mut() {
                    *pj = (*pj - max).exp();
                    sum += *pj;
                }
                let o = &mut out[(b * seq + i) * hidden + h * head_dim..][..head_dim];
                for (dd, od) in o.iter_mut().enumerate() {
                    let acc: f64 = p
                        .iter()
                        .enumerate()
                        .map(|(j, &pj)| pj * row(j, 2, h)[dd] as f64)
                        .sum();
                    *od = (acc / sum) as f32;
                }
            }
        }
    }
    out
}

/// CPU adapters: the two products as linear.wgsl's texture products, one per head, reading
/// q and v straight from the QKV linear's texture output and writing the context as the
/// output projection's input texture. Needs head_dim and hidden multiples of 4 and every
/// texture within the adapter's limits.
pub fn textures_fit(gpu: &Gpu, shape: Attention) -> bool {
    let tokens = shape.batch * shape.seq;
    gpu.cpu_kernels()
        && cpu_fits(shape)
        && matrix_texture::fits(gpu, qkv_texture_height(tokens), qkv_texture_width(shape))
        && matrix_texture::fits(gpu, shape.batch * shape.hidden(), keys_width(shape))
        && matrix_texture::fits(gpu, shape.heads * score_rows(shape), shape.seq)
}

/// Rows per head in the score textures: seq rounded up to the product's row tile.
fn score_rows(shape: Attention) -> usize {
    shape.seq.next_multiple_of(linear::TEXTURE_ROWS)
}

/// The keys' texture is as wide as the scores product reads: seq rounded up to its tile.
fn keys_width(shape: Attention) -> usize {
    shape.seq.next_multiple_of(linear::TEXTURE_COLS)
}

/// The QKV texture's rows: one image's queries are read as whole row tiles, and its values as
/// whole texels of keys, from any image's first row.
fn qkv_texture_height(tokens: usize) -> usize {
    (tokens + linear::TEXTURE_ROWS).next_multiple_of(linear::TEXTURE_ROWS)
}

/// ... and its columns: the last head's values are read as a whole column tile.
fn qkv_texture_width(shape: Attention) -> usize {
    3 * shape.hidden() + shape.head_dim.next_multiple_of(linear::TEXTURE_COLS)
}

/// The texture the QKV linear stores into, sized for [`record_textures`].
pub fn qkv_texture(gpu: &Gpu, shape: Attention) -> Result<MatrixTexture> {
    let tokens = shape.batch * shape.seq;
    MatrixTexture::new_padded(
        gpu,
        "qkv.texture",
        (tokens, 3 * shape.hidden()),
        (qkv_texture_height(tokens), qkv_texture_width(shape)),
        TexelFormat::F32,
    )
}

/// Scratch of [`record_textures`], which runs the variant it was made for: the fused kernel
/// needs none, the products [`ProductScratch`].
pub struct TextureScratch {
    products: Option<ProductScratch>,
}

/// [`TextureVariant::Products`]' scratch: the keys transposed, one image's scores and
/// unnormalised probabilities, and 1 / each row's sum.
struct ProductScratch {
    keys: MatrixTexture,
    scores: MatrixTexture,
    probs: MatrixTexture,
    inv_sums: wgpu::Buffer,
}

impl TextureScratch {
    pub fn new(gpu: &Gpu, shape: Attention, variant: TextureVariant) -> Result<Self> {
        if variant == TextureVariant::Fused {
            return Ok(Self { products: None });
        }
        let rows = shape.heads * score_rows(shape);
        let keys = shape.batch * shape.hidden();
        let t = |label: &str, rows, cols, width| {
            MatrixTexture::new_padded(gpu, label, (rows, cols), (rows, width), TexelFormat::F32)
        };
        let products = ProductScratch {
            keys: t("attention.keys", keys, shape.seq, keys_width(shape))?,
            scores: t("attention.scores", rows, shape.seq, shape.seq)?,
            probs: t("attention.probs", rows, shape.seq, shape.seq)?,
            inv_sums: gpu.storage("attention.inv_sums", rows),
        };
        Ok(Self {
            products: Some(products),
        })
    }
}

/// Keep in sync with `TransposeParams` in shaders/to_texture.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct TransposeParams {
    batch: u32,
    seq: u32,
    dim: u32,
    col0: u32,
    texels: u32,
}

/// The two ways [`record_textures`] runs attention on CPU adapters; both leave the same result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextureVariant {
    /// Keys transposed, then per image the scores product of every head (linear.wgsl's texture
    /// product), one softmax over all of them, and the context product of every head.
    Products,
    /// One dispatch of shaders/attention_fused.wgsl (online softmax, nothing stored between
    /// the products); needs [`fused_fits`].
    Fused,
}

impl TextureVariant {
    /// The fastest variant that is correct for `shape` on this adapter.
    pub fn choose(gpu: &Gpu, shape: Attention) -> Self {
        if fused_fits(gpu, shape) {
            TextureVariant::Fused
        } else {
            TextureVariant::Products
        }
    }
}

/// Most quads of a head's dims a lane of the fused kernel owns (`DQ` in the shader): 8 lanes
/// x 4 quads, head_dim up to 128.
const FUSED_DIM_QUADS: usize = 4;

/// Whether [`TextureVariant::Fused`] runs `shape` here: subgroups of 8 or more (it shares q
/// rows, the row maxima and sums and the probabilities across one) and head_dim at most 128.
pub fn fused_fits(gpu: &Gpu, shape: Attention) -> bool {
    linear::subgroups_fit(gpu)
        && shape.head_dim.div_ceil(4).div_ceil(8) <= FUSED_DIM_QUADS
        && textures_fit(gpu, shape)
}

/// Keep in sync with `FusedParams` in shaders/attention_fused.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct FusedParams {
    seq: u32,
    heads: u32,
    pairs: u32,
    head_texels: u32,
    hidden_texels: u32,
    scale: f32,
}

/// Records attention over `qkv` (from [`qkv_texture`], filled by the QKV linear) into `out`,
/// a [B * seq, hidden] matrix texture, with the variant `scratch` was made for. Panics unless
/// [`textures_fit`] (and, for the fused kernel, [`fused_fits`]).
pub fn record_textures(
    gpu: &Gpu,
    program: &mut Program,
    shape: Attention,
    qkv: &MatrixTexture,
    scratch: &TextureScratch,
    out: &MatrixTexture,
) {
    assert!(
        textures_fit(gpu, shape),
        "attention: {shape:?} does not fit the texture path"
    );
    let Some(scratch) = &scratch.products else {
        record_fused(gpu, program, shape, qkv, out);
        return;
    };
    let Attention {
        batch,
        seq,
        heads,
        head_dim: hd,
    } = shape;
    let hidden = shape.hidden();
    let u = |v: usize| u32::try_from(v).expect("attention size fits in u32");
    let texels = seq.div_ceil(4);
    program.push(
        gpu,
        Call {
            kernel: &to_texture::KERNEL,
            entry: "transpose",
            params: TransposeParams {
                batch: u(batch),
                seq: u(seq),
                dim: u(hidden),
                col0: u(hidden),
                texels: u(texels),
            },
            bindings: &[Bind::from(&qkv.view), Bind::from(&scratch.keys.view)],
            workgroups: grid_1d((batch * hidden * texels).div_ceil(64)),
            flops: 0.0,
            bytes: 32.0 * (batch * hidden * texels) as f64,
        },
    );
    let keys = Weight::texture_operand(scratch.keys.clone(), seq, hd);
    let values = Weight::texture_operand(qkv.clone(), hd, seq);
    let rows = score_rows(shape);
    let product = |program: &mut Program, shape: Linear, x, w: &Weight, y, at, scale| {
        let shape = Linear { at, ..shape };
        let v = linear::Variant::texture(gpu, linear::WeightFormat::F32);
        linear::record_io(gpu, program, shape, v, x, w, scale, None, y);
    };
    let softmax = AttentionParams {
        batch: 1,
        seq: u(seq),
        heads: u(heads),
        head_dim: u(hd),
        scale: (1.0 / (hd as f64).sqrt()) as f32,
        s_stride: u(rows),
    };
    // Every head's product in one dispatch (workgroup_id.z = head), one image at a time.
    let per_head = |m, n, k, step| Linear {
        repeat: heads,
        step,
        ..Linear::new(m, n, k)
    };
    for b in 0..batch {
        let at = linear::Offsets {
            x_row0: b * seq,
            w_row0: b * hidden,
            ..Default::default()
        };
        let step = linear::Offsets {
            x_col0: hd / 4,
            w_row0: hd,
            y_row0: rows,
            ..Default::default()
        };
        let (x, y) = (Place::Texture(qkv), Place::Texture(&scratch.scores));
        product(program, per_head(seq, seq, hd, step), x, &keys, y, at, None);
        program.push(
            gpu,
            Call {
                kernel: &KERNEL,
                entry: "softmax_texture",
                params: softmax,
                bindings: &[
                    Bind::from(&scratch.scores.view),
                    Bind::from(&scratch.probs.view),
                    Bind::from(&scratch.inv_sums),
                ],
                workgroups: grid_1d((heads * rows).div_ceil(64)),
                flops: 4.0 * (heads * seq * seq) as f64,
                bytes: 12.0 * (heads * seq * seq) as f64,
            },
        );
        let at = linear::Offsets {
            w_row0: b * seq,
            w_col0: 2 * hidden / 4,
            y_row0: b * seq,
            ..Default::default()
        };
        let step = linear::Offsets {
            x_row0: rows,
            w_col0: hd / 4,
            y_col0: hd / 4,
            ..Default::default()
        };
        let (x, y) = (Place::Texture(&scratch.probs), Place::Texture(out));
        let context = Linear {
            row_scale: true,
            ..per_head(seq, hd, seq, step)
        };
        let scale = Some(&scratch.inv_sums);
        product(program, context, x, &values, y, at, scale);
    }
}

/// [`TextureVariant::Fused`]: every head of every image in one dispatch.
fn record_fused(
    gpu: &Gpu,
    program: &mut Program,
    shape: Attention,
    qkv: &MatrixTexture,
    out: &MatrixTexture,
) {
    assert!(
        fused_fits(gpu, shape),
        "attention: {shape:?} does not fit the fused kernel on {}",
        gpu.info.name
    );
    let Attention {
        batch,
        seq,
        heads,
        head_dim: hd,
    } = shape;
    if batch * seq * heads == 0 {
        return;
    }
    let u = |v: usize| u32::try_from(v).expect("attention size fits in u32");
    // The row tiles of the texture products with x rows shared across the subgroup: the same
    // trade between registers and padding rows.
    let rows = linear::texture_rows(linear::Variant::TextureF32Subgroup, seq);
    let head_texels = hd / 4;
    let pairs = batch * heads;
    let scores = (batch * heads * seq * seq) as f64;
    program.push_specialized(
        gpu,
        Call {
            kernel: &KERNEL_FUSED,
            entry: "main",
            params: FusedParams {
                seq: u(seq),
                heads: u(heads),
                pairs: u(pairs),
                head_texels: u(head_texels),
                hidden_texels: u(shape.hidden() / 4),
                scale: (1.0 / (hd as f64).sqrt()) as f32,
            },
            bindings: &[Bind::from(&qkv.view), Bind::from(&out.view)],
            workgroups: [
                u(seq.div_ceil(rows)),
                u(pairs.min(MAX_GROUPS_PER_DIM as usize)),
                u(pairs.div_ceil(MAX_GROUPS_PER_DIM as usize)),
            ],
            flops: 4.0 * scores * hd as f64,
            // q once per row tile, k and v once per row tile and head, the context once.
            bytes: 4.0
                * (batch * seq * shape.hidden()) as f64
                * (2.0 * seq.div_ceil(rows) as f64 + 2.0),
        },
        &[
            ("TEX_ROWS", rows as f64),
            ("DIM_QUADS", head_texels.div_ceil(8) as f64),
        ],
    );
}
