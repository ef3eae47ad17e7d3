//! `conv2d`: the backbone's convolutions (bias-free, weights standardised on the host) and the
//! patch projection (with a bias), as an implicit GEMM over `[B, C, H, W]` tensors.
//!
//! One tiling (128 pixels x 128 couts per workgroup, or 64 couts on a narrow CPU tile; see
//! shaders/conv2d.wgsl), three ways to fill it ([`Fill`]), each with GPU and CPU-adapter
//! invocation blocks ([`Block`]); [`record`] picks the fastest [`Variant`] that fits the shape
//! and the adapter.

use anyhow::Result;

use crate::gpu::Gpu;
use crate::ops::activation::Activation;
use crate::ops::linear::{self, Linear, Weight};
use crate::ops::matrix_texture::{self, MatrixTexture, Place, TexelFormat};
use crate::ops::{Bind, Call, Kernel, Program, grid_1d, kernel, to_texture};

pub const KERNEL: Kernel = kernel!("conv2d");

/// Output pixels per workgroup, in every variant.
const TILE: usize = 128;
const FLAG_BIAS: u32 = 1;
/// The shader splits k into (ci, ky, kx) by multiplying with f32 reciprocals, exact below this.
const MAX_K: usize = 1 << 22;

/// Keep in sync with `Params` in shaders/conv2d.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Conv2dParams {
    pub batch: u32,
    pub cin: u32,
    pub h: u32,
    pub w: u32,
    pub cout: u32,
    pub kh: u32,
    pub kw: u32,
    pub stride: u32,
    pub pad_top: u32,
    pub pad_left: u32,
    pub oh: u32,
    pub ow: u32,
    pub flags: u32,
    /// `1 / (kh * kw)` and `1 / kw`, rounded to f32.
    pub inv_khw: f32,
    pub inv_kw: f32,
}

/// Shape of one convolution. The bottom/right padding is whatever `oh`/`ow` imply; padded
/// positions read as zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2d {
    pub batch: usize,
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub pad_top: usize,
    pub pad_left: usize,
    pub oh: usize,
    pub ow: usize,
}

/// TensorFlow "SAME" along one axis: (output size, padding before).
pub(crate) fn same_1d(x: usize, k: usize, s: usize) -> (usize, usize) {
    assert!(s > 0, "SAME padding needs a stride > 0");
    let out = x.div_ceil(s);
    let total = ((out.max(1) - 1) * s + k).saturating_sub(x);
    (out, total / 2)
}

impl Conv2d {
    /// TensorFlow/BiT "SAME": out = ceil(x / s); total pad = max((out-1)*s + k - x, 0); pad/2
    /// before (top/left), the rest after.
    pub fn same(
        batch: usize,
        cin: usize,
        h: usize,
        w: usize,
        cout: usize,
        k: usize,
        stride: usize,
    ) -> Self {
        let (oh, pad_top) = same_1d(h, k, stride);
        let (ow, pad_left) = same_1d(w, k, stride);
        Self {
            batch,
            cin,
            h,
            w,
            cout,
            kh: k,
            kw: k,
            stride,
            pad_top,
            pad_left,
            oh,
            ow,
        }
    }

    /// No padding (PyTorch's default): out = (x - k) / s + 1, floored; the patch projection
    /// (kernel = stride = patch size).
    pub fn valid(
        batch: usize,
        cin: usize,
        h: usize,
        w: usize,
        cout: usize,
        k: usize,
        stride: usize,
    ) -> Self {
        assert!(stride > 0, "conv2d needs a stride > 0");
        assert!(
            h >= k && w >= k,
            "a 'valid' {k}x{k} conv needs an input of at least {k}x{k}, got {h}x{w}"
        );
        let (oh, ow) = ((h - k) / stride + 1, (w - k) / stride + 1);
        Self {
            batch,
            cin,
            h,
            w,
            cout,
            kh: k,
            kw: k,
            stride,
            pad_top: 0,
            pad_left: 0,
            oh,
            ow,
        }
    }

    /// Elements of the output, `batch * cout * oh * ow`.
    pub fn out_len(&self) -> usize {
        self.batch * self.cout * self.oh * self.ow
    }

