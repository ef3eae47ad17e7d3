//! `conv2d`: the backbone's convolutions (bias-free, weights standardised on the host) and the
//! patch projection (with a bias), as an implicit GEMM over `[B, C, H, W]` tensors.

use crate::gpu::Gpu;
use crate::ops::{Call, Kernel, Program, grid_1d, kernel};

pub const KERNEL: Kernel = kernel!("conv2d");

const TILE: usize = 64;
const FLAG_BIAS: u32 = 1;

/// Keep in sync with `Params` in shaders/conv2d.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Conv2dParams {
    pub batch: u32,
    pub cin: u32,
    pub h: u32,
    pub w: u32,
    pub cout: u32,
    pub kh: u32,
    pub kw: u32,
    pub stride: u32,
    pub pad_top: u32,
    pub pad_left: u32,
    pub oh: u32,
    pub ow: u32,
    pub flags: u32,
}

/// Shape of one convolution. The bottom/right padding is whatever `oh`/`ow` imply; padded
/// positions read as zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2d {
    pub batch: usize,
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub pad_top: usize,
    pub pad_left: usize,
    pub oh: usize,
    pub ow: usize,
}

/// TensorFlow "SAME" along one axis: (output size, padding before).
pub(crate) fn same_1d(x: usize, k: usize, s: usize) -> (usize, usize) {
    assert!(s > 0, "SAME padding needs a stride > 0");
    let out = x.div_ceil(s);
    let total = ((out.max(1) - 1) * s + k).saturating_sub(x);
    (out, total / 2)
}

impl Conv2d {
    /// TensorFlow/BiT "SAME": out = ceil(x / s); total pad = max((out-1)*s + k - x, 0); pad/2
    /// before (top/left), the rest after.
    pub fn same(
        batch: usize,
        cin: usize,
        h: usize,
        w: usize,
        cout: usize,
        k: usize,
        stride: usize,
    ) -> Self {
        let (oh, pad_top) = same_1d(h, k, stride);
        let (ow, pad_left) = same_1d(w, k, stride);
        Self {
            batch,
            cin,
            h,
            w,
            cout,
            kh: k,
            kw: k,
            stride,
            pad_top,
            pad_left,
            oh,
            ow,
        }
    }

    /// No padding (PyTorch's default): out = (x - k) / s + 1, floored; the patch projection
    /// (kernel = stride = patch size).
    pub fn valid(
        batch: usize,
        cin: usize,
        h: usize,
        w: usize,
        cout: usize,
        k: usize,
        stride: usize,
    ) -> Self {
        assert!(stride > 0, "conv2d needs a stride > 0");
        assert!(
            h >= k && w >= k,
            "a 'valid' {k}x{k} conv needs an input of at least {k}x{k}, got {h}x{w}"
        );
        let (oh, ow) = ((h - k) / stride + 1, (w - k) / stride + 1);
        Self {
            batch,
            cin,
            h,
            w,
            cout,
            kh: k,
            kw: k,
            stride,
            pad_top: 0,
            pad_left: 0,
            oh,
            ow,
        }
    }

    /// Elements of the output, `batch * cout * oh * ow`.
    pub fn out_len(&self) -> usize {
        self.batch * self.cout * self.oh * self.ow
    }

    /// Elements of the input, `batch * cin * h * w`.
    pub fn in_len(&self) -> usize {
        self.batch * self.cin * self.h * self.w
    }

    /// Elements of the weight, `cout * cin * kh * kw`.
    pub fn weight_len(&self) -> usize {
        self.cout * self.cin * self.kh * self.kw
    }
}

fn check_buffer(what: &str, buffer: &wgpu::Buffer, len: usize, shape: &Conv2d) {
    assert!(
        buffer.size() >= (len * 4) as u64,
        "conv2d {shape:?}: {what} holds {} bytes, needs {}",
        buffer.size(),
        len * 4
    );
}

/// Records `y = conv(x, w) (+ bias)`. Without a bias a placeholder fills its binding.
pub fn record(
    gpu: &Gpu,
    program: &mut Program,
    shape: Conv2d,
    x: &wgpu::Buffer,            // [batch, cin, h, w]
    w: &wgpu::Buffer,            // [cout, cin, kh, kw]
    bias: Option<&wgpu::Buffer>, // [cout]
    y: &wgpu::Buffer,            // [batch, cout, oh, ow]
) {
    check_buffer("x", x, shape.in_len(), &shape);
    check_buffer("w", w, shape.weight_len(), &shape);
    check_buffer("y", y, shape.out_len(), &shape);
    if let Some(b) = bias {
        check_buffer("bias", b, shape.cout, &shape);
    }
    let u = |v: usize| u32::try_from(v).expect("conv2d size fits in u32");
    let params = Conv2dParams {
        batch: u(shape.batch),
        cin: u(shape.cin),
        h: u(shape.h),
        w: u(shape.w),
        cout: u(shape.cout),
        kh: u(shape.kh),
        kw: u(shape.kw),
        stride: u(shape.stride),
        pad_top: u(shape.pad_top),
        pad_left: u(shape.pad_left),
        oh: u(shape.oh),
        ow: u(shape.ow),
        flags: if bias.is_some() { FLAG_BIAS } else { 0 },
    };
    let [gx, gy, _] = grid_1d((shape.batch * shape.oh * shape.ow).div_ceil(TILE));
    let macs = (shape.out_len() * shape.cin * shape.kh * shape.kw) as f64;
    program.push(
        gpu,
        Call {
            kernel: &KERNEL,
            entry: "main",
            params,
            buffers: &[x, w, bias.unwrap_or(w), y],
            workgroups: [gx, gy, u(shape.cout.div_ceil(TILE))],
            flops: 2.0 * macs,
            bytes: 4.0 * (shape.in_len() + shape.weight_len() + shape.out_len()) as f64,
        },
    );
}

/// CPU reference, accumulating in f64.
pub fn cpu(shape: Conv2d, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let Conv2d {
        batch,
        cin,
        h,
        w: wd,
        cout,
        kh,
        kw,
        stride,
        pad_top,
        pad_left,
        oh,
        ow,
    } = shape;
    assert_eq!(x.len(), shape.in_len(), "conv2d cpu: x length");
    assert_eq!(w.len(), shape.weight_len(), "conv2d cpu: w length");
    let mut y = vec![0.0f32; shape.out_len()];
    for b in 0..batch {
        for co in 0..cout {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = bias.map_or(0.0, |b| b[co] as f64);
                    for ci in 0..cin {
                        for ky in 0..kh {
                            // Signed, since the tap may fall in the top/left padding.
                            let iy = (oy * stride + ky) as isize - pad_top as isize;
                            if iy < 0 || iy >= h as isize {
                                continue;
                            }
                            for kx in 0..kw {
                                let ix = (ox * stride + kx) as isize - pad_left as isize;
                                if ix < 0 || ix >= wd as isize {
                                    continue;
                                }
                                let xv = x[((b * cin + ci) * h + iy as usize) * wd + ix as usize];
                                let wv = w[((co * cin + ci) * kh + ky) * kw + kx];
                                acc += xv as f64 * wv as f64;
                            }
                        }
                    }
                    y[((b * cout + co) * oh + oy) * ow + ox] = acc as f32;
                }
            }
        }
    }
    y
}
