//! `linear`: y = act(x W^T + b) + residual, the encoder's and the head's matrix multiply.
//! Weights are f32 or f16 ([`WeightFormat`]); x, the sums, bias, residual and y are always f32.

use anyhow::{Context, Result, bail};

use crate::gpu::Gpu;
use crate::ops::matrix_texture::{self, MatrixTexture, Place, TexelFormat};
use crate::ops::{Bind, Call, Kernel, Program, gelu, kernel, to_texture};

pub const KERNEL: Kernel = kernel!("linear");

/// linear.wgsl with its texture products loading x one row per lane and sharing the rows across
/// the subgroup (shaders/linear_subgroup.wgsl); only for devices where [`subgroups_fit`].
pub const KERNEL_SUBGROUP: Kernel = kernel!("linear_subgroup");

/// The f16-weight entry points (u32 pairs unpacked with unpack2x16float): shaders/linear_f16.wgsl,
/// linear.wgsl included with f16 weight readers. Kept apart from [`KERNEL`] so that the f32
/// kernel needs nothing beyond core WGSL anywhere.
pub const KERNEL_F16: Kernel = kernel!("linear_f16");

/// The f16-weight entry points reading vec4<f16> (devices with `SHADER_F16`):
/// shaders/linear_f16_native.wgsl, linear.wgsl behind `enable f16;` (adapters without the
/// feature reject the whole module).
pub const KERNEL_F16_NATIVE: Kernel = kernel!("linear_f16_native");

/// Output rows and columns per workgroup of the buffer variants.
const TILE: usize = 128;
/// Output rows and columns per workgroup of the texture variants (16 rows x 3 quads x 8 lanes);
/// their x and w textures are padded to these many rows. The subgroup variants' tiles may be
/// 8 or 24 rows instead (see [`texture_rows`]): the rows they read past a texture's end are
/// never stored, and WGSL makes such loads safe.
pub const TEXTURE_ROWS: usize = 16;
pub const TEXTURE_COLS: usize = 96;

/// Quads (4 columns each) per lane of the texture products' tile for `n` columns, the
/// shader's TEX_QUADS: 3 (96 columns per workgroup) unless a narrower tile computes enough fewer
/// padding columns to pay for its worse loads-per-multiply ratio. The estimate per k step of
/// a lane is 16 x texel loads + 4 w loads per quad and 64 vec4 multiply-adds per quad, a
/// texel load counted as 4 multiply-adds. A narrower tile never reads past the columns a
/// 96-column one would (the padding every w texture has).
pub fn texture_quads(n: usize) -> usize {
    let cost = |q: usize| n.next_multiple_of(32 * q) * (80 * q + 64) / q;
    (1..=3)
        .filter(|&q| n.next_multiple_of(32 * q) <= n.next_multiple_of(TEXTURE_COLS))
        .min_by_key(|&q| (cost(q), 3 - q))
        .unwrap_or(3)
}

/// `data` [n, k] transposed to [k, width] (width >= n, zeros past n), in square blocks: a
/// row-by-row scatter writes every value a row apart, a cache miss each, and took most of
/// the full-size model's upload (85M weights).
pub fn transpose_padded(data: &[f32], (n, k): (usize, usize), width: usize) -> Vec<f32> {
    const BLOCK: usize = 32;
    assert!(
        data.len() == n * k && width >= n,
        "transpose_padded: [{n}, {k}] into {width}"
    );
    let mut out = vec![0.0f32; k * width];
    for j0 in (0..n).step_by(BLOCK) {
        for i0 in (0..k).step_by(BLOCK) {
            for j in j0..(j0 + BLOCK).min(n) {
                let row = &data[j * k..(j + 1) * k];
                for i in i0..(i0 + BLOCK).min(k) {
                    out[i * width + j] = row[i];
                }
            }
        }
    }
    out
}

/// Rows per lane of `variant`'s tile for `m` rows, the shader's TEX_ROWS: 16, or for the
/// subgroup variants whichever of 8, 16 and 24 costs least with its padding rows. The cost per
/// row and k step was measured in lavapipe's machine code (instructions per accumulator, x loads
/// shared across 8 rows): 72, 63 and 58.
pub fn texture_rows(variant: Variant, m: usize) -> usize {
    if !variant.needs_subgroups() {
        return TEXTURE_ROWS;
    }
    [(24, 58), (16, 63), (8, 72)]
        .into_iter()
        .min_by_key(|&(rows, cost)| m.next_multiple_of(rows) * cost)
        .map_or(TEXTURE_ROWS, |(rows, _)| rows)
}

/// Rows `start..start + rows` of a texture product, run with row tiles of `tile` rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowPart {
    pub start: usize,
    pub rows: usize,
    pub tile: usize,
}