    /// Elements of the input, `batch * cin * h * w`.
    pub fn in_len(&self) -> usize {
        self.batch * self.cin * self.h * self.w
    }

    /// Elements of the weight, `cout * cin * kh * kw`.
    pub fn weight_len(&self) -> usize {
        self.cout * self.cin * self.kh * self.kw
    }

    /// The GEMM's reduction length, `cin * kh * kw`.
    pub fn k(&self) -> usize {
        self.cin * self.kh * self.kw
    }

    /// Multiply-adds, `batch * cout * oh * ow * cin * kh * kw`.
    pub fn macs(&self) -> usize {
        self.out_len() * self.k()
    }
}

/// How the shader fills its tiles and writes y; every fill multiplies the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fill {
    /// Any shape: col gathered element by element, weights read as f32, y written per element.
    Generic,
    /// K and `oh * ow` multiples of 4: col gathered, weights read and y written as vec4.
    Gather,
    /// 1x1, stride 1, no padding, K (= cin) and `oh * ow` multiples of 4: col read straight from
    /// x as vec4, no gather.
    OneByOne,
}

/// Who owns which outputs of a workgroup's tile (128 pixels x `rows()` couts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Block {
    /// 16x16 invocations, each owning 8 couts x 8 pixels: GPUs.
    Gpu,
    /// 8x4 invocations, each owning 32 couts x 16 pixels: CPU adapters (lavapipe), where an
    /// invocation is one SIMD lane and workgroup-memory loads are done lane by lane, so a
    /// bigger block (fewer loads per fma) is faster, while its 512 accumulators would spill out
    /// of a GPU's registers.
    Cpu,
    /// 8x2 invocations owning 32x16: `Cpu` on a 64-cout tile, for convs with 64 or fewer couts,
    /// which would leave half of a 128-cout tile idle.
    CpuNarrow,
}

impl Block {
    /// Couts per workgroup.
    pub fn rows(self) -> usize {
        match self {
            Block::Gpu | Block::Cpu => 128,
            Block::CpuNarrow => 64,
        }
    }
}

/// One entry point of the shader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Variant {
    pub fill: Fill,
    pub block: Block,
}

impl Variant {
    /// Every entry point of the shader.
    pub const ALL: [Variant; 9] = {
        const fn v(fill: Fill, block: Block) -> Variant {
            Variant { fill, block }
        }
        [
            v(Fill::Generic, Block::Gpu),
            v(Fill::Generic, Block::Cpu),
            v(Fill::Generic, Block::CpuNarrow),
            v(Fill::Gather, Block::Gpu),
            v(Fill::Gather, Block::Cpu),
            v(Fill::Gather, Block::CpuNarrow),
            v(Fill::OneByOne, Block::Gpu),
            v(Fill::OneByOne, Block::Cpu),
            v(Fill::OneByOne, Block::CpuNarrow),
        ]
    };

    /// The fastest variant that is correct for `shape` on this adapter.
    pub fn choose(gpu: &Gpu, shape: Conv2d) -> Self {
        let block = if !gpu.cpu_kernels() {
            Block::Gpu
        } else if shape.cout <= 64 {
            Block::CpuNarrow
        } else {
            Block::Cpu
        };
        let fill = [Fill::OneByOne, Fill::Gather]
            .into_iter()
            .find(|&fill| Variant { fill, block }.fits(shape))
            .unwrap_or(Fill::Generic);
        Variant { fill, block }
    }

    /// Whether this variant computes `shape` correctly. Empty sizes are left to `Generic`: their
    /// buffers may be too small to bind as vec4 arrays.
    pub fn fits(self, shape: Conv2d) -> bool {
        let ohw = shape.oh * shape.ow;
        let vec4 = shape.k() > 0 && shape.k().is_multiple_of(4) && ohw > 0 && ohw.is_multiple_of(4);
        match self.fill {
            Fill::Generic => true,
            Fill::Gather => vec4,
            Fill::OneByOne => {
                vec4 && (shape.kh, shape.kw, shape.stride) == (1, 1, 1)
                    && (shape.pad_top, shape.pad_left) == (0, 0)
                    && (shape.oh, shape.ow) == (shape.h, shape.w)
            }
        }
    }

