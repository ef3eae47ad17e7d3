//! A matrix in a 2D storage texture, the operand layout of the CPU-adapter matrix products:
//! texel (c, r) holds columns 4c..4c+4 of row r. On lavapipe a read-only storage-texture load
//! is one inline 128-bit load per lane, where a storage-buffer load is a loop over the 8 lanes
//! with a bounds check each (../shared/notes/lavapipe.md), so kernels that read their
//! operands from textures run 2-3x faster there.
//!
//! The texture is allocated with more rows than the matrix (`height`, a multiple of what the
//! consuming kernel's tile needs) and columns rounded up to whole texels; padding is zero
//! (textures start zeroed and nothing writes there), so kernels read whole tiles without
//! bounds checks.

use anyhow::{Result, ensure};

use crate::gpu::Gpu;
use crate::ops::MAX_GROUPS_PER_DIM;

/// Texel format: f32 or f16 components (the kernel reads both as vec4<f32>).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TexelFormat {
    F32,
    F16,
}

impl TexelFormat {
    pub fn wgpu(self) -> wgpu::TextureFormat {
        match self {
            TexelFormat::F32 => wgpu::TextureFormat::Rgba32Float,
            TexelFormat::F16 => wgpu::TextureFormat::Rgba16Float,
        }
    }

    pub fn texel_bytes(self) -> usize {
        match self {
            TexelFormat::F32 => 16,
            TexelFormat::F16 => 8,
        }
    }
}

