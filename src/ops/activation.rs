//! A backbone activation [batch, c, h * w] where its producer left it: in its storage buffer,
//! or on CPU adapters in a matrix texture (row b * c + ch, a texel = 4 pixels), which the
//! next conv reads with inline loads (its input operand or its im2col source) where a buffer
//! costs a loop over the lanes per load and a copy into a texture per conv.

use crate::gpu::Gpu;
use crate::ops::Program;
use crate::ops::matrix_texture::{MatrixTexture, Place};
use crate::ops::to_texture;

#[derive(Clone)]
pub struct Activation<'a> {
    /// The buffer reserved for it: where it lives without a texture, and where a consumer
    /// that reads only buffers has it copied.
    pub buffer: &'a wgpu::Buffer,
    /// Where it lives instead, if its producer stored a texture (the buffer is then stale).
    pub texture: Option<MatrixTexture>,
}

impl<'a> Activation<'a> {
    pub fn buffer(buffer: &'a wgpu::Buffer) -> Self {
        Self {
            buffer,
            texture: None,
        }
    }

    pub fn place(&self) -> Place<'_> {
        match &self.texture {
            Some(t) => Place::Texture(t),
            None => Place::Buffer(self.buffer),
        }
    }

    /// Its buffer, with a copy back from the texture recorded first where it lives there.
    pub fn to_buffer(&self, gpu: &Gpu, p: &mut Program) -> &'a wgpu::Buffer {
        if let Some(t) = &self.texture {
            to_texture::record_from_texture(gpu, p, t, self.buffer, t.cols);
        }
        self.buffer
    }

    /// Its texture, or a texture role `role` of `width` columns allocated that a copy of the
    /// buffer is recorded into, for a [rows, cols] view of it.
    pub fn to_texture(
        &self,
        gpu: &Gpu,
        p: &mut Program,
        role: &'static str,
        (rows, cols): (usize, usize),
        width: usize,
    ) -> MatrixTexture {
        if let Some(t) = &self.texture {
            return t.clone();
        }
        let t = p
            .scratch_texture(gpu, role, (rows, cols), (rows, width))
            .expect("the caller checked that the texture fits");
        to_texture::record(gpu, p, self.buffer, cols, &t);
        t
    }

    /// Records a copy of its first `len` values into `dst` as a dense [batch, c, h * w].
    pub fn record_copy(&self, gpu: &Gpu, p: &mut Program, dst: &wgpu::Buffer, len: usize) {
        match &self.texture {
            Some(t) => to_texture::record_from_texture(gpu, p, t, dst, t.cols),
            None => p.copy(self.buffer, dst, len),
        }
    }
}