    pub fn entry(self) -> &'static str {
        match (self.fill, self.block) {
            (Fill::Generic, Block::Gpu) => "main",
            (Fill::Generic, Block::Cpu) => "main_cpu",
            (Fill::Generic, Block::CpuNarrow) => "main_cpu64",
            (Fill::Gather, Block::Gpu) => "main_gather",
            (Fill::Gather, Block::Cpu) => "main_gather_cpu",
            (Fill::Gather, Block::CpuNarrow) => "main_gather_cpu64",
            (Fill::OneByOne, Block::Gpu) => "main_1x1",
            (Fill::OneByOne, Block::Cpu) => "main_1x1_cpu",
            (Fill::OneByOne, Block::CpuNarrow) => "main_1x1_cpu64",
        }
    }
}

/// x as a buffer holds [batch, cin, h, w], as a texture [batch * cin, h * w].
fn check_input(x: Place<'_>, shape: &Conv2d) {
    match x {
        Place::Buffer(b) => check_buffer("x", b, shape.in_len(), shape),
        Place::Texture(t) => assert!(
            t.rows >= shape.batch * shape.cin && t.cols == shape.h * shape.w,
            "conv2d: x texture [{}, {}] does not hold {shape:?}",
            t.rows,
            t.cols
        ),
    }
}

/// Columns to allocate in a texture that holds a conv's input [batch * cin, hw] so that a
/// 1x1 texture product can read it in place (its tiles run past hw).
pub fn input_texture_width(hw: usize) -> usize {
    hw.next_multiple_of(linear::TEXTURE_COLS)
}

/// How a conv runs: which of the texture products fits on this adapter, else the buffer
/// kernels ([`record`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    Texture1x1,
    TextureIm2col,
    Buffer,
}

impl Path {
    /// The path for `shape`; the texture ones need the weight as a texture (`has_texture`).
    pub fn choose(gpu: &Gpu, shape: Conv2d, has_texture: bool) -> Self {
        if has_texture && texture_1x1_fits(gpu, shape) {
            Path::Texture1x1
        } else if has_texture && texture_im2col_fits(gpu, shape) {
            Path::TextureIm2col
        } else {
            Path::Buffer
        }
    }
}

/// The weights of a conv: its [cout, cin, kh, kw] buffer, and on CPU adapters the same as a
/// [cout, cin * kh * kw] texture ([`texture_weight`]).
#[derive(Clone, Copy)]
pub struct ConvWeights<'a> {
    pub buffer: &'a wgpu::Buffer,
    pub texture: Option<&'a MatrixTexture>,
}

/// Records `y = conv(x, w) (+ bias)` along `path` (from [`Path::choose`]). x may live in a
/// texture ([`Activation`]); the buffer kernels get it copied back to its buffer first.
/// y may be a texture only on a texture path.
#[allow(clippy::too_many_arguments)]
pub fn record_path(
    gpu: &Gpu,
    program: &mut Program,
    path: Path,
    shape: Conv2d,
    x: &Activation<'_>,
    w: ConvWeights<'_>,
    bias: Option<&wgpu::Buffer>,
    y: Place<'_>,
) {
    let texture = || w.texture.expect("a texture path needs the weight texture");
    match (path, y) {
        (Path::Texture1x1, _) => {
            record_1x1_texture(gpu, program, shape, x.place(), texture(), bias, y)
        }
        (Path::TextureIm2col, _) => {
            record_im2col_texture(gpu, program, shape, x.place(), texture(), bias, y)
        }
        (Path::Buffer, Place::Buffer(y)) => {
            let x = x.to_buffer(gpu, program);
            record(gpu, program, shape, x, w.buffer, bias, y)
        }
        (Path::Buffer, Place::Texture(_)) => {
            panic!("conv2d: the buffer kernels cannot store a texture ({shape:?})")
        }
    }
}

