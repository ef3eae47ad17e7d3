//! `tokens`: the encoder's input, [CLS; patch tokens] + position embeddings, from the patch
//! projection's channel-first output.

use crate::gpu::Gpu;
use crate::ops::{Bind, Call, Kernel, Program, grid_1d, kernel};

pub const KERNEL: Kernel = kernel!("tokens");

/// Tile edge (channels and tokens), as in the shader.
const TILE: usize = 16;

/// Keep in sync with `Params` in shaders/tokens.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct TokensParams {
    pub batch: u32,
    pub dim: u32,
    pub patches: u32,
}

/// Shape of the token assembly.
#[derive(Clone, Copy, Debug)]
pub struct Tokens {
    pub batch: usize,
    /// Hidden size.
    pub dim: usize,
    /// Patch tokens per image (the 24x24 grid: 576); the output has one more (CLS).
    pub patches: usize,
}

/// Records `out[b] = [cls; proj[b]^T] + pos`.
pub fn record(
    gpu: &Gpu,
    program: &mut Program,
    shape: Tokens,
    proj: &wgpu::Buffer, // [batch, dim, patches], channel-first conv output (bias included)
    cls: &wgpu::Buffer,  // [dim]
    pos: &wgpu::Buffer,  // [patches + 1, dim]
    out: &wgpu::Buffer,  // [batch, patches + 1, dim]
) {
    let Tokens {
        batch,
        dim,
        patches,
    } = shape;
    let params = TokensParams {
        batch: batch as u32,
        dim: dim as u32,
        patches: patches as u32,
    };
    let tiles = dim.div_ceil(TILE) * (patches + 1).div_ceil(TILE) * batch;
    let n = (batch * (patches + 1) * dim) as f64;
    program.push(
        gpu,
        Call {
            kernel: &KERNEL,
            entry: "main",
            params,
            bindings: &[
                Bind::from(proj),
                Bind::from(cls),
                Bind::from(pos),
                Bind::from(out),
            ],
            workgroups: grid_1d(tiles),
            flops: n,
            // proj/cls and pos read, out written.
            bytes: 4.0 * 3.0 * n,
        },
    );
}

/// CPU reference.
pub fn cpu(shape: Tokens, proj: &[f32], cls: &[f32], pos: &[f32]) -> Vec<f32> {
    let Tokens {
        batch,
        dim,
        patches,
    } = shape;
    assert_eq!(proj.len(), batch * dim * patches, "tokens cpu: proj length");
    let tokens = patches + 1;
    let mut out = vec![0.0f32; batch * tokens * dim];
    for b in 0..batch {
        for t in 0..tokens {
            for d in 0..dim {
                let v = if t == 0 {
                    cls[d]
                } else {
                    proj[(b * dim + d) * patches + t - 1]
                };
                out[(b * tokens + t) * dim + d] = v + pos[t * dim + d];
            }
        }
    }
    out
}