/// How a texture product's `m` rows are dispatched: one part in [`texture_rows`]' tiles, or for
/// the subgroup variants, where it saves more than a strip of 8-row tiles would cost, whole
/// tiles of 24 (or 16) rows and the rest in a second dispatch of smaller tiles (one image's
/// 577 tokens: 576 rows in 24-row tiles and 1 in an 8-row tile, not 600 rows of work). The
/// costs are [`texture_rows`]'. A row bias indexes rows from the product's first, so those
/// products stay whole.
pub fn texture_row_parts(variant: Variant, m: usize, row_bias: bool) -> Vec<RowPart> {
    let tile = texture_rows(variant, m);
    let whole = vec![RowPart {
        start: 0,
        rows: m,
        tile,
    }];
    if !variant.needs_subgroups() || row_bias {
        return whole;
    }
    let cost = |rows: usize, tile: usize| {
        let per_row = [(24, 58), (16, 63), (8, 72)]
            .into_iter()
            .find(|&(t, _)| t == tile)
            .map_or(72, |(_, c)| c);
        rows.next_multiple_of(tile) * per_row
    };
    let mut best = (cost(m, tile), whole);
    for main in [24, 16] {
        let (head, rest) = (m / main * main, m % main);
        for small in [16, 8].into_iter().filter(|&t| t < main) {
            if head == 0 || rest == 0 {
                continue;
            }
            // A second dispatch has to save more than one strip of 8-row tiles costs.
            let split = cost(head, main) + cost(rest, small) + cost(8, 8);
            if split < best.0 {
                let parts = vec![
                    RowPart {
                        start: 0,
                        rows: head,
                        tile: main,
                    },
                    RowPart {
                        start: head,
                        rows: rest,
                        tile: small,
                    },
                ];
                best = (split, parts);
            }
        }
    }
    best.1
}

/// Whether the subgroup variants run on this device: subgroup operations enabled, and never
/// fewer than 8 invocations in a subgroup (a workgroup of the texture products is 8 lanes
/// sharing x rows).
pub fn subgroups_fit(gpu: &Gpu) -> bool {
    gpu.device.features().contains(wgpu::Features::SUBGROUP) && gpu.info.subgroup_min_size >= 8
}

/// Keep in sync with `Params` in shaders/linear.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct LinearParams {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub x_row_stride: u32,
    pub y_offset: u32,
    pub x_row0: u32,
    pub x_col0: u32,
    pub w_row0: u32,
    pub w_col0: u32,
    pub y_row0: u32,
    pub y_col0: u32,
    pub z_y_offset: u32,
    pub z_x_row0: u32,
    pub z_x_col0: u32,
    pub z_w_row0: u32,
    pub z_w_col0: u32,
    pub z_y_row0: u32,
    pub z_y_col0: u32,
}

/// Shape and epilogue of one linear.
#[derive(Clone, Copy, Debug)]
pub struct Linear {
    /// Rows of x (tokens).
    pub m: usize,
    /// Output features.
    pub n: usize,
    /// Input features.
    pub k: usize,
    /// Distance between consecutive rows of x, >= k.
    pub x_row_stride: usize,
    pub gelu: bool,
    /// The bias is indexed by row instead of column (a 1x1 conv computed as a product).
    pub row_bias: bool,
    /// Texture variants: the bias buffer holds instead one factor per row of x's texture (by
    /// its texture row, offsets included), which scales that row of the product (attention's
    /// context by 1 / the softmax sums); no bias is added then.
    pub row_scale: bool,
    /// Where each operand starts in its buffer or texture.
    pub at: Offsets,
    /// Texture variants: this many products of the same shape in one dispatch, product i
    /// with operands at `at + i * step` (attention's heads, a batch of 1x1 convs). 1 for one.
    pub repeat: usize,
    pub step: Offsets,
}

/// Where a linear's operands start, so that one buffer or texture holds many of them (the
/// images of a batched 1x1 conv, attention's heads). Texture offsets are in rows and texels
/// (4 columns); only the texture variants take them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offsets {
    /// y (and the residual) in their buffers, in f32 values.
    pub y_offset: usize,
    pub x_row0: usize,
    pub x_col0: usize,
    pub w_row0: usize,
    pub w_col0: usize,
    /// A texture y's first row and texel.
    pub y_row0: usize,
    pub y_col0: usize,
}

impl Offsets {
    /// `self + i * step`, field by field.
    pub fn advanced(self, step: Offsets, i: usize) -> Offsets {
        Offsets {
            y_offset: self.y_offset + i * step.y_offset,
            x_row0: self.x_row0 + i * step.x_row0,
            x_col0: self.x_col0 + i * step.x_col0,
            w_row0: self.w_row0 + i * step.w_row0,
            w_col0: self.w_col0 + i * step.w_col0,
            y_row0: self.y_row0 + i * step.y_row0,
            y_col0: self.y_col0 + i * step.y_col0,
        }
    }
}

impl Linear {
    pub fn new(m: usize, n: usize, k: usize) -> Self {
        Self {
            m,
            n,
            k,
            x_row_stride: k,
            gelu: false,
            row_bias: false,
            row_scale: false,
            at: Offsets::default(),
            repeat: 1,
            step: Offsets::default(),
        }
    }
}

/// How a weight matrix [n, k] is stored on the GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightFormat {
    /// f32, row-major [n, k].
    F32,
    /// IEEE binary16 (round to nearest even), two per u32 with the lower half first, rows
    /// zero-padded to a multiple of 4 halves ([n, k.next_multiple_of(4)]) so that every vec4 of
    /// weights is one aligned vec2<u32> (or vec4<f16>). Half the bytes of `F32`.
    F16,
}

impl WeightFormat {
    /// Bytes of an [n, k] matrix in this format.
    pub fn bytes(self, n: usize, k: usize) -> usize {
        match self {
            WeightFormat::F32 => 4 * n * k,
            WeightFormat::F16 => 2 * n * k.next_multiple_of(4),
        }
    }
}

/// Where a weight matrix lives: a storage buffer (GPUs) or a matrix texture (CPU adapters,
/// see [`matrix_texture`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightLayout {
    Buffer,
    Texture,
}