/// y as a buffer holds [batch, cout, oh, ow], as a texture [batch * cout, oh * ow].
fn check_output(y: Place<'_>, shape: &Conv2d) {
    match y {
        Place::Buffer(b) => check_buffer("y", b, shape.out_len(), shape),
        Place::Texture(t) => assert!(
            t.height >= shape.batch * shape.cout && t.cols >= shape.oh * shape.ow,
            "conv2d: y texture [{}, {}] does not hold {shape:?}",
            t.height,
            t.cols
        ),
    }
}

fn check_buffer(what: &str, buffer: &wgpu::Buffer, len: usize, shape: &Conv2d) {
    assert!(
        buffer.size() >= (len * 4) as u64,
        "conv2d {shape:?}: {what} holds {} bytes, needs {}",
        buffer.size(),
        len * 4
    );
}

/// Records `y = conv(x, w) (+ bias)`. Without a bias a placeholder fills its binding.
pub fn record(
    gpu: &Gpu,
    program: &mut Program,
    shape: Conv2d,
    x: &wgpu::Buffer,            // [batch, cin, h, w]
    w: &wgpu::Buffer,            // [cout, cin, kh, kw]
    bias: Option<&wgpu::Buffer>, // [cout]
    y: &wgpu::Buffer,            // [batch, cout, oh, ow]
) {
    let variant = Variant::choose(gpu, shape);
    record_variant(gpu, program, shape, variant, x, w, bias, y);
}

/// [`record`] with the variant chosen by the caller (tests run every variant on any adapter).
/// Panics if `variant` cannot handle `shape`.
#[allow(clippy::too_many_arguments)]
pub fn record_variant(
    gpu: &Gpu,
    program: &mut Program,
    shape: Conv2d,
    variant: Variant,
    x: &wgpu::Buffer,            // [batch, cin, h, w]
    w: &wgpu::Buffer,            // [cout, cin, kh, kw]
    bias: Option<&wgpu::Buffer>, // [cout]
    y: &wgpu::Buffer,            // [batch, cout, oh, ow]
) {
    check_buffer("x", x, shape.in_len(), &shape);
    check_buffer("w", w, shape.weight_len(), &shape);
    check_buffer("y", y, shape.out_len(), &shape);
    if let Some(b) = bias {
        check_buffer("bias", b, shape.cout, &shape);
    }
    assert!(
        variant.fits(shape),
        "conv2d: {variant:?} cannot compute {shape:?}"
    );
    assert!(
        shape.k() < MAX_K,
        "conv2d {shape:?}: cin * kh * kw = {} must stay below {MAX_K}",
        shape.k()
    );
    let u = |v: usize| u32::try_from(v).expect("conv2d size fits in u32");
    let params = Conv2dParams {
        batch: u(shape.batch),
        cin: u(shape.cin),
        h: u(shape.h),
        w: u(shape.w),
        cout: u(shape.cout),
        kh: u(shape.kh),
        kw: u(shape.kw),
        stride: u(shape.stride),
        pad_top: u(shape.pad_top),
        pad_left: u(shape.pad_left),
        oh: u(shape.oh),
        ow: u(shape.ow),
        flags: if bias.is_some() { FLAG_BIAS } else { 0 },
        inv_khw: (1.0 / (shape.kh * shape.kw).max(1) as f64) as f32,
        inv_kw: (1.0 / shape.kw.max(1) as f64) as f32,
    };
    let [gx, gy, _] = grid_1d((shape.batch * shape.oh * shape.ow).div_ceil(TILE));
    program.push(
        gpu,
        Call {
            kernel: &KERNEL,
            entry: variant.entry(),
            params,
            bindings: &[
                Bind::from(x),
                Bind::from(w),
                Bind::from(bias.unwrap_or(w)),
                Bind::from(y),
            ],
            workgroups: [gx, gy, u(shape.cout.div_ceil(variant.block.rows()))],
            flops: 2.0 * shape.macs() as f64,
            bytes: 4.0 * (shape.in_len() + shape.weight_len() + shape.out_len()) as f64,
        },
    );
}

