//! `max_pool`: the stem's 3x3 stride-2 pool with "SAME" zero padding that takes part in the max
//! (BiT's `BitMaxPool2d` pads with zeros, then pools).

use crate::gpu::Gpu;
use crate::ops::conv2d::{self, same_1d};
use crate::ops::matrix_texture::{self, MatrixTexture};
use crate::ops::{Bind, Call, Kernel, MAX_GROUPS_PER_DIM, Program, grid_1d, kernel};

pub const KERNEL: Kernel = kernel!("max_pool");

const WORKGROUP: usize = 256;

/// Keep in sync with `Params` in shaders/max_pool.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct MaxPoolParams {
    pub batch: u32,
    pub c: u32,
    pub h: u32,
    pub w: u32,
    pub k: u32,
    pub stride: u32,
    pub pad_top: u32,
    pub pad_left: u32,
    pub oh: u32,
    pub ow: u32,
}

/// Shape of one k x k pool; window positions outside the input count as 0.0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxPool {
    pub batch: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub k: usize,
    pub stride: usize,
    pub pad_top: usize,
    pub pad_left: usize,
    pub oh: usize,
    pub ow: usize,
}

impl MaxPool {
    /// TensorFlow "SAME", as for [`crate::ops::conv2d::Conv2d::same`]: out = ceil(x / s).
    pub fn same(batch: usize, c: usize, h: usize, w: usize, k: usize, stride: usize) -> Self {
        let (oh, pad_top) = same_1d(h, k, stride);
        let (ow, pad_left) = same_1d(w, k, stride);
        Self {
            batch,
            c,
            h,
            w,
            k,
            stride,
            pad_top,
            pad_left,
            oh,
            ow,
        }
    }

    /// Elements of the output, `batch * c * oh * ow`.
    pub fn out_len(&self) -> usize {
        self.batch * self.c * self.oh * self.ow
    }

    /// Elements of the input, `batch * c * h * w`.
    pub fn in_len(&self) -> usize {
        self.batch * self.c * self.h * self.w
    }
}

/// Records `y = max_pool(x)`.
pub fn record(
    gpu: &Gpu,
    program: &mut Program,
    shape: MaxPool,
    x: &wgpu::Buffer, // [batch, c, h, w]
    y: &wgpu::Buffer, // [batch, c, oh, ow]
) {
    for (what, buffer, len) in [("x", x, shape.in_len()), ("y", y, shape.out_len())] {
        assert!(
            buffer.size() >= (len * 4) as u64,
            "max_pool {shape:?}: {what} holds {} bytes, needs {}",
            buffer.size(),
            len * 4
        );
    }
    let params = params(shape);
    let n = shape.out_len();
    program.push(
        gpu,
        Call {
            kernel: &KERNEL,
            entry: "main",
            params,
            bindings: &[Bind::from(x), Bind::from(y)],
            workgroups: grid_1d(n.div_ceil(WORKGROUP)),
            flops: (n * shape.k * shape.k) as f64,
            bytes: 4.0 * (shape.in_len() + n) as f64,
        },
    );
}

/// CPU reference.
/// Whether [`record_texture`] runs `shape`: its planes within the grid's 65535 rows and both
/// textures within the adapter's limits, y as wide as the next conv reads
/// ([`conv2d::input_texture_width`]).
pub fn texture_fits(gpu: &Gpu, shape: MaxPool) -> bool {
    let rows = shape.batch * shape.c;
    rows <= MAX_GROUPS_PER_DIM as usize
        && matrix_texture::fits(gpu, rows, shape.h * shape.w)
        && matrix_texture::fits(gpu, rows, conv2d::input_texture_width(shape.oh * shape.ow))
}

/// [`record`] from and into matrix textures (row b * c + channel, the plane's pixels
/// flattened; CPU adapters, where it reads with inline loads). Panics unless
/// [`texture_fits`] and the textures hold the planes.
pub fn record_texture(
    gpu: &Gpu,
    program: &mut Program,
    shape: MaxPool,
    x: &MatrixTexture, // [batch * c, h * w]
    y: &MatrixTexture, // [batch * c, oh * ow]
) {
    let rows = shape.batch * shape.c;
    let (hw, ohw) = (shape.h * shape.w, shape.oh * shape.ow);
    assert!(
        texture_fits(gpu, shape)
            && x.height >= rows
            && x.texels_wide() * 4 >= hw
            && y.height >= rows
            && y.texels_wide() * 4 >= ohw,
        "max_pool {shape:?}: textures [{} x {} texels] and [{} x {} texels] do not hold it",
        x.height,
        x.texels_wide(),
        y.height,
        y.texels_wide()
    );
    let texels = ohw.div_ceil(4);
    if rows == 0 || texels == 0 {
        return;
    }
    program.push(
        gpu,
        Call {
            kernel: &KERNEL,
            entry: "main_texture",
            params: params(shape),
            bindings: &[Bind::from(&x.view), Bind::from(&y.view)],
            workgroups: [texels.div_ceil(64) as u32, rows as u32, 1],
            flops: (rows * ohw * shape.k * shape.k) as f64,
            bytes: 4.0 * (rows * (hw + ohw)) as f64,
        },
    );
}

fn params(shape: MaxPool) -> MaxPoolParams {
    let u = |v: usize| u32::try_from(v).expect("max_pool size fits in u32");
    MaxPoolParams {
        batch: u(shape.batch),
        c: u(shape.c),
        h: u(shape.h),
        w: u(shape.w),
        k: u(shape.k),
        stride: u(shape.stride),
        pad_top: u(shape.pad_top),
        pad_left: u(shape.pad_left),
        oh: u(shape.oh),
        ow: u(shape.ow),
    }
}

pub fn cpu(shape: MaxPool, x: &[f32]) -> Vec<f32> {
    let MaxPool {
        batch,
        c,
        h,
        w,
        k,
        stride,
        pad_top,
        pad_left,
        oh,
        ow,
    } = shape;
    assert_eq!(x.len(), shape.in_len(), "max_pool cpu: x length");
    let mut y = vec![0.0f32; shape.out_len()];
    for plane in 0..batch * c {
        let xp = &x[plane * h * w..(plane + 1) * h * w];
        for oy in 0..oh {
            for ox in 0..ow {
                let mut m = f32::NEG_INFINITY;
                for ky in 0..k {
                    for kx in 0..k {
                        // Signed, since the window may start in the top/left padding.
                        let iy = (oy * stride + ky) as isize - pad_top as isize;
                        let ix = (ox * stride + kx) as isize - pad_left as isize;
                        let inside = (0..h as isize).contains(&iy) && (0..w as isize).contains(&ix);
                        let v = if inside {
                            xp[iy as usize * w + ix as usize]
                        } else {
                            0.0
                        };
                        // NaN wins, as in PyTorch's max_pool2d (f32::max would drop it).
                        if v > m || v.is_nan() {
                            m = v;
                        }
                    }
                }
                y[(plane * oh + oy) * ow + ox] = m;
            }
        }
    }
    y
}
