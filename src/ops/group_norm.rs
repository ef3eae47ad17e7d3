//! `group_norm`: BiT's GroupNorm, optionally plus a residual and then ReLU (a bottleneck's
//! `ReLU(norm3(x) + shortcut)` in the same pass), normalising a tensor in place.

use crate::gpu::Gpu;
use crate::ops::matrix_texture::{MatrixTexture, Place};
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
}

type Constants = [(&'static str, f64); 2];

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
    /// Apply ReLU after the per-channel scale and bias (and the residual, if any).
    pub relu: bool,
}

impl GroupNorm {
    fn params(&self) -> GroupNormParams {
        GroupNormParams {
            batch: self.batch as u32,
            c: self.c as u32,
            hw: self.hw as u32,
            groups: self.groups as u32,
            eps: self.eps,
        }
    }

    /// The shader's override constants: whether a residual is added, whether ReLU follows.
    fn constants(&self, add_residual: bool) -> Constants {
        let on = |b: bool| if b { 1.0 } else { 0.0 };
        [("RESIDUAL", on(add_residual)), ("RELU", on(self.relu))]
    }

    fn check(&self) {
        assert!(
            self.groups > 0 && self.c.is_multiple_of(self.groups),
            "group_norm: {} channels do not split into {} groups",
            self.c,
            self.groups
        );
    }
}

/// How the statistics are reduced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// A workgroup of 256 per (image, group), tree reductions (GPUs; any shape).
    Workgroup,
    /// 16 contiguous slices of a group per invocation, combined by Chan's formula, no
    /// barriers (CPU adapters; HW a multiple of 4).
    Slices,
}

/// Slices per group of [`Variant::Slices`] (`SLICES` in shaders/group_norm.wgsl).
const SLICES: usize = 16;

impl Variant {
    pub fn choose(gpu: &Gpu, shape: GroupNorm) -> Self {
        if gpu.cpu_kernels() && Self::Slices.fits(shape) {
            Variant::Slices
        } else {
            Variant::Workgroup
        }
    }

    pub fn fits(self, shape: GroupNorm) -> bool {
        self == Variant::Workgroup || (shape.hw > 0 && shape.hw.is_multiple_of(4))
    }
}

/// Records GroupNorm (+ residual, + ReLU) of `x` in place.
pub fn record(
    gpu: &Gpu,
    program: &mut Program,
    shape: GroupNorm,
    x: &wgpu::Buffer,                // [batch, c, hw], normalised in place
    gamma: &wgpu::Buffer,            // [c]
    beta: &wgpu::Buffer,             // [c]
    residual: Option<&wgpu::Buffer>, // [batch, c, hw], added before the ReLU
) {
    let variant = Variant::choose(gpu, shape);
    record_variant(gpu, program, shape, variant, x, gamma, beta, residual);
}

/// [`record`] with the variant chosen by the caller (tests). Panics if it cannot take `shape`.
#[allow(clippy::too_many_arguments)]
pub fn record_variant(
    gpu: &Gpu,
    program: &mut Program,
    shape: GroupNorm,
    variant: Variant,
    x: &wgpu::Buffer,
    gamma: &wgpu::Buffer,
    beta: &wgpu::Buffer,
    residual: Option<&wgpu::Buffer>,
) {
    shape.check();
    assert!(
        variant.fits(shape),
        "group_norm: {variant:?} cannot take {shape:?}"
    );
    let mut placeholder = None;
    let residual_bind = residual_bind(gpu, shape, residual, &mut placeholder);
    let (params, constants) = (shape.params(), shape.constants(residual.is_some()));
    if variant == Variant::Slices {
        let inputs = [
            Bind::from(x),
            Bind::from(gamma),
            Bind::from(beta),
            residual_bind,
        ];
        let entries = ("stats_slices", "apply_slices");
        record_slices(
            gpu,
            program,
            shape,
            (params, constants),
            entries,
            &inputs,
            None,
        );
        return;
    }
    let n = (shape.batch * shape.c * shape.hw) as f64;
    program.push_specialized(
        gpu,
        Call {
            kernel: &KERNEL,
            entry: "main",
            params,
            bindings: &[
                Bind::from(x),
                Bind::from(gamma),
                Bind::from(beta),
                residual_bind,
            ],
            // One workgroup per (image, group).
            workgroups: grid_1d(shape.batch * shape.groups),
            // About 9 operations per element over the three passes.
            flops: 9.0 * n,
            // x read three times and written once.
            bytes: 4.0 * (4.0 * n + 2.0 * shape.c as f64),
        },
        &constants,
    );
}

