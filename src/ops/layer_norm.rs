//! `layer_norm`: LayerNorm over the last dimension, out of place (the encoder's norms).

use anyhow::{Result, ensure};

use crate::gpu::Gpu;
use crate::ops::matrix_texture::{self, MatrixTexture, Place, TexelFormat};
use crate::ops::{Bind, Call, Kernel, Program, grid_1d, kernel, to_texture};

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

/// How the norm is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// A workgroup of 128 per row, tree reductions (GPUs; any dim).
    Workgroup,
    /// One row per invocation, vec4 loads, no barriers (CPU adapters; dim a multiple of 4).
    Rows,
}

impl Variant {
    /// Rows on CPU adapters where dim is a multiple of 4 and [2, dim] fits a texture.
    pub fn choose(gpu: &Gpu, dim: usize) -> Self {
        if gpu.cpu_kernels() && Self::Rows.fits_dim(dim) && matrix_texture::fits(gpu, 2, dim) {
            Variant::Rows
        } else {
            Variant::Workgroup
        }
    }

    pub fn fits(self, shape: LayerNorm) -> bool {
        self.fits_dim(shape.dim)
    }

    fn fits_dim(self, dim: usize) -> bool {
        self == Variant::Workgroup || (dim > 0 && dim.is_multiple_of(4))
    }
}

/// A norm's gamma and beta, uploaded once in the layout its variant reads: two buffers for
/// the workgroup kernel, one [2, dim] matrix texture (gamma in row 0, beta in row 1) for Rows,
/// which reads it with inline loads (on lavapipe a buffer load is a loop over the lanes).
pub struct Affine {
    dim: usize,
    store: AffineStore,
}

enum AffineStore {
    Buffers {
        gamma: wgpu::Buffer,
        beta: wgpu::Buffer,
    },
    Texture(MatrixTexture),
}

impl Affine {
    /// For the variant this adapter runs ([`Variant::choose`]).
    pub fn upload(gpu: &Gpu, label: &str, gamma: &[f32], beta: &[f32]) -> Result<Self> {
        Self::upload_for(gpu, label, gamma, beta, Variant::choose(gpu, gamma.len()))
    }

    /// For `variant` (tests run both on one adapter).
    pub fn upload_for(
        gpu: &Gpu,
        label: &str,
        gamma: &[f32],
        beta: &[f32],
        variant: Variant,
    ) -> Result<Self> {
        ensure!(
            gamma.len() == beta.len(),
            "{label}: gamma has {} values, beta {}",
            gamma.len(),
            beta.len()
        );
        let dim = gamma.len();
        let store = match variant {
            Variant::Rows => {
                ensure!(
                    variant.fits_dim(dim) && matrix_texture::fits(gpu, 2, dim),
                    "{label}: the Rows layer norm needs a dim that is a multiple of 4 and fits a \
                     texture, got {dim}"
                );
                let both = [gamma, beta].concat();
                let t = MatrixTexture::upload(gpu, label, &both, (2, dim), 2, TexelFormat::F32)?;
                AffineStore::Texture(t)
            }
            Variant::Workgroup => AffineStore::Buffers {
                gamma: gpu.upload(label, gamma),
                beta: gpu.upload(label, beta),
            },
        };
        Ok(Self { dim, store })
    }

    /// The variant whose layout this holds, the one [`record`] runs.
    pub fn variant(&self) -> Variant {
        match self.store {
            AffineStore::Buffers { .. } => Variant::Workgroup,
            AffineStore::Texture(_) => Variant::Rows,
        }
    }
}

/// Records `y = LayerNorm(x) * gamma + beta`, row by row, into a buffer or a matrix texture,
/// with the variant `affine` was uploaded for.
pub fn record(
    gpu: &Gpu,
    program: &mut Program,
    shape: LayerNorm,
    x: Place<'_>, // [rows, dim]
    affine: &Affine,
    y: Place<'_>, // [rows, dim]
) {
    let variant = affine.variant();
    assert!(
        affine.dim == shape.dim,
        "layer_norm: gamma and beta have {} values for {shape:?}",
        affine.dim
    );
    let x_texture = match x {
        Place::Texture(t) => {
            assert!(
                t.cols == shape.dim && t.height >= shape.rows,
                "layer_norm: x texture [{}, {}] does not hold {shape:?}",
                t.height,
                t.cols
            );
            if variant == Variant::Workgroup {
                // The GPU kernel reads buffers; a texture input goes through one copy.
                let tmp = gpu.storage("layer_norm.in", shape.rows * shape.dim);
                to_texture::record_from_texture(gpu, program, t, &tmp, shape.dim);
                let x = Place::Buffer(&tmp);
                record(gpu, program, shape, x, affine, y);
                return;
            }
            true
        }
        Place::Buffer(_) => false,
    };
    let params = LayerNormParams {
        rows: shape.rows as u32,
        dim: shape.dim as u32,
        eps: shape.eps,
    };
    let n = (shape.rows * shape.dim) as f64;
    let (entry, workgroups, out) = match (variant, y) {
        (Variant::Workgroup, Place::Buffer(b)) => ("main", grid_1d(shape.rows), Bind::from(b)),
        (Variant::Workgroup, Place::Texture(t)) => {
            // The GPU kernel writes buffers; a texture output goes through one copy.
            let tmp = gpu.storage("layer_norm.out", shape.rows * shape.dim);
            record(gpu, program, shape, x, affine, Place::Buffer(&tmp));
            to_texture::record(gpu, program, &tmp, shape.dim, t);
            return;
        }
        (Variant::Rows, Place::Buffer(b)) => (
            if x_texture {
                "main_rows_texture_to_buffer"
            } else {
                "main_rows_to_buffer"
            },
            grid_1d(shape.rows.div_ceil(8)),
            Bind::from(b),
        ),
        (Variant::Rows, Place::Texture(t)) => {
            assert!(
                t.cols == shape.dim && t.height >= shape.rows,
                "layer_norm: texture [{}, {}] cannot hold {shape:?}",
                t.height,
                t.cols
            );
            (
                if x_texture {
                    "main_rows_texture_to_texture"
                } else {
                    "main_rows_to_texture"
                },
                grid_1d(shape.rows.div_ceil(8)),
                Bind::from(&t.view),
            )
        }
    };
    let x_bind = match x {
        Place::Buffer(b) => Bind::from(b),
        Place::Texture(t) => Bind::from(&t.view),
    };
    let with_buffers;
    let with_texture;
    let bindings: &[Bind<'_>] = match &affine.store {
        AffineStore::Buffers { gamma, beta } => {
            with_buffers = [x_bind, Bind::from(gamma), Bind::from(beta), out];
            &with_buffers
        }
        AffineStore::Texture(t) => {
            with_texture = [x_bind, Bind::from(&t.view), out];
            &with_texture
        }
    };
    program.push(
        gpu,
        Call {
            kernel: &KERNEL,
            entry,
            params,
            bindings,
            workgroups,
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