impl WeightLayout {
    /// Textures on CPU adapters wherever an [n, k] matrix fits the texture limits.
    pub fn for_adapter(gpu: &Gpu, n: usize, k: usize) -> Self {
        let cpu = gpu.cpu_kernels();
        if cpu && k > 0 && matrix_texture::fits(gpu, n.next_multiple_of(TEXTURE_COLS), k) {
            WeightLayout::Texture
        } else {
            WeightLayout::Buffer
        }
    }
}

#[derive(Clone, Debug)]
pub enum WeightStore {
    /// [`WeightFormat`]'s buffer layout.
    Buffer(wgpu::Buffer),
    /// [n, k] with rows padded to [`TEXTURE_COLS`], f32 or f16 texels.
    Texture(MatrixTexture),
}

/// A linear's weight matrix [n, k] on the GPU, in the layout and format the shader reads.
#[derive(Clone, Debug)]
pub struct Weight {
    pub store: WeightStore,
    pub format: WeightFormat,
    /// Output features (rows).
    pub n: usize,
    /// Input features (columns, before any padding).
    pub k: usize,
}

impl Weight {
    /// Uploads PyTorch's [n, k] f32 matrix in `format`, in the layout this adapter's kernels
    /// read ([`WeightLayout::for_adapter`]).
    pub fn upload(
        gpu: &Gpu,
        label: &str,
        data: &[f32],
        n: usize,
        k: usize,
        format: WeightFormat,
    ) -> Result<Self> {
        let layout = WeightLayout::for_adapter(gpu, n, k);
        Self::upload_in(gpu, label, data, (n, k), format, layout)
    }

    /// [`Weight::upload`] in a given layout. For f16, a finite value past f16's range
    /// (|w| > 65504) is an error rather than a silent infinity.
    pub fn upload_in(
        gpu: &Gpu,
        label: &str,
        data: &[f32],
        (n, k): (usize, usize),
        format: WeightFormat,
        layout: WeightLayout,
    ) -> Result<Self> {
        if data.len() != n * k {
            bail!(
                "linear weight {label}: expected [{n}, {k}] = {} values, got {}",
                n * k,
                data.len()
            );
        }
        let too_big = (format == WeightFormat::F16)
            .then(|| {
                data.iter()
                    .enumerate()
                    .find(|(_, v)| v.is_finite() && v.abs() > half::f16::MAX.to_f32())
            })
            .flatten();
        if let (WeightFormat::F16, Some((i, v))) = (format, too_big) {
            bail!(
                "linear weight {label}: value {v} at index {i} is outside f16's range \
                 (|w| <= 65504); load it as f32"
            );
        }
        if layout == WeightLayout::Texture {
            let texel = match format {
                WeightFormat::F32 => TexelFormat::F32,
                WeightFormat::F16 => TexelFormat::F16,
            };
            // W^T [k, n]: texel (c, k) holds W[4c..4c+4, k]; columns padded to the tile.
            let np = n.next_multiple_of(TEXTURE_COLS);
            let wt = transpose_padded(data, (n, k), np);
            let t = MatrixTexture::upload(gpu, label, &wt, (k, np), k.next_multiple_of(4), texel)
                .with_context(|| format!("linear weight {label}"))?;
            return Ok(Self {
                store: WeightStore::Texture(t),
                format,
                n,
                k,
            });
        }
        let buffer = match format {
            WeightFormat::F32 => gpu.upload(label, data),
            WeightFormat::F16 => {
                if !f16_supported(gpu) {
                    bail!(
                        "linear weight {label}: f16 weights need unpack2x16float, which wgpu \
                         withholds on {} without SHADER_F16; load them as f32",
                        gpu.info.name
                    );
                }
                use wgpu::util::DeviceExt;
                let mut words = pack_f16(data, n, k);
                // Bindable even when empty: a vec2<u32> array needs at least 8 bytes.
                words.resize(words.len().max(4), 0);
                gpu.device
                    .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                        label: Some(label),
                        contents: bytemuck::cast_slice(&words),
                        usage: wgpu::BufferUsages::STORAGE
                            | wgpu::BufferUsages::COPY_DST
                            | wgpu::BufferUsages::COPY_SRC,
                    })
            }
        };
        Ok(Self {
            store: WeightStore::Buffer(buffer),
            format,
            n,
            k,
        })
    }

    /// An activation as the second operand of a texture product: `t` holds it transposed,
    /// [k rows (from `Offsets::w_row0`), n columns], as the texture variants read W^T.
    pub fn texture_operand(t: MatrixTexture, n: usize, k: usize) -> Self {
        Self {
            store: WeightStore::Texture(t),
            format: WeightFormat::F32,
            n,
            k,
        }
    }

    /// The buffer of a [`WeightLayout::Buffer`] weight.
    pub fn buffer(&self) -> Option<&wgpu::Buffer> {
        match &self.store {
            WeightStore::Buffer(b) => Some(b),
            WeightStore::Texture(_) => None,
        }
    }

    pub fn layout(&self) -> WeightLayout {
        match self.store {
            WeightStore::Buffer(_) => WeightLayout::Buffer,
            WeightStore::Texture(_) => WeightLayout::Texture,
        }
    }

    /// Bytes the matrix takes on the GPU (padding included, the empty-matrix minimum not).
    pub fn bytes(&self) -> usize {
        match &self.store {
            WeightStore::Buffer(_) => self.format.bytes(self.n, self.k),
            WeightStore::Texture(t) => t.bytes(),
        }
    }
}

