//! `linear`: y = act(x W^T + b) + residual, the encoder's and the head's matrix multiply.

use crate::gpu::Gpu;
use crate::ops::{Call, Kernel, Program, gelu, kernel};

pub const KERNEL: Kernel = kernel!("linear");

const TILE: usize = 64;
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
            entry: "main",
            params,
            buffers: &[x, w, bias.unwrap_or(w), residual.unwrap_or(w), y],
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