/// CPU reference, accumulating in f64.
pub fn cpu(shape: Conv2d, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let Conv2d {
        batch,
        cin,
        h,
        w: wd,
        cout,
        kh,
        kw,
        stride,
        pad_top,
        pad_left,
        oh,
        ow,
    } = shape;
    assert_eq!(x.len(), shape.in_len(), "conv2d cpu: x length");
    assert_eq!(w.len(), shape.weight_len(), "conv2d cpu: w length");
    let mut y = vec![0.0f32; shape.out_len()];
    for b in 0..batch {
        for co in 0..cout {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = bias.map_or(0.0, |b| b[co] as f64);
                    for ci in 0..cin {
                        for ky in 0..kh {
                            // Signed, since the tap may fall in the top/left padding.
                            let iy = (oy * stride + ky) as isize - pad_top as isize;
                            if iy < 0 || iy >= h as isize {
                                continue;
                            }
                            for kx in 0..kw {
                                let ix = (ox * stride + kx) as isize - pad_left as isize;
                                if ix < 0 || ix >= wd as isize {
                                    continue;
                                }
                                let xv = x[((b * cin + ci) * h + iy as usize) * wd + ix as usize];
                                let wv = w[((co * cin + ci) * kh + ky) * kw + kx];
                                acc += xv as f64 * wv as f64;
                            }
                        }
                    }
                    y[((b * cout + co) * oh + oy) * ow + ox] = acc as f32;
                }
            }
        }
    }
    y
}

/// CPU adapters: a 1x1, stride-1, unpadded conv is y[b] = W x[b] with x[b] the [cin, h * w]
/// matrix of image b, so it runs as linear's texture product (shaders/linear.wgsl): W as
/// the x operand ([cout, cin] texture made at load, [`texture_weight`]) and the input as
/// the transposed-weight operand, its [batch * cin, h * w] rows copied into a texture once per
/// conv (reads that are 2-3x cheaper than buffer loads on lavapipe).
/// Measured on lavapipe (`cargo bench --bench kernels -- conv`): 3-10x faster than the buffer
/// kernels at every conv of the full-size backbone, 64 input channels included.
pub fn texture_1x1_fits(gpu: &Gpu, shape: Conv2d) -> bool {
    let hw = shape.h * shape.w;
    gpu.cpu_kernels()
        && (
            shape.kh,
            shape.kw,
            shape.stride,
            shape.pad_top,
            shape.pad_left,
        ) == (1, 1, 1, 0, 0)
        && shape.cin.is_multiple_of(4)
        && matrix_texture::fits(gpu, shape.batch * shape.cin, input_texture_width(hw))
        && matrix_texture::fits(
            gpu,
            shape.cout.next_multiple_of(linear::TEXTURE_ROWS),
            shape.cin,
        )
}

/// A conv's weight [cout, cin, kh, kw] as the [cout, cin * kh * kw] matrix texture that
/// [`record_1x1_texture`] and [`record_im2col_texture`] read.
pub fn texture_weight(
    gpu: &Gpu,
    label: &str,
    w: &[f32],
    cout: usize,
    k: usize,
) -> Result<MatrixTexture> {
    MatrixTexture::upload(
        gpu,
        label,
        w,
        (cout, k),
        cout.next_multiple_of(linear::TEXTURE_ROWS),
        TexelFormat::F32,
    )
}

/// CPU adapters: any other conv runs as im2col, one image at a time, into a
/// [cin * kh * kw, oh * ow] matrix texture, and a texture product with the weight. Measured
/// on lavapipe: 3-8x faster than the buffer kernels at every other conv of the full-size
/// backbone (the stem's 147-long patches, stage 1's 576, the strided 1x1 shortcuts); the
/// buffer kernels remain for GPUs and for sizes past the texture limits.
pub fn texture_im2col_fits(gpu: &Gpu, shape: Conv2d) -> bool {
    let (k, ohw) = (shape.k(), shape.oh * shape.ow);
    let patches = (
        k.next_multiple_of(4),
        ohw.next_multiple_of(linear::TEXTURE_COLS),
    );
    gpu.cpu_kernels()
        && k > 0
        && matrix_texture::fits(gpu, patches.0, patches.1)
        && matrix_texture::fits(gpu, shape.cout.next_multiple_of(linear::TEXTURE_ROWS), k)
}

/// Output texels per lane of `im2col_texture_stride1` (its STRIDE1_RUN): 4 measured 0.75 of
/// 1's time over the backbone's 14 such convs on lavapipe; 8 left too few lanes at 24x24.
const STRIDE1_RUN: usize = 4;