/// Whether the f16-weight entry points can run here. unpack2x16float is core WGSL, but wgpu
/// gates it behind a downlevel flag that only llvmpipe lacks, and only without SHADER_F16
/// (checked on the device here, a little stricter than wgpu's adapter check).
pub fn f16_supported(gpu: &Gpu) -> bool {
    gpu.device.features().contains(wgpu::Features::SHADER_F16)
        || !gpu.info.driver.to_lowercase().contains("llvmpipe")
}

/// [n, k] f32 to [`WeightFormat::F16`]'s u32 words: rows padded with zeros to a multiple of 4
/// halves, two halves per word, lower half first.
pub fn pack_f16(w: &[f32], n: usize, k: usize) -> Vec<u32> {
    use half::slice::HalfFloatSliceExt;
    let k4 = k.next_multiple_of(4);
    let mut halves = vec![half::f16::ZERO; n * k4];
    for (row, src) in halves
        .chunks_exact_mut(k4.max(1))
        .zip(w.chunks_exact(k.max(1)))
    {
        // The slice conversion uses F16C where the CPU has it (~1.6x the per-value one).
        row[..k].convert_from_f32_slice(src);
    }
    halves
        .chunks_exact(2)
        .map(|p| p[0].to_bits() as u32 | (p[1].to_bits() as u32) << 16)
        .collect()
}

/// Every value rounded to the nearest f16 and back: the weights an f16 linear multiplies by,
/// for CPU references.
pub fn round_f16(w: &[f32]) -> Vec<f32> {
    w.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect()
}

/// The shaders' entry points: one tiling (128x128 outputs per workgroup) and epilogue, with the
/// tiles filled from f32 or f16 weights in several ways. x, the sums and y are f32 in all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// f32 weights, any shape: scalar loads checked element by element, 8x8 outputs per
    /// invocation.
    Scalar,
    /// f32 weights, `k` and `x_row_stride` multiples of 4: vec4 loads, 8x8 outputs per
    /// invocation (GPUs).
    Vec4,
    /// `Vec4`'s loads, 16x16 outputs per invocation: CPU adapters (lavapipe) load workgroup
    /// memory lane by lane, so a bigger block (fewer loads per fma) is ~1.6x faster there, while
    /// its 256 accumulators would spill out of a GPU's registers.
    Vec4Cpu,
    /// `Scalar` with f16 weights, unpacked from u32 pairs (see [`f16_supported`]).
    F16Scalar,
    /// `Vec4` with f16 weights, unpacked from u32 pairs.
    F16Vec4,
    /// `Vec4Cpu` with f16 weights, unpacked from u32 pairs.
    F16Vec4Cpu,
    /// `F16Vec4` reading the weights as vec4<f16> (needs `SHADER_F16`).
    F16NativeVec4,
    /// `F16Vec4Cpu` reading the weights as vec4<f16> (needs `SHADER_F16`).
    F16NativeVec4Cpu,
    /// CPU adapters: x and f32 weights in read-only storage textures, 16x12 outputs per lane
    /// (see shaders/linear.wgsl).
    TextureF32,
    /// `TextureF32` with the weights in an rgba16float texture (half the bytes per load).
    TextureF16,
    /// `TextureF32` with x rows loaded once per subgroup and broadcast, up to 24x12 outputs per
    /// lane (devices where [`subgroups_fit`]).
    TextureF32Subgroup,
    /// `TextureF16` with x rows broadcast like `TextureF32Subgroup`.
    TextureF16Subgroup,
}

impl Variant {
    pub const ALL: [Variant; 12] = [
        Variant::Scalar,
        Variant::Vec4,
        Variant::Vec4Cpu,
        Variant::F16Scalar,
        Variant::F16Vec4,
        Variant::F16Vec4Cpu,
        Variant::F16NativeVec4,
        Variant::F16NativeVec4Cpu,
        Variant::TextureF32,
        Variant::TextureF16,
        Variant::TextureF32Subgroup,
        Variant::TextureF16Subgroup,
    ];

    /// The fastest variant that is correct for `shape` and weights in `format` on this adapter:
    /// vec4 loads where the shape allows, big blocks on CPU adapters, native f16 loads where the
    /// device has `SHADER_F16`.
    pub fn choose(gpu: &Gpu, shape: Linear, format: WeightFormat) -> Self {
        let layout = WeightLayout::for_adapter(gpu, shape.n, shape.k);
        if layout == WeightLayout::Texture && texture_rows_fit(gpu, shape.m) {
            return Self::for_layout(gpu, shape, format, layout);
        }
        Self::for_layout(gpu, shape, format, WeightLayout::Buffer)
    }

    /// The fastest variant reading weights stored in `layout`.
    pub fn for_layout(
        gpu: &Gpu,
        shape: Linear,
        format: WeightFormat,
        layout: WeightLayout,
    ) -> Self {
        if layout == WeightLayout::Texture {
            return Self::texture(gpu, format);
        }
        let vec4 = vec4_loads_fit(shape);
        let cpu = gpu.cpu_kernels();
        let native = gpu.device.features().contains(wgpu::Features::SHADER_F16);
        match (format, vec4, native, cpu) {
            (WeightFormat::F32, false, _, _) => Variant::Scalar,
            (WeightFormat::F32, true, _, false) => Variant::Vec4,
            (WeightFormat::F32, true, _, true) => Variant::Vec4Cpu,
            (WeightFormat::F16, false, _, _) => Variant::F16Scalar,
            (WeightFormat::F16, true, false, false) => Variant::F16Vec4,
            (WeightFormat::F16, true, false, true) => Variant::F16Vec4Cpu,
            (WeightFormat::F16, true, true, false) => Variant::F16NativeVec4,
            (WeightFormat::F16, true, true, true) => Variant::F16NativeVec4Cpu,
        }
    }

