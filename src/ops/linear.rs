//! `linear`: y = act(x W^T + b) + residual, the encoder's and the head's matrix multiply.

use crate::gpu::Gpu;
use crate::ops::{Call, Kernel, Program, gelu, kernel};

pub const KERNEL: Kernel = kernel!("linear");

/// Output rows and columns per workgroup, in every variant.
const TILE: usize = 128;
const FLAG_BIAS: u32 = 1;
const FLAG_GELU: u32 = 2;
const FLAG_RESIDUAL: u32 = 4;

/// Keep in sync with `Params` in shaders/linear.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct LinearParams {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub x_row_stride: u32,
    pub flags: u32,
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
}

impl Linear {
    pub fn new(m: usize, n: usize, k: usize) -> Self {
        Self {
            m,
            n,
            k,
            x_row_stride: k,
            gelu: false,
        }
    }
}

/// The shader's entry points: one tiling (128x128 outputs per workgroup), three ways to fill it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// Any shape: scalar loads checked element by element, 8x8 outputs per invocation.
    Scalar,
    /// `k` and `x_row_stride` multiples of 4: vec4 loads, 8x8 outputs per invocation (GPUs).
    Vec4,
    /// `Vec4`'s loads, 16x16 outputs per invocation: CPU adapters (lavapipe) load workgroup
    /// memory lane by lane, so a bigger block (fewer loads per fma) is ~1.6x faster there, while
    /// its 256 accumulators would spill out of a GPU's registers.
    Vec4Cpu,
}

impl Variant {
    /// The fastest variant that is correct for `shape` on this adapter.
    pub fn choose(gpu: &Gpu, shape: Linear) -> Self {
        if !vec4_loads_fit(shape) {
            Variant::Scalar
        } else if gpu.info.device_type == wgpu::DeviceType::Cpu {
            Variant::Vec4Cpu
        } else {
            Variant::Vec4
        }
    }

    fn entry(self) -> &'static str {
        match self {
            Variant::Scalar => "main",
            Variant::Vec4 => "main_vec4",
            Variant::Vec4Cpu => "main_vec4_cpu",
        }
    }
}

/// Whether x and w can be read as whole vec4s (k = 0 is left out: its buffers may be too small
/// to bind as vec4 arrays).
fn vec4_loads_fit(shape: Linear) -> bool {
    shape.k > 0 && shape.k.is_multiple_of(4) && shape.x_row_stride.is_multiple_of(4)
}

/// Records `y = act(x W^T + bias) (+ residual)`. `bias`/`residual` may be `None`; a placeholder
/// buffer (any buffer not written here) fills the binding then.
#[allow(clippy::too_many_arguments)]
pub fn record(
    gpu: &Gpu,
    program: &mut Program,
    shape: Linear,
    x: &wgpu::Buffer,                // [m, x_row_stride]
    w: &wgpu::Buffer,                // [n, k]
    bias: Option<&wgpu::Buffer>,     // [n]
    residual: Option<&wgpu::Buffer>, // [m, n]
    y: &wgpu::Buffer,                // [m, n]
) {
    let variant = Variant::choose(gpu, shape);
    record_variant(gpu, program, shape, variant, x, w, bias, residual, y);
}

/// [`record`] with the entry point chosen by the caller (tests run every variant on any
/// adapter). Panics if `variant` cannot handle `shape`.
#[allow(clippy::too_many_arguments)]
pub fn record_variant(
    gpu: &Gpu,
    program: &mut Program,
    shape: Linear,
    variant: Variant,
    x: &wgpu::Buffer,                // [m, x_row_stride]
    w: &wgpu::Buffer,                // [n, k]
    bias: Option<&wgpu::Buffer>,     // [n]
    residual: Option<&wgpu::Buffer>, // [m, n]
    y: &wgpu::Buffer,                // [m, n]
) {
    assert!(
        variant == Variant::Scalar || vec4_loads_fit(shape),
        "linear: {variant:?} needs k > 0 and k, x_row_stride multiples of 4, got {shape:?}"
    );
    let mut flags = 0;
    if bias.is_some() {
        flags |= FLAG_BIAS;
    }
    if shape.gelu {
        flags |= FLAG_GELU;
    }
    if residual.is_some() {
        flags |= FLAG_RESIDUAL;
    }
    let params = LinearParams {
        m: shape.m as u32,
        n: shape.n as u32,
        k: shape.k as u32,
        x_row_stride: shape.x_row_stride as u32,
        flags,
    };
    let (m, n, k) = (shape.m as f64, shape.n as f64, shape.k as f64);
    program.push(
        gpu,
        Call {
            kernel: &KERNEL,
            entry: variant.entry(),
            params,
            buffers: &[x, w, bias.unwrap_or(w), residual.unwrap_or(w), y],
            // 65535 tiles per dimension would take over 8 million rows or columns.
            workgroups: [
                shape.n.div_ceil(TILE) as u32,
                shape.m.div_ceil(TILE) as u32,
                1,
            ],
            flops: 2.0 * m * n * k,
            bytes: 4.0 * (m * k + n * k + m * n * if residual.is_some() { 2.0 } else { 1.0 }),
        },
    );
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
                acc += b[j] as f64;
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
