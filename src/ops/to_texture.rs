//! `to_texture`: a row-major matrix in a buffer into a [`MatrixTexture`], for products whose
//! input comes from a kernel that cannot store the texture layout itself, and back.

use crate::gpu::Gpu;
use crate::ops::matrix_texture::MatrixTexture;
use crate::ops::{Bind, Call, Kernel, MAX_GROUPS_PER_DIM, Program, kernel};

pub const KERNEL: Kernel = kernel!("to_texture");

/// Keep in sync with `Params` in shaders/to_texture.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ToTextureParams {
    pub rows: u32,
    pub cols: u32,
    pub row_stride: u32,
    pub texels_wide: u32,
    /// Where row 0 starts in the buffer, in floats.
    pub offset: u32,
}

/// Records `out = x` for `out.rows` rows of `out.cols` values, rows `row_stride` apart in `x`.
pub fn record(
    gpu: &Gpu,
    program: &mut Program,
    x: &wgpu::Buffer,
    row_stride: usize,
    out: &MatrixTexture,
) {
    record_from(gpu, program, x, 0, row_stride, out);
}

/// [`record`] from the rows of `x` that start at float `offset`.
pub fn record_from(
    gpu: &Gpu,
    program: &mut Program,
    x: &wgpu::Buffer,
    offset: usize,
    row_stride: usize,
    out: &MatrixTexture,
) {
    assert!(
        row_stride >= out.cols,
        "to_texture: row stride {row_stride} < {} columns",
        out.cols
    );
    let params = ToTextureParams {
        rows: out.rows as u32,
        cols: out.cols as u32,
        row_stride: row_stride as u32,
        texels_wide: out.texels_wide() as u32,
        offset: u32::try_from(offset).expect("to_texture: offset fits in u32"),
    };
    let texels = out.rows * out.texels_wide();
    program.push(
        gpu,
        Call {
            kernel: &KERNEL,
            entry: "main",
            params,
            bindings: &[Bind::from(x), Bind::from(&out.view)],
            workgroups: row_grid(out.texels_wide(), out.rows),
            flops: 0.0,
            bytes: 32.0 * texels as f64,
        },
    );
}

/// Records `y = x` back from a matrix texture: `x.rows` rows of `x.cols` values, rows
/// `row_stride` apart in `y` (stage captures, and buffer kernels after a texture producer).
pub fn record_from_texture(
    gpu: &Gpu,
    program: &mut Program,
    x: &MatrixTexture,
    y: &wgpu::Buffer,
    row_stride: usize,
) {
    assert!(
        row_stride >= x.cols
            && y.size() >= (x.rows.saturating_sub(1) * row_stride + x.cols) as u64 * 4,
        "to_texture: a buffer of {} bytes with row stride {row_stride} cannot hold [{}, {}]",
        y.size(),
        x.rows,
        x.cols
    );
    let params = ToTextureParams {
        rows: x.rows as u32,
        cols: x.cols as u32,
        row_stride: row_stride as u32,
        texels_wide: x.cols.div_ceil(4) as u32,
        offset: 0,
    };
    let texels = x.rows * x.cols.div_ceil(4);
    program.push(
        gpu,
        Call {
            kernel: &KERNEL,
            entry: "from_texture",
            params,
            bindings: &[Bind::from(&x.view), Bind::from(y)],
            workgroups: row_grid(x.cols.div_ceil(4), x.rows),
            flops: 0.0,
            bytes: 32.0 * texels as f64,
        },
    );
}

/// Workgroups of the row-by-row entry points (`main`, `im2col`): 64 texels of a row each
/// along x, one row per y. Rows are texture rows, which no adapter allows past 65535.
pub fn row_grid(texels: usize, rows: usize) -> [u32; 3] {
    let x = texels.div_ceil(64).max(1);
    assert!(
        x <= MAX_GROUPS_PER_DIM as usize && rows <= MAX_GROUPS_PER_DIM as usize,
        "to_texture: {rows} rows of {texels} texels exceed the workgroup grid"
    );
    [x as u32, rows.max(1) as u32, 1]
}