    /// The fastest texture variant for weights in `format` on this device.
    pub fn texture(gpu: &Gpu, format: WeightFormat) -> Self {
        match (format, subgroups_fit(gpu)) {
            (WeightFormat::F32, false) => Variant::TextureF32,
            (WeightFormat::F16, false) => Variant::TextureF16,
            (WeightFormat::F32, true) => Variant::TextureF32Subgroup,
            (WeightFormat::F16, true) => Variant::TextureF16Subgroup,
        }
    }

    /// The weight format this variant reads.
    pub fn format(self) -> WeightFormat {
        match self {
            Variant::Scalar
            | Variant::Vec4
            | Variant::Vec4Cpu
            | Variant::TextureF32
            | Variant::TextureF32Subgroup => WeightFormat::F32,
            _ => WeightFormat::F16,
        }
    }

    /// Where this variant reads its weights.
    pub fn layout(self) -> WeightLayout {
        match self {
            Variant::TextureF32
            | Variant::TextureF16
            | Variant::TextureF32Subgroup
            | Variant::TextureF16Subgroup => WeightLayout::Texture,
            _ => WeightLayout::Buffer,
        }
    }

    /// Whether the device needs `SHADER_F16` for it.
    pub fn needs_shader_f16(self) -> bool {
        matches!(self, Variant::F16NativeVec4 | Variant::F16NativeVec4Cpu)
    }

    /// Whether the device needs subgroups (see [`subgroups_fit`]) for it.
    pub fn needs_subgroups(self) -> bool {
        matches!(
            self,
            Variant::TextureF32Subgroup | Variant::TextureF16Subgroup
        )
    }

    fn needs_vec4_loads(self) -> bool {
        !matches!(self, Variant::Scalar | Variant::F16Scalar)
            && self.layout() == WeightLayout::Buffer
    }

    pub fn kernel(self) -> &'static Kernel {
        if self.needs_subgroups() {
            return &KERNEL_SUBGROUP;
        }
        if self.layout() == WeightLayout::Texture {
            return &KERNEL;
        }
        match (self.format(), self.needs_shader_f16()) {
            (WeightFormat::F32, _) => &KERNEL,
            (WeightFormat::F16, false) => &KERNEL_F16,
            (WeightFormat::F16, true) => &KERNEL_F16_NATIVE,
        }
    }

    pub fn entry(self) -> &'static str {
        match self {
            Variant::Scalar => "main",
            Variant::Vec4 => "main_vec4",
            Variant::Vec4Cpu => "main_vec4_cpu",
            Variant::F16Scalar => "main_f16",
            Variant::F16Vec4 => "main_f16_vec4",
            Variant::F16Vec4Cpu => "main_f16_vec4_cpu",
            Variant::F16NativeVec4 => "main_f16_native_vec4",
            Variant::F16NativeVec4Cpu => "main_f16_native_vec4_cpu",
            Variant::TextureF32 | Variant::TextureF32Subgroup => "main_texture_f32_to_buffer",
            Variant::TextureF16 | Variant::TextureF16Subgroup => "main_texture_f16_to_buffer",
        }
    }

    /// `kernel:entry`, as `info`, `bench` and `profile` name the shader that runs the linears.
    pub fn shader(self) -> String {
        format!("{}:{}", self.kernel().name, self.entry())
    }

    /// The entry point storing y into a buffer in whole vec4s (texture variants only).
    fn entry_buffer4(self) -> &'static str {
        match self {
            Variant::TextureF32 | Variant::TextureF32Subgroup => "main_texture_f32_to_buffer4",
            Variant::TextureF16 | Variant::TextureF16Subgroup => "main_texture_f16_to_buffer4",
            _ => panic!("linear: {self:?} has no vec4 epilogue"),
        }
    }

    /// The entry point storing y as a matrix texture in whole vec4s (texture variants only).
    fn entry_texture4(self) -> &'static str {
        match self {
            Variant::TextureF32 | Variant::TextureF32Subgroup => "main_texture_f32_to_texture4",
            Variant::TextureF16 | Variant::TextureF16Subgroup => "main_texture_f16_to_texture4",
            _ => panic!("linear: {self:?} cannot store its output as a texture"),
        }
    }

    /// [`Variant::entry_texture4`] with the residual read from a texture (texture variants).
    fn entry_stream(self) -> &'static str {
        match self {
            Variant::TextureF32 | Variant::TextureF32Subgroup => "main_texture_f32_to_stream",
            Variant::TextureF16 | Variant::TextureF16Subgroup => "main_texture_f16_to_stream",
            _ => panic!("linear: {self:?} cannot store its output as a texture"),
        }
    }

    /// The entry point storing y as a matrix texture (texture variants only).
    fn entry_to_texture(self) -> &'static str {
        match self {
            Variant::TextureF32 | Variant::TextureF32Subgroup => "main_texture_f32_to_texture",
            Variant::TextureF16 | Variant::TextureF16Subgroup => "main_texture_f16_to_texture",
            _ => panic!("linear: {self:?} cannot store its output as a texture"),
        }
    }

    /// One line for `info`: weight format and how the shader reads it.
    pub fn describe(self) -> &'static str {
        match self {
            Variant::Scalar => "f32 weights, scalar loads",
            Variant::Vec4 => "f32 weights, vec4 loads",
            Variant::Vec4Cpu => "f32 weights, vec4 loads, 16x16 blocks for CPU adapters",
            Variant::F16Scalar => "f16 weights (packed u32), scalar loads of x",
            Variant::F16Vec4 => "f16 weights (packed u32), vec4 loads",
            Variant::F16Vec4Cpu => {
                "f16 weights (packed u32), vec4 loads, 16x16 blocks for CPU adapters"
            }
            Variant::F16NativeVec4 => "f16 weights (SHADER_F16 vec4<f16>), vec4 loads",
            Variant::F16NativeVec4Cpu => {
                "f16 weights (SHADER_F16 vec4<f16>), vec4 loads, 16x16 blocks for CPU adapters"
            }
            Variant::TextureF32 => "f32 weights, operands in storage textures for CPU adapters",
            Variant::TextureF16 => {
                "f16 weights (rgba16float), operands in storage textures for CPU adapters"
            }
            Variant::TextureF32Subgroup => {
                "f32 weights, operands in storage textures for CPU adapters, x rows shared \
                 across the subgroup"
            }
            Variant::TextureF16Subgroup => {
                "f16 weights (rgba16float), operands in storage textures for CPU adapters, x \
                 rows shared across the subgroup"
            }
        }
    }
}

