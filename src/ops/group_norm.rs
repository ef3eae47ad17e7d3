//! `group_norm`: BiT's GroupNorm (optionally followed by ReLU), normalising a tensor in place.

use crate::gpu::Gpu;
use crate::ops::{Bind, Call, Kernel, Program, grid_1d, kernel};

pub const KERNEL: Kernel = kernel!("group_norm");

/// Keep in sync with `Params` in shaders/group_norm.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct GroupNormParams {
    pub batch: u32,
    pub c: u32,
    pub hw: u32,
    pub groups: u32,
    pub eps: f32,
    pub relu: u32,
}

/// Shape of one GroupNorm over `[batch, c, hw]`.
#[derive(Clone, Copy, Debug)]
pub struct GroupNorm {
    pub batch: usize,
    /// Channels; a multiple of `groups`.
    pub c: usize,
    /// Pixels per channel (H * W).
    pub hw: usize,
    pub groups: usize,
    /// 1e-5 in BiT.
    pub eps: f32,
    /// Apply ReLU after the per-channel scale and bias.
    pub relu: bool,
}

impl GroupNorm {
    fn check(&self) {
        assert!(
            self.groups > 0 && self.c.is_multiple_of(self.groups),
            "group_norm: {} channels do not split into {} groups",
            self.c,
            self.groups
        );
    }
}

/// Records `x = act(GroupNorm(x) * gamma + beta)`, in place.
pub fn record(
    gpu: &Gpu,
    program: &mut Program,
    shape: GroupNorm,
    x: &wgpu::Buffer,     // [batch, c, hw], normalised in place
    gamma: &wgpu::Buffer, // [c]
    beta: &wgpu::Buffer,  // [c]
) {
    shape.check();
    let params = GroupNormParams {
        batch: shape.batch as u32,
        c: shape.c as u32,
        hw: shape.hw as u32,
        groups: shape.groups as u32,
        eps: shape.eps,
        relu: shape.relu as u32,
    };
    let n = (shape.batch * shape.c * shape.hw) as f64;
    program.push(
        gpu,
        Call {
            kernel: &KERNEL,
            entry: "main",
            params,
            bindings: &[Bind::from(x), Bind::from(gamma), Bind::from(beta)],
            // One workgroup per (image, group).
            workgroups: grid_1d(shape.batch * shape.groups),
            // About 9 operations per element over the three passes.
            flops: 9.0 * n,
            // x read three times and written once.
            bytes: 4.0 * (4.0 * n + 2.0 * shape.c as f64),
        },
    );
}

/// CPU reference: two-pass statistics in f64.
pub fn cpu(shape: GroupNorm, x: &[f32], gamma: &[f32], beta: &[f32]) -> Vec<f32> {
    shape.check();
    let GroupNorm {
        batch,
        c,
        hw,
        groups,
        eps,
        relu,
    } = shape;
    let cpg = c / groups;
    let n = cpg * hw;
    assert_eq!(x.len(), batch * c * hw, "group_norm cpu: x length");
    let mut y = vec![0.0f32; x.len()];
    for (gi, (xs, ys)) in x.chunks(n).zip(y.chunks_mut(n)).enumerate() {
        let mean = xs.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        let var = xs.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n as f64;
        let inv_std = 1.0 / (var + eps as f64).sqrt();
        let c0 = (gi % groups) * cpg;
        for (i, (&xv, yv)) in xs.iter().zip(ys.iter_mut()).enumerate() {
            let ch = c0 + i / hw;
            let v = (xv as f64 - mean) * inv_std * gamma[ch] as f64 + beta[ch] as f64;
            *yv = if relu { v.max(0.0) } else { v } as f32;
        }
    }
    y
}