/// Keep in sync with `Im2colParams` in shaders/to_texture.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct Im2colParams {
    c: u32,
    h: u32,
    w: u32,
    kh: u32,
    kw: u32,
    stride: u32,
    pad_top: u32,
    pad_left: u32,
    oh: u32,
    ow: u32,
    image: u32,
    texels: u32,
}

/// Records a conv that [`texture_im2col_fits`]: per image, its patches into a texture (one
/// texture shared by every image and every conv of this size), then the product.
pub fn record_im2col_texture(
    gpu: &Gpu,
    program: &mut Program,
    shape: Conv2d,
    x: Place<'_>,                // [batch, cin, h, w], or [batch * cin, h * w] texture
    w: &MatrixTexture,           // [cout, cin * kh * kw]
    bias: Option<&wgpu::Buffer>, // [cout]
    y: Place<'_>,                // [batch, cout, oh, ow], or [batch * cout, oh * ow] texture
) {
    assert!(
        texture_im2col_fits(gpu, shape),
        "conv2d: {shape:?} does not fit im2col textures"
    );
    check_input(x, &shape);
    check_output(y, &shape);
    let (k, ohw) = (shape.k(), shape.oh * shape.ow);
    let patches = program
        .scratch_texture(
            gpu,
            "conv2d.patches",
            (k, ohw),
            (
                k.next_multiple_of(4),
                ohw.next_multiple_of(linear::TEXTURE_COLS),
            ),
        )
        .expect("texture_im2col_fits checked the size");
    let u = |v: usize| u32::try_from(v).expect("conv2d size fits in u32");
    let texels = ohw.div_ceil(4);
    let operand = Weight::texture_operand(patches.clone(), ohw, k);
    // A texture input holds image b from row b * cin (inline loads); a buffer from b * cin * h * w.
    // Unstrided convs over rows of whole texels take two loads per output texel, not four.
    let aligned = shape.stride == 1 && shape.w.is_multiple_of(4) && shape.ow.is_multiple_of(4);
    // A buffer input (the stem's image) is copied image by image, one image row per texture
    // row, where that fits: im2col then loads each pixel inline instead of lane by lane (44 ->
    // 15 ms for the full-size stem on lavapipe).
    let rows = match x {
        Place::Buffer(_) => image_rows(gpu, program, shape),
        Place::Texture(_) => None,
    };
    // Output texels per lane: the stride-1 kernel's STRIDE1_RUN, 1 for the others.
    let (entry, source, image, lane_texels) = match (x, &rows) {
        (_, Some(t)) => ("im2col_rows", Bind::from(&t.view), 0, 1),
        (Place::Buffer(b), None) => ("im2col", Bind::from(b), shape.cin * shape.h * shape.w, 1),
        (Place::Texture(t), _) if aligned => (
            "im2col_texture_stride1",
            Bind::from(&t.view),
            shape.cin,
            STRIDE1_RUN,
        ),
        (Place::Texture(t), _) => ("im2col_texture", Bind::from(&t.view), shape.cin, 1),
    };
    let constants: &[(&str, f64)] = if lane_texels > 1 {
        &[("STRIDE1_RUN", STRIDE1_RUN as f64)]
    } else {
        &[]
    };
    let plane = shape.cin * shape.h * shape.w;
    for b in 0..shape.batch {
        if let (Place::Buffer(x), Some(t)) = (x, &rows) {
            to_texture::record_from(gpu, program, x, b * plane, shape.w, t);
        }
        program.push_specialized(
            gpu,
            Call {
                kernel: &to_texture::KERNEL,
                entry,
                params: Im2colParams {
                    c: u(shape.cin),
                    h: u(shape.h),
                    w: u(shape.w),
                    kh: u(shape.kh),
                    kw: u(shape.kw),
                    stride: u(shape.stride),
                    pad_top: u(shape.pad_top),
                    pad_left: u(shape.pad_left),
                    oh: u(shape.oh),
                    ow: u(shape.ow),
                    image: u(b * image),
                    texels: u(texels),
                },
                bindings: &[source, Bind::from(&patches.view)],
                workgroups: to_texture::row_grid(texels.div_ceil(lane_texels), k),
                flops: 0.0,
                bytes: 32.0 * (k * texels) as f64,
            },
            constants,
        );
        record_image_product(gpu, program, shape, b, (1, 0), w, &operand, bias, y);
    }
}