/// Whether x and w can be read as whole vec4s (k = 0 is left out: its buffers may be too small
/// to bind as vec4 arrays).
fn vec4_loads_fit(shape: Linear) -> bool {
    shape.k > 0 && shape.k.is_multiple_of(4) && shape.x_row_stride.is_multiple_of(4)
}

/// Whether `m` rows of x fit a matrix texture (rows padded to [`TEXTURE_ROWS`]).
pub fn texture_rows_fit(gpu: &Gpu, m: usize) -> bool {
    matrix_texture::fits(gpu, m.next_multiple_of(TEXTURE_ROWS), 4)
}

/// A matrix texture for `m` rows of `cols` values as the texture variants read and write it.
pub fn texture_for(gpu: &Gpu, label: &str, m: usize, cols: usize) -> Result<MatrixTexture> {
    MatrixTexture::new(
        gpu,
        label,
        m,
        cols,
        m.next_multiple_of(TEXTURE_ROWS),
        TexelFormat::F32,
    )
}

/// The input x of a linear: [m, x_row_stride] in a buffer, or an [m, k] matrix texture
/// (rows padded to [`TEXTURE_ROWS`]) that the texture variants read directly.
pub type Input<'a> = Place<'a>;

/// The output y [m, n]: a buffer, or (texture variants) a matrix texture for the next product.
pub type Output<'a> = Place<'a>;

/// Records `y = act(x W^T + bias) (+ residual)`. `bias`/`residual` may be `None`; a placeholder
/// buffer (any buffer not written here) fills the binding then.
#[allow(clippy::too_many_arguments)]
pub fn record(
    gpu: &Gpu,
    program: &mut Program,
    shape: Linear,
    x: &wgpu::Buffer,                // [m, x_row_stride]
    w: &Weight,                      // [n, k]
    bias: Option<&wgpu::Buffer>,     // [n]
    residual: Option<&wgpu::Buffer>, // [m, n]
    y: &wgpu::Buffer,                // [m, n]
) {
    let variant = Variant::for_layout(gpu, shape, w.format, w.layout());
    record_variant(gpu, program, shape, variant, x, w, bias, residual, y);
}

/// [`record`] with the entry point chosen by the caller (tests run every variant on any
/// adapter). Panics if `variant` cannot handle `shape`, `w` or the device.
#[allow(clippy::too_many_arguments)]
pub fn record_variant(
    gpu: &Gpu,
    program: &mut Program,
    shape: Linear,
    variant: Variant,
    x: &wgpu::Buffer,                // [m, x_row_stride]
    w: &Weight,                      // [n, k]
    bias: Option<&wgpu::Buffer>,     // [n]
    residual: Option<&wgpu::Buffer>, // [m, n]
    y: &wgpu::Buffer,                // [m, n]
) {
    record_io(
        gpu,
        program,
        shape,
        variant,
        Input::Buffer(x),
        w,
        bias,
        residual.map(Place::Buffer),
        Output::Buffer(y),
    );
}

