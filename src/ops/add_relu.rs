//! `add_relu`: acc = max(acc + other, 0) in place, the bottleneck's ReLU(main + shortcut).

use crate::gpu::Gpu;
use crate::ops::{Bind, Call, Kernel, Program, grid_1d, kernel};

pub const KERNEL: Kernel = kernel!("add_relu");

/// Invocations per workgroup, as in the shader.
const WG: usize = 256;

/// Keep in sync with `Params` in shaders/add_relu.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct AddReluParams {
    pub n: u32,
}

/// Records `acc = max(acc + other, 0)` over `n` elements.
pub fn record(
    gpu: &Gpu,
    program: &mut Program,
    n: usize,
    acc: &wgpu::Buffer,   // [n], updated in place
    other: &wgpu::Buffer, // [n]
) {
    program.push(
        gpu,
        Call {
            kernel: &KERNEL,
            entry: "main",
            params: AddReluParams { n: n as u32 },
            bindings: &[Bind::from(acc), Bind::from(other)],
            workgroups: grid_1d(n.div_ceil(WG)),
            flops: 2.0 * n as f64,
            bytes: 12.0 * n as f64,
        },
    );
}

/// CPU reference.
pub fn cpu(acc: &[f32], other: &[f32]) -> Vec<f32> {
    assert_eq!(acc.len(), other.len(), "add_relu cpu: lengths differ");
    acc.iter()
        .zip(other)
        .map(|(&a, &b)| (a + b).max(0.0))
        .collect()
}
