//! `attention`: the multi-head self-attention core, softmax(q k^T / sqrt(head_dim)) v per head,
//! between the fused QKV linear and the output projection.
//!
//! Three dispatches of one shader: `scores` (S = scale * q k^T into the scratch buffer),
//! `softmax` (rows of S in place) and `context` (S v, heads concatenated).

use crate::gpu::Gpu;
use crate::ops::{Call, Kernel, Program, grid_1d, kernel};

pub const KERNEL: Kernel = kernel!("attention");

/// Output tile edge of the two matrix multiplies (shaders/attention.wgsl `TILE`).
const TILE: usize = 64;

/// Keep in sync with `Params` in shaders/attention.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct AttentionParams {
    pub batch: u32,
    pub seq: u32,
    pub heads: u32,
    pub head_dim: u32,
    pub scale: f32,
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

    /// f32 elements of scratch the dispatches need: the score matrix [B, heads, seq, seq].
    pub fn scratch_len(&self) -> usize {
        self.batch * self.heads * self.seq * self.seq
    }
}

/// Records the three dispatches. `scratch` holds at least `shape.scratch_len()` floats and is
/// overwritten.
pub fn record(
    gpu: &Gpu,
    program: &mut Program,
    shape: Attention,
    qkv: &wgpu::Buffer,     // [B, seq, 3 * hidden]
    scratch: &wgpu::Buffer, // [B, heads, seq, seq]
    out: &wgpu::Buffer,     // [B, seq, hidden]
) {
    let Attention {
        batch,
        seq,
        heads,
        head_dim,
    } = shape;
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
    };
    let bh = (batch * heads) as f64;
    let (n, d) = (seq as f64, head_dim as f64);
    let seq_tiles = seq.div_ceil(TILE);
    let scores = bh * n * n;
    program.push(
        gpu,
        Call {
            kernel: &KERNEL,
            entry: "scores",
            params,
            buffers: &[scratch, qkv],
            workgroups: grid_1d(batch * heads * seq_tiles * seq_tiles),
            flops: 2.0 * scores * d,
            bytes: 4.0 * (2.0 * bh * n * d + scores),
        },
    );
    program.push(
        gpu,
        Call {
            kernel: &KERNEL,
            entry: "softmax",
            params,
            buffers: &[scratch],
            workgroups: grid_1d(batch * heads * seq),
            flops: 4.0 * scores,
            bytes: 4.0 * 5.0 * scores,
        },
    );
    program.push(
        gpu,
        Call {
            kernel: &KERNEL,
            entry: "context",
            params,
            buffers: &[scratch, qkv, out],
            workgroups: grid_1d(batch * heads * seq_tiles * head_dim.div_ceil(TILE)),
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