/// A [cin * h, w] matrix texture for one image of the input, one image row per texture row,
/// or None where that is past the adapter's texture limits.
fn image_rows(gpu: &Gpu, program: &mut Program, shape: Conv2d) -> Option<MatrixTexture> {
    let rows = shape.cin * shape.h;
    if !matrix_texture::fits(gpu, rows, shape.w) {
        return None;
    }
    program
        .scratch_texture(gpu, "conv2d.rows", (rows, shape.w), (rows, shape.w))
        .ok()
}

/// Records a conv that [`texture_1x1_fits`] as one product per image, its input copied into
/// a texture first unless it is one already (as [`input_texture_width`] allocates it).
pub fn record_1x1_texture(
    gpu: &Gpu,
    program: &mut Program,
    shape: Conv2d,
    x: Place<'_>,                // [batch, cin, h, w], or [batch * cin, h * w] texture
    w: &MatrixTexture,           // [cout, cin]
    bias: Option<&wgpu::Buffer>, // [cout]
    y: Place<'_>,                // [batch, cout, h, w], or [batch * cout, h * w] texture
) {
    assert!(
        texture_1x1_fits(gpu, shape),
        "conv2d: {shape:?} is not a texture 1x1 conv"
    );
    check_input(x, &shape);
    check_output(y, &shape);
    let (rows, hw) = (shape.batch * shape.cin, shape.h * shape.w);
    let input = match x {
        Place::Texture(t) => {
            // The product reads whole tiles of its second operand, past h * w.
            assert!(
                t.texels_wide() * 4 >= input_texture_width(hw),
                "conv2d: input texture {} texels wide, the product reads {}",
                t.texels_wide(),
                input_texture_width(hw) / 4
            );
            t.clone()
        }
        Place::Buffer(x) => {
            let input = program
                .scratch_texture(
                    gpu,
                    "conv2d.input",
                    (rows, hw),
                    (rows, input_texture_width(hw)),
                )
                .expect("texture_1x1_fits checked the size");
            to_texture::record(gpu, program, x, hw, &input);
            input
        }
    };
    let operand = Weight::texture_operand(input, hw, shape.cin);
    // Image b's rows start at b * cin: every image's product in one dispatch.
    let images = (shape.batch, shape.cin);
    record_image_product(gpu, program, shape, 0, images, w, &operand, bias, y);
}

/// Images b.. (`images`: how many, and how many rows of `patches` apart) as texture
/// products y[b] = W patches, in one dispatch: the weight [cout, k] texture as the first
/// operand, each image's [k, oh * ow] patches (image b's from row 0 of `patches`) as the
/// second, a bias per output channel, written at each image's place in y.
#[allow(clippy::too_many_arguments)]
fn record_image_product(
    gpu: &Gpu,
    program: &mut Program,
    shape: Conv2d,
    b: usize,
    (count, rows_apart): (usize, usize),
    w: &MatrixTexture,
    patches: &Weight,
    bias: Option<&wgpu::Buffer>,
    y: Place<'_>,
) {
    let ohw = shape.oh * shape.ow;
    // Image b's outputs: from b * cout * ohw in a buffer, from row b * cout in a texture.
    let product = Linear {
        row_bias: true,
        at: linear::Offsets {
            y_offset: b * shape.cout * ohw,
            y_row0: b * shape.cout,
            ..Default::default()
        },
        repeat: count,
        step: linear::Offsets {
            w_row0: rows_apart,
            y_offset: shape.cout * ohw,
            y_row0: shape.cout,
            ..Default::default()
        },
        ..Linear::new(shape.cout, ohw, patches.k)
    };
    linear::record_io(
        gpu,
        program,
        product,
        linear::Variant::texture(gpu, linear::WeightFormat::F32),
        Place::Texture(w),
        patches,
        bias,
        None,
        y,
    );
}