/// The general form: x, y and the residual in buffers or matrix textures. A texture variant
/// given a buffer x first copies it into a texture of its own (one `to_texture` pass); a
/// residual in a texture (the encoder's residual stream) needs y in a texture of the same
/// layout and whole vec4s. Panics if `variant` cannot handle `shape`, `w`, the device, or the
/// input and output kinds.
#[allow(clippy::too_many_arguments)]
pub fn record_io(
    gpu: &Gpu,
    program: &mut Program,
    shape: Linear,
    variant: Variant,
    x: Input<'_>,
    w: &Weight,
    bias: Option<&wgpu::Buffer>,
    residual: Option<Place<'_>>,
    y: Output<'_>,
) {
    assert!(
        !variant.needs_vec4_loads() || vec4_loads_fit(shape),
        "linear: {variant:?} needs k > 0 and k, x_row_stride multiples of 4, got {shape:?}"
    );
    assert!(
        (w.n, w.k) == (shape.n, shape.k),
        "linear: weight is [{}, {}] but {shape:?} needs [{}, {}]",
        w.n,
        w.k,
        shape.n,
        shape.k
    );
    assert_eq!(
        (variant.format(), variant.layout()),
        (w.format, w.layout()),
        "linear: {variant:?} reads {:?} weights in a {:?}, got {:?} in a {:?}",
        variant.format(),
        variant.layout(),
        w.format,
        w.layout()
    );
    assert!(
        !variant.needs_shader_f16() || gpu.device.features().contains(wgpu::Features::SHADER_F16),
        "linear: {variant:?} needs a device with SHADER_F16, {} was opened without it",
        gpu.info.name
    );
    assert!(
        !variant.needs_subgroups() || subgroups_fit(gpu),
        "linear: {variant:?} needs a device with subgroups of 8 or more, {} has none",
        gpu.info.name
    );
    // The epilogue's steps, compiled into the pipeline (see the override constants in
    // shaders/linear.wgsl).
    let on = |b: bool| if b { 1.0 } else { 0.0 };
    let quads = texture_quads(shape.n);
    assert!(
        !shape.row_scale || (bias.is_some() && variant.layout() == WeightLayout::Texture),
        "linear: a row scale needs a texture variant and its factors in the bias binding"
    );
    let tile_constants = |rows: usize| {
        [
            ("BIAS", on(bias.is_some() && !shape.row_scale)),
            ("GELU", on(shape.gelu)),
            ("RESIDUAL", on(residual.is_some())),
            ("ROW_BIAS", on(shape.row_bias)),
            ("TEX_QUADS", quads as f64),
            ("TEX_ROWS", rows as f64),
            ("K_TAIL", on(!shape.k.is_multiple_of(4))),
            ("ROW_SCALE", on(shape.row_scale)),
        ]
    };
    // The buffer variants have no TEX_QUADS or TEX_ROWS.
    let buffer_constants = tile_constants(0);
    let constants = &buffer_constants[..4];
    let at = shape.at;
    assert!(
        variant.layout() == WeightLayout::Texture
            || (at
                == (Offsets {
                    y_offset: at.y_offset,
                    ..Offsets::default()
                })
                && shape.repeat == 1),
        "linear: texture offsets and repeats are for texture variants, got {shape:?}"
    );
    if shape.repeat == 0 {
        return;
    }
    // Bounds are checked for the last product; the steps never go backwards.
    let last = at.advanced(shape.step, shape.repeat - 1);
    // A matrix texture's rows are whole texels, and past n the product only meets w's zero
    // padding. With no bias or residual to add, the last texel can be stored whole (0 past n
    // for finite x; readers mask or multiply by zero there), so the vec4 epilogue serves an n
    // that is not a multiple of 4 (attention's scores).
    let n_stored = match y {
        Output::Texture(_) if bias.is_none() && residual.is_none() => shape.n.next_multiple_of(4),
        _ => shape.n,
    };
    let u = |v: usize| u32::try_from(v).expect("linear size fits in u32");
    let params = LinearParams {
        m: u(shape.m),
        n: u(n_stored),
        k: u(shape.k),
        x_row_stride: u(shape.x_row_stride),
        y_offset: u(at.y_offset),
        x_row0: u(at.x_row0),
        x_col0: u(at.x_col0),
        w_row0: u(at.w_row0),
        w_col0: u(at.w_col0),
        y_row0: u(at.y_row0),
        y_col0: u(at.y_col0),
        z_y_offset: u(shape.step.y_offset),
        z_x_row0: u(shape.step.x_row0),
        z_x_col0: u(shape.step.x_col0),
        z_w_row0: u(shape.step.w_row0),
        z_w_col0: u(shape.step.w_col0),
        z_y_row0: u(shape.step.y_row0),
        z_y_col0: u(shape.step.y_col0),
    };
    let (m, n, k) = (shape.m as f64, shape.n as f64, shape.k as f64);
    let products = shape.repeat as f64;
    let flops = 2.0 * m * n * k * products;
    let bytes = products
        * (4.0 * (m * k + m * n * if residual.is_some() { 2.0 } else { 1.0 }) + w.bytes() as f64);
    match &w.store {
        WeightStore::Buffer(wb) => {
            let (Input::Buffer(x), Output::Buffer(y)) = (x, y) else {
                panic!("linear: {variant:?} reads and writes buffers, not textures");
            };
            let residual = residual.map(|r| match r {
                Place::Buffer(b) => b,
                Place::Texture(_) => panic!("linear: {variant:?} reads a residual buffer"),
            });
            program.push_specialized(
                gpu,
                Call {
                    kernel: variant.kernel(),
                    entry: variant.entry(),
                    params,
                    bindings: &[
                        Bind::from(x),
                        Bind::from(wb),
                        Bind::from(bias.unwrap_or(wb)),
                        Bind::from(residual.unwrap_or(wb)),
                        Bind::from(y),
                    ],
                    // 65535 tiles per dimension would take over 8 million rows or columns.
                    workgroups: [
                        shape.n.div_ceil(TILE) as u32,
                        shape.m.div_ceil(TILE) as u32,
                        1,
                    ],
                    flops,
                    bytes,
                },
                constants,
            );
        }
        WeightStore::Texture(wt) => {
            let packed;
            let xt = match x {
                Input::Texture(t) => t,
                Input::Buffer(b) => {
                    packed = texture_for(gpu, "linear.x", shape.m, shape.k)
                        .expect("linear: x rows past the texture limit (see texture_rows_fit)");
                    to_texture::record(gpu, program, b, shape.x_row_stride, &packed);
                    &packed
                }
            };
            let k4 = shape.k.div_ceil(4);
            assert!(
                xt.height >= last.x_row0 + shape.m && xt.texels_wide() >= last.x_col0 + k4,
                "linear: x texture [{}, {} texels] does not hold {shape:?}",
                xt.height,
                xt.texels_wide()
            );
            assert!(
                wt.height >= last.w_row0 + 4 * k4
                    && wt.texels_wide() >= last.w_col0 + shape.n.next_multiple_of(TEXTURE_COLS) / 4,
                "linear: w texture [{}, {} texels] does not hold {shape:?}",
                wt.height,
                wt.texels_wide()
            );
            let (residual_buffer, residual_texture) = match residual {
                Some(Place::Buffer(b)) => (Some(b), None),
                Some(Place::Texture(t)) => (None, Some(t)),
                None => (None, None),
            };
            // Any buffer not written here stands in for a missing bias or residual (16 bytes at
            // least: the vec4 epilogue binds them as vec4 arrays).
            let placeholder = bias.or(residual_buffer).filter(|b| b.size() >= 16);
            let spare;
            let placeholder = match placeholder {
                Some(b) => b,
                None => {
                    spare = gpu.storage("linear.placeholder", 4);
                    &spare
                }
            };
            let vec4_epilogue = n_stored.is_multiple_of(4)
                && at.y_offset.is_multiple_of(4)
                && shape.step.y_offset.is_multiple_of(4)
                && (!shape.row_bias || shape.m.is_multiple_of(4))
                && bias.is_none_or(|b| b.size() >= 16)
                // The vec4 entry points read a row scale as whole vec4s.
                && (!shape.row_scale || bias.is_some_and(|b| b.size().is_multiple_of(16)));
            if let Output::Buffer(b) = y {
                assert!(
                    b.size() >= 4 * (last.y_offset + shape.m * shape.n) as u64,
                    "linear: y buffer of {} bytes does not hold {shape:?}",
                    b.size()
                );
            }
            let (entry, out) = match y {
                Output::Buffer(b) if vec4_epilogue => (variant.entry_buffer4(), Bind::from(b)),
                Output::Buffer(b) => (variant.entry(), Bind::from(b)),
                Output::Texture(t) => {
                    assert!(
                        t.height >= last.y_row0 + shape.m
                            && t.texels_wide() >= last.y_col0 + shape.n.div_ceil(4),
                        "linear: y texture [{}, {} texels] does not hold {shape:?}",
                        t.height,
                        t.texels_wide()
                    );
                    let entry = match residual_texture {
                        Some(r) => {
                            assert!(
                                vec4_epilogue
                                    && r.height >= last.y_row0 + shape.m
                                    && r.texels_wide() >= last.y_col0 + shape.n.div_ceil(4),
                                "linear: a residual texture [{}, {} texels] needs y's layout \
                                 and whole vec4s, got {shape:?}",
                                r.height,
                                r.texels_wide()
                            );
                            variant.entry_stream()
                        }
                        None if vec4_epilogue => variant.entry_texture4(),
                        None => variant.entry_to_texture(),
                    };
                    (entry, Bind::from(&t.view))
                }
            };
            assert!(
                residual_texture.is_none() || matches!(y, Output::Texture(_)),
                "linear: a residual texture needs y in a texture"
            );
            let residual_bind = match residual_texture {
                Some(t) => Bind::from(&t.view),
                None => Bind::from(residual_buffer.unwrap_or(placeholder)),
            };
            for part in texture_row_parts(variant, shape.m, shape.row_bias) {
                // Rows from part.start: x's and y's first rows move down, and y (with its
                // residual) in a buffer starts part.start rows later.
                let params = LinearParams {
                    m: u(part.rows),
                    x_row0: u(at.x_row0 + part.start),
                    y_row0: u(at.y_row0 + part.start),
                    y_offset: u(at.y_offset + part.start * n_stored),
                    ..params
                };
                let share = part.rows as f64 / m.max(1.0);
                program.push_specialized(
                    gpu,
                    Call {
                        kernel: variant.kernel(),
                        entry,
                        params,
                        bindings: &[
                            Bind::from(&xt.view),
                            Bind::from(&wt.view),
                            Bind::from(bias.unwrap_or(placeholder)),
                            residual_bind,
                            out,
                        ],
                        workgroups: [
                            // Row tiles first (shaders/linear.wgsl says why).
                            part.rows.div_ceil(part.tile) as u32,
                            shape.n.div_ceil(32 * quads) as u32,
                            u(shape.repeat),
                        ],
                        flops: flops * share,
                        bytes: bytes * share,
                    },
                    &tile_constants(part.tile),
                );
            }
        }
    }
}

/// CPU reference, accumulating in f64.
pub fn cpu(
    shape: Linear,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    residual: Option<&[f32]>,
) -> Vec<f32> {
    let Linear { m, n, k, .. } = shape;
    let mut y = vec![0.0f32; m * n];
    for i in 0..m {
        let xr = &x[i * shape.x_row_stride..i * shape.x_row_stride + k];
        for j in 0..n {
            let wr = &w[j * k..(j + 1) * k];
            let mut acc: f64 = xr.iter().zip(wr).map(|(&a, &b)| a as f64 * b as f64).sum();
            if let Some(b) = bias {
                acc += b[if shape.row_bias { i } else { j }] as f64;
            }
            let mut v = acc as f32;
            if shape.gelu {
                v = gelu(v);
            }
            if let Some(r) = residual {
                v += r[i * n + j];
            }
            y[i * n + j] = v;
        }
    }
    y
}
