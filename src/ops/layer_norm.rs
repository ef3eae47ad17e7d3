//! `layer_norm`: LayerNorm over the last dimension, out of place (the encoder's norms).

use crate::gpu::Gpu;
use crate::ops::{Call, Kernel, Program, grid_1d, kernel};

pub const KERNEL: Kernel = kernel!("layer_norm");

/// Keep in sync with `Params` in shaders/layer_norm.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct LayerNormParams {
    pub rows: u32,
    pub dim: u32,
    pub eps: f32,
}

/// Shape of one LayerNorm over `[rows, dim]`.
#[derive(Clone, Copy, Debug)]
pub struct LayerNorm {
    /// Tokens of all images.
    pub rows: usize,
    /// Normalised dimension (hidden size).
    pub dim: usize,
    /// `layer_norm_eps` from the config (1e-12).
    pub eps: f32,
}

/// Records `y = LayerNorm(x) * gamma + beta`, row by row.
pub fn record(
    gpu: &Gpu,
    program: &mut Program,
    shape: LayerNorm,
    x: &wgpu::Buffer,     // [rows, dim]
    gamma: &wgpu::Buffer, // [dim]
    beta: &wgpu::Buffer,  // [dim]
    y: &wgpu::Buffer,     // [rows, dim]
) {
    let params = LayerNormParams {
        rows: shape.rows as u32,
        dim: shape.dim as u32,
        eps: shape.eps,
    };
    let n = (shape.rows * shape.dim) as f64;
    program.push(
        gpu,
        Call {
            kernel: &KERNEL,
            entry: "main",
            params,
            buffers: &[x, gamma, beta, y],
            // One workgroup per row.
            workgroups: grid_1d(shape.rows),
            // About 8 operations per element over the three passes.
            flops: 8.0 * n,
            // x read three times (mostly from cache), y written once.
            bytes: 4.0 * (2.0 * n + 2.0 * shape.dim as f64),
        },
    );
}

/// CPU reference: two-pass statistics in f64.
pub fn cpu(shape: LayerNorm, x: &[f32], gamma: &[f32], beta: &[f32]) -> Vec<f32> {
    let LayerNorm { rows, dim, eps } = shape;
    assert_eq!(x.len(), rows * dim, "layer_norm cpu: x length");
    let mut y = vec![0.0f32; x.len()];
    for (xs, ys) in x.chunks(dim).zip(y.chunks_mut(dim)) {
        let mean = xs.iter().map(|&v| v as f64).sum::<f64>() / dim as f64;
        let var = xs.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / dim as f64;
        let inv_std = 1.0 / (var + eps as f64).sqrt();
        for (i, (&xv, yv)) in xs.iter().zip(ys.iter_mut()).enumerate() {
            *yv = ((xv as f64 - mean) * inv_std * gamma[i] as f64 + beta[i] as f64) as f32;
        }
    }
    y
}