/// Where a kernel reads or writes a matrix: a row-major storage buffer or a matrix texture.
#[derive(Clone, Copy)]
pub enum Place<'a> {
    Buffer(&'a wgpu::Buffer),
    Texture(&'a MatrixTexture),
}

#[derive(Clone, Debug)]
pub struct MatrixTexture {
    pub texture: wgpu::Texture,
    pub view: wgpu::TextureView,
    /// Rows and columns of the matrix.
    pub rows: usize,
    pub cols: usize,
    /// Rows allocated (>= rows); the extra rows are zero.
    pub height: usize,
    /// Texels per row allocated (>= cols / 4, rounded up); the extra ones are zero.
    pub texels: usize,
    pub format: TexelFormat,
}

/// Whether a [height, cols] matrix fits one texture on this device (and the workgroup grid
/// of the kernels that fill it row by row, `to_texture::row_grid`).
pub fn fits(gpu: &Gpu, height: usize, cols: usize) -> bool {
    let max = (gpu.limits().max_texture_dimension_2d as usize).min(MAX_GROUPS_PER_DIM as usize);
    height.max(1) <= max && cols.div_ceil(4).max(1) <= max
}

impl MatrixTexture {
    /// A zeroed texture for a [rows, cols] matrix with `height` rows allocated.
    pub fn new(
        gpu: &Gpu,
        label: &str,
        rows: usize,
        cols: usize,
        height: usize,
        format: TexelFormat,
    ) -> Result<Self> {
        Self::new_padded(gpu, label, (rows, cols), (height, cols), format)
    }

    /// [`MatrixTexture::new`] with `width` columns allocated (rounded up to whole texels).
    pub fn new_padded(
        gpu: &Gpu,
        label: &str,
        (rows, cols): (usize, usize),
        (height, width): (usize, usize),
        format: TexelFormat,
    ) -> Result<Self> {
        ensure!(
            height >= rows && width >= cols,
            "matrix texture {label}: [{height}, {width}] allocated for [{rows}, {cols}]"
        );
        ensure!(
            fits(gpu, height, width),
            "matrix texture {label}: [{height}, {width}] needs {} x {height} texels, past the \
             adapter's 2D texture limit of {}",
            width.div_ceil(4),
            gpu.limits().max_texture_dimension_2d
        );
        let texture = gpu.device.create_texture(&wgpu::TextureDescriptor {
            label: Some(label),
            size: wgpu::Extent3d {
                width: width.div_ceil(4).max(1) as u32,
                height: height.max(1) as u32,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: format.wgpu(),
            usage: wgpu::TextureUsages::STORAGE_BINDING
                | wgpu::TextureUsages::COPY_DST
                | wgpu::TextureUsages::COPY_SRC,
            view_formats: &[],
        });
        let view = texture.create_view(&Default::default());
        Ok(Self {
            texture,
            view,
            rows,
            cols,
            height,
            texels: width.div_ceil(4).max(1),
            format,
        })
    }

    /// Width in texels.
    pub fn texels_wide(&self) -> usize {
        self.texels
    }

    /// Uploads a row-major [rows, cols] f32 matrix (rounded to f16 for `TexelFormat::F16`).
    pub fn upload(
        gpu: &Gpu,
        label: &str,
        data: &[f32],
        (rows, cols): (usize, usize),
        height: usize,
        format: TexelFormat,
    ) -> Result<Self> {
        ensure!(
            data.len() == rows * cols,
            "matrix texture {label}: expected [{rows}, {cols}] = {} values, got {}",
            rows * cols,
            data.len()
        );
        let t = Self::new(gpu, label, rows, cols, height, format)?;
        if rows == 0 || cols == 0 {
            return Ok(t);
        }
        // Rows are padded to whole texels only where they are not already (no copy of a
        // full-size weight that is: the model's upload copies enough as it is).
        let wide = t.texels_wide() * 4;
        let padded: std::borrow::Cow<[f32]> = if wide == cols {
            data.into()
        } else {
            let mut padded = vec![0.0f32; rows * wide];
            for (dst, src) in padded.chunks_exact_mut(wide).zip(data.chunks_exact(cols)) {
                dst[..cols].copy_from_slice(src);
            }
            padded.into()
        };
        let halves;
        let bytes: &[u8] = match format {
            TexelFormat::F32 => bytemuck::cast_slice(&padded),
            TexelFormat::F16 => {
                use half::slice::HalfFloatSliceExt;
                let mut h = vec![half::f16::ZERO; padded.len()];
                h.convert_from_f32_slice(&padded);
                halves = h;
                let bits: &[u16] = halves.reinterpret_cast();
                bytemuck::cast_slice(bits)
            }
        };
        gpu.queue.write_texture(
            t.texture.as_image_copy(),
            bytes,
            wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some((t.texels_wide() * format.texel_bytes()) as u32),
                rows_per_image: Some(rows as u32),
            },
            wgpu::Extent3d {
                width: t.texels_wide() as u32,
                height: rows as u32,
                depth_or_array_layers: 1,
            },
        );
        Ok(t)
    }

    /// Bytes the texture takes on the GPU.
    pub fn bytes(&self) -> usize {
        self.texels_wide() * self.height.max(1) * self.format.texel_bytes()
    }

    /// Reads the [rows, cols] matrix back (blocking; tests and captures).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read(&self, gpu: &Gpu) -> Result<Vec<f32>> {
        ensure!(
            self.format == TexelFormat::F32,
            "reading back an f16 matrix texture is not supported"
        );
        let row_bytes = self.texels_wide() * 16;
        let aligned = row_bytes.next_multiple_of(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT as usize);
        let rows = self.rows.max(1);
        let staging = gpu.storage("matrix texture readback", aligned * rows / 4);
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        encoder.copy_texture_to_buffer(
            self.texture.as_image_copy(),
            wgpu::TexelCopyBufferInfo {
                buffer: &staging,
                layout: wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(aligned as u32),
                    rows_per_image: Some(rows as u32),
                },
            },
            wgpu::Extent3d {
                width: self.texels_wide() as u32,
                height: rows as u32,
                depth_or_array_layers: 1,
            },
        );
        gpu.queue.submit([encoder.finish()]);
        let all = gpu.read(&staging, aligned * rows / 4)?;
        let mut out = Vec::with_capacity(self.rows * self.cols);
        for r in 0..self.rows {
            out.extend_from_slice(&all[r * aligned / 4..r * aligned / 4 + self.cols]);
        }
        Ok(out)
    }
}