/// [`Variant::Slices`] reading x from a matrix texture ([batch * c rows, hw columns], a conv
/// product's output on CPU adapters) with inline texture loads, writing y to a buffer or to a
/// texture of the same layout (then the residual, if any, is read from a texture too).
/// Panics unless the slices variant fits `shape`.
#[allow(clippy::too_many_arguments)]
pub fn record_from_texture(
    gpu: &Gpu,
    program: &mut Program,
    shape: GroupNorm,
    x: &MatrixTexture,           // [batch * c, hw]
    y: Place<'_>,                // [batch, c, hw], or a [batch * c, hw] texture
    gamma: &wgpu::Buffer,        // [c]
    beta: &wgpu::Buffer,         // [c]
    residual: Option<Place<'_>>, // like y, added before the ReLU
) {
    shape.check();
    assert!(
        Variant::Slices.fits(shape),
        "group_norm: the texture source needs hw a multiple of 4, got {shape:?}"
    );
    let holds = |t: &MatrixTexture| t.height >= shape.batch * shape.c && t.cols >= shape.hw;
    assert!(
        holds(x),
        "group_norm: x texture [{}, {}] does not hold {shape:?}",
        x.height,
        x.cols
    );
    let params = (shape.params(), shape.constants(residual.is_some()));
    let (mut placeholder, mut placeholder_view) = (None, None);
    let (residual_bind, entries, out) = match (y, residual) {
        (Place::Buffer(y), residual) => {
            let residual = residual.map(|r| match r {
                Place::Buffer(b) => b,
                Place::Texture(_) => panic!("group_norm: a buffer y needs a buffer residual"),
            });
            let len = (shape.batch * shape.c * shape.hw * 4) as u64;
            assert!(
                y.size() >= len,
                "group_norm: y ({} bytes) does not hold {shape:?}",
                y.size()
            );
            (
                residual_bind(gpu, shape, residual, &mut placeholder),
                ("stats_slices_texture", "apply_slices_texture"),
                Bind::from(y),
            )
        }
        (Place::Texture(y), residual) => {
            assert!(
                holds(y),
                "group_norm: y texture [{}, {}] does not hold {shape:?}",
                y.height,
                y.cols
            );
            let residual = match residual {
                Some(Place::Texture(r)) => {
                    assert!(
                        holds(r),
                        "group_norm: residual texture smaller than {shape:?}"
                    );
                    r.clone()
                }
                Some(Place::Buffer(_)) => {
                    panic!("group_norm: a texture y needs a texture residual")
                }
                // Never read (add_residual is 0), but the binding must hold a texture.
                None => program
                    .scratch_texture(gpu, "group_norm.no_residual", (1, 4), (1, 4))
                    .expect("a 1x1 texture fits any adapter"),
            };
            let view = &*placeholder_view.insert(residual.view);
            (
                Bind::from(view),
                ("stats_slices_texture", "apply_slices_texture_to_texture"),
                Bind::from(&y.view),
            )
        }
    };
    let inputs = [
        Bind::from(&x.view),
        Bind::from(gamma),
        Bind::from(beta),
        residual_bind,
    ];
    record_slices(gpu, program, shape, params, entries, &inputs, Some(out));
}

/// The residual's binding: `residual`, checked against `shape`, or without one a placeholder
/// that `keep` holds (never read, but bound as a vec4 array: 16 bytes at least).
fn residual_bind<'a>(
    gpu: &Gpu,
    shape: GroupNorm,
    residual: Option<&'a wgpu::Buffer>,
    keep: &'a mut Option<wgpu::Buffer>,
) -> Bind<'a> {
    let len = (shape.batch * shape.c * shape.hw * 4) as u64;
    match residual {
        Some(r) => {
            assert!(
                r.size() >= len,
                "group_norm: residual smaller than {shape:?}"
            );
            Bind::from(r)
        }
        None => Bind::from(&*keep.insert(gpu.storage("group_norm.no_residual", 4))),
    }
}

/// The slices variant's two passes (`entries`: statistics, then normalisation): `inputs` are
/// x, gamma, beta and the residual (or a placeholder); the second writes `y` where given, else
/// x in place.
fn record_slices(
    gpu: &Gpu,
    program: &mut Program,
    shape: GroupNorm,
    (params, constants): (GroupNormParams, Constants),
    (stats_entry, apply_entry): (&'static str, &'static str),
    inputs: &[Bind<'_>; 4],
    y: Option<Bind<'_>>,
) {
    let n = (shape.batch * shape.c * shape.hw) as f64;
    let lanes = shape.batch * shape.groups * SLICES;
    let slices = gpu.storage("group_norm.slices", 2 * lanes);
    let stats = [inputs[0], Bind::from(&slices)];
    let mut apply = inputs.to_vec();
    apply.push(Bind::from(&slices));
    apply.extend(y);
    // The statistics pass reads no constant: one pipeline serves every norm.
    for (entry, bindings, flops, bytes, constants) in [
        (stats_entry, &stats[..], 5.0 * n, 8.0 * n, &[][..]),
        (
            apply_entry,
            &apply[..],
            4.0 * n,
            8.0 * n + 8.0 * shape.c as f64,
            &constants[..],
        ),
    ] {
        program.push_specialized(
            gpu,
            Call {
                kernel: &KERNEL,
                entry,
                params,
                bindings,
                workgroups: grid_1d(lanes.div_ceil(64)),
                flops,
                bytes,
            },
            constants,
        );
    }
}

/// CPU reference: two-pass statistics in f64; the residual is added in f32, as the kernels
/// add it to the f32 normalised value.
pub fn cpu(
    shape: GroupNorm,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    residual: Option<&[f32]>,
) -> Vec<f32> {
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
            let mut v = ((xv as f64 - mean) * inv_std * gamma[ch] as f64 + beta[ch] as f64) as f32;
            if let Some(r) = residual {
                v += r[gi * n + i];
            }
            *yv = if relu { v.max(0.0) } else { v };
        }
    }
    y
}
