//! Every GPU op: its shader, the `#[repr(C)]` params struct mirrored by the shader's uniform,
//! a function that records its dispatch into a [`Program`], and a plain-Rust CPU reference.
//!
//! Shaders get their sizes from a uniform at binding 0; their storage buffers and textures
//! follow at bindings 1.. in the order the record function passes them. Bind-group layouts are read from
//! the shader (`layout: None`), so the binding facts are written once, in WGSL.

use std::sync::Arc;

use crate::gpu::Gpu;

pub mod activation;
pub mod attention;
pub mod conv2d;
pub mod group_norm;
pub mod layer_norm;
pub mod linear;
pub mod matrix_texture;
pub mod max_pool;
pub mod to_texture;
pub mod tokens;

/// One WGSL source file; its name is the pipeline label and the cache key.
#[derive(Clone, Copy, Debug)]
pub struct Kernel {
    pub name: &'static str,
    pub source: &'static str,
}

macro_rules! kernel {
    ($name:literal) => {
        $crate::ops::Kernel {
            name: $name,
            // Expanded from shaders/<name>.wgsl by build.rs (src/shader_template.rs).
            source: include_str!(concat!(env!("OUT_DIR"), "/shaders/", $name, ".wgsl")),
        }
    };
}
pub(crate) use kernel;

/// Every shader in `shaders/`, for validation and pipeline warm-up.
pub const ALL_KERNELS: &[Kernel] = &[
    attention::KERNEL,
    attention::KERNEL_FUSED,
    conv2d::KERNEL,
    group_norm::KERNEL,
    layer_norm::KERNEL,
    linear::KERNEL,
    linear::KERNEL_F16,
    linear::KERNEL_F16_NATIVE,
    linear::KERNEL_SUBGROUP,
    max_pool::KERNEL,
    to_texture::KERNEL,
    tokens::KERNEL,
];

/// One recorded dispatch: everything it needs was created when it was recorded.
pub struct Dispatch {
    pub kernel: &'static str,
    pub entry: &'static str,
    /// The model layer this dispatch belongs to (e.g. `encoder.layer.3.attention`).
    pub layer: String,
    pub workgroups: [u32; 3],
    /// Floating-point operations (2 per multiply-add) and bytes moved, for profiles.
    pub flops: f64,
    pub bytes: f64,
    pipeline: Arc<wgpu::ComputePipeline>,
    bind_group: wgpu::BindGroup,
    _params: wgpu::Buffer,
}

/// A fixed list of dispatches, recorded once and encoded into one compute pass per run.
#[derive(Default)]
pub struct Program {
    pub dispatches: Vec<Dispatch>,
    /// Buffer copies that run after the first `.0` dispatches (captures, batch chunks).
    copies: Vec<(usize, BufferCopy)>,
    scope: String,
    /// Scratch matrix textures by (rows, cols, height, width), see [`Program::scratch_texture`].
    scratch: std::collections::HashMap<(&'static str, [usize; 4]), matrix_texture::MatrixTexture>,
    /// A dry run ([`Program::collecting`]): each push only notes its pipeline here.
    collected: Option<Vec<PipelineSpec>>,
}

/// A pipeline a program needs: kernel, entry point and override constants.
pub type PipelineSpec = (&'static Kernel, &'static str, Vec<(&'static str, f64)>);

/// A whole-range copy between two buffers, recorded between dispatches.
#[derive(Clone, Debug)]
pub struct BufferCopy {
    pub src: wgpu::Buffer,
    pub src_offset: u64,
    pub dst: wgpu::Buffer,
    pub dst_offset: u64,
    pub bytes: u64,
}

/// One resource bound after the params uniform: a storage buffer or a storage texture.
#[derive(Clone, Copy)]
pub enum Bind<'a> {
    Buffer(&'a wgpu::Buffer),
    Texture(&'a wgpu::TextureView),
}

impl<'a> From<&'a wgpu::Buffer> for Bind<'a> {
    fn from(b: &'a wgpu::Buffer) -> Self {
        Bind::Buffer(b)
    }
}

impl<'a> From<&'a wgpu::TextureView> for Bind<'a> {
    fn from(t: &'a wgpu::TextureView) -> Self {
        Bind::Texture(t)
    }
}

/// What a record function hands to [`Program::push`].
pub struct Call<'a, P: bytemuck::Pod> {
    pub kernel: &'static Kernel,
    pub entry: &'static str,
    pub params: P,
    /// Bound at 1, 2, ... in this order.
    pub bindings: &'a [Bind<'a>],
    pub workgroups: [u32; 3],
    pub flops: f64,
    pub bytes: f64,
}

impl Program {
    pub fn new() -> Self {
        Self::default()
    }

    /// A dry run: recording into it notes the pipelines the dispatches need and creates
    /// nothing else for them, so that they can be compiled together ([`Gpu::precompile`])
    /// before the real recording. Its scratch textures carry over ([`Program::after`]).
    pub fn collecting() -> Self {
        Self {
            collected: Some(Vec::new()),
            ..Self::default()
        }
    }

    /// The pipelines a [`Program::collecting`] run noted, in order of first use.
    pub fn pipelines(&self) -> &[PipelineSpec] {
        self.collected.as_deref().unwrap_or_default()
    }

    /// An empty program that shares `dry`'s scratch textures, to record for real.
    pub fn after(dry: Program) -> Self {
        Self {
            scratch: dry.scratch,
            ..Self::default()
        }
    }

    /// A zeroed f32 matrix texture that every caller asking for the same role and size
    /// shares: a kernel's operand copied in just before it runs, or an output read right after
    /// it is made (dispatches run in order, so reuse is safe), made once per size instead of
    /// once per layer. Distinct roles never share: one dispatch may read one role's texture
    /// while writing another's of the same size.
    pub fn scratch_texture(
        &mut self,
        gpu: &Gpu,
        role: &'static str,
        (rows, cols): (usize, usize),
        (height, width): (usize, usize),
    ) -> anyhow::Result<matrix_texture::MatrixTexture> {
        let key = (role, [rows, cols, height, width]);
        if let Some(t) = self.scratch.get(&key) {
            return Ok(t.clone());
        }
        let t = matrix_texture::MatrixTexture::new_padded(
            gpu,
            role,
            (rows, cols),
            (height, width),
            matrix_texture::TexelFormat::F32,
        )?;
        self.scratch.insert(key, t.clone());
        Ok(t)
    }

    /// Names the layer that the following dispatches belong to.
    pub fn set_scope(&mut self, scope: impl Into<String>) {
        self.scope = scope.into();
    }

    pub fn push<P: bytemuck::Pod>(&mut self, gpu: &Gpu, call: Call<'_, P>) {
        self.push_specialized(gpu, call, &[]);
    }

    /// [`Program::push`] with the shader's `override` constants set for this dispatch's
    /// pipeline (see [`Gpu::pipeline_with`]).
    pub fn push_specialized<P: bytemuck::Pod>(
        &mut self,
        gpu: &Gpu,
        call: Call<'_, P>,
        constants: &[(&'static str, f64)],
    ) {
        use wgpu::util::DeviceExt;
        if let Some(specs) = &mut self.collected {
            let key = crate::gpu::pipeline_key(call.kernel, call.entry, constants);
            if !specs
                .iter()
                .any(|s| crate::gpu::pipeline_key(s.0, s.1, &s.2) == key)
            {
                specs.push((call.kernel, call.entry, constants.to_vec()));
            }
            return;
        }
        let pipeline = gpu.pipeline_with(call.kernel, call.entry, constants);
        // Uniform bindings are safest padded to 16 bytes on every backend.
        let mut bytes = bytemuck::bytes_of(&call.params).to_vec();
        bytes.resize(bytes.len().div_ceil(16) * 16, 0);
        let params = gpu
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(call.kernel.name),
                contents: &bytes,
                usage: wgpu::BufferUsages::UNIFORM,
            });
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: params.as_entire_binding(),
        }];
        for (i, b) in call.bindings.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: i as u32 + 1,
                resource: match *b {
                    Bind::Buffer(b) => b.as_entire_binding(),
                    Bind::Texture(t) => wgpu::BindingResource::TextureView(t),
                },
            });
        }
        let bind_group = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(call.kernel.name),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        self.dispatches.push(Dispatch {
            kernel: call.kernel.name,
            entry: call.entry,
            layer: self.scope.clone(),
            workgroups: call.workgroups,
            flops: call.flops,
            bytes: call.bytes,
            pipeline,
            bind_group,
            _params: params,
        });
    }

    /// Copies `floats` f32 values from `src` to `dst` once the dispatches so far have run.
    pub fn copy(&mut self, src: &wgpu::Buffer, dst: &wgpu::Buffer, floats: usize) {
        self.copies.push((
            self.dispatches.len(),
            BufferCopy {
                src: src.clone(),
                src_offset: 0,
                dst: dst.clone(),
                dst_offset: 0,
                bytes: floats as u64 * 4,
            },
        ));
    }

    /// Records every dispatch into one compute pass (split only where a copy must run between).
    pub fn encode(&self, encoder: &mut wgpu::CommandEncoder) {
        let mut start = 0;
        for (at, copy) in &self.copies {
            self.encode_range(encoder, start, *at);
            encode_copy(encoder, copy);
            start = *at;
        }
        self.encode_range(encoder, start, self.dispatches.len());
    }

    /// Records dispatches `span` with the copies that fall among them, as [`Program::encode`]
    /// records the whole program: encoding consecutive spans one after another (in separate
    /// submissions, say) runs the same work in the same order.
    pub fn encode_span(&self, encoder: &mut wgpu::CommandEncoder, span: std::ops::Range<usize>) {
        let last = span.end >= self.dispatches.len();
        let mut start = span.start;
        for (at, copy) in &self.copies {
            // A copy runs before dispatch `at`: in the span holding that dispatch, or in the
            // last span when it follows every dispatch.
            if *at >= span.start && (*at < span.end || last) {
                self.encode_range(encoder, start, *at);
                encode_copy(encoder, copy);
                start = *at;
            }
        }
        self.encode_range(encoder, start, span.end);
    }

    /// Records dispatch `i` alone in its own pass (profiling).
    pub fn encode_one(&self, encoder: &mut wgpu::CommandEncoder, i: usize) {
        self.encode_range(encoder, i, i + 1);
    }

    /// Records dispatch `i` alone in a pass whose start and end are stamped into `set` at
    /// `index` and `index + 1` (profiling with timestamp queries).
    pub fn encode_timed(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        i: usize,
        set: &wgpu::QuerySet,
        index: u32,
    ) {
        let d = &self.dispatches[i];
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(d.kernel),
            timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                query_set: set,
                beginning_of_pass_write_index: Some(index),
                end_of_pass_write_index: Some(index + 1),
            }),
        });
        pass.set_pipeline(&d.pipeline);
        pass.set_bind_group(0, &d.bind_group, &[]);
        let [x, y, z] = d.workgroups;
        pass.dispatch_workgroups(x, y, z);
    }

    fn encode_range(&self, encoder: &mut wgpu::CommandEncoder, from: usize, to: usize) {
        if from >= to {
            return;
        }
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("vit-hybrid forward"),
            timestamp_writes: None,
        });
        for d in &self.dispatches[from..to] {
            pass.set_pipeline(&d.pipeline);
            pass.set_bind_group(0, &d.bind_group, &[]);
            let [x, y, z] = d.workgroups;
            pass.dispatch_workgroups(x, y, z);
        }
    }

    /// Encodes, submits and waits (tests and one-off use; the model batches its own submit).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn run(&self, gpu: &Gpu) -> anyhow::Result<()> {
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        self.encode(&mut encoder);
        gpu.queue.submit([encoder.finish()]);
        gpu.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| anyhow::anyhow!("waiting for the GPU: {e}"))?;
        Ok(())
    }
}

/// Records one buffer copy (outside any pass).
pub fn encode_copy(encoder: &mut wgpu::CommandEncoder, c: &BufferCopy) {
    if c.bytes > 0 {
        encoder.copy_buffer_to_buffer(&c.src, c.src_offset, &c.dst, c.dst_offset, c.bytes);
    }
}

/// Largest workgroup count wgpu allows in one dimension by default.
pub const MAX_GROUPS_PER_DIM: u32 = 65535;

/// Spreads `n` workgroups over x and y so neither passes the per-dimension limit; shaders
/// rebuild the linear index as `wid.x + wid.y * nwg.x` and skip ids past `n`.
pub fn grid_1d(n: usize) -> [u32; 3] {
    let n = n.max(1) as u64;
    let max = MAX_GROUPS_PER_DIM as u64;
    if n <= max {
        [n as u32, 1, 1]
    } else {
        let y = n.div_ceil(max);
        [n.div_ceil(y) as u32, y as u32, 1]
    }
}

/// Exact GELU, 0.5 x (1 + erf(x / sqrt 2)), as the CPU references compute it.
pub fn gelu(x: f32) -> f32 {
    (0.5 * x as f64 * (1.0 + erf(x as f64 / std::f64::consts::SQRT_2))) as f32
}

/// erf to double precision (W. J. Cody's rational approximations are overkill here; this
/// series/continued-fraction pair is exact to ~1e-15, well past f32).
pub fn erf(x: f64) -> f64 {
    if x.abs() < 2.5 {
        // Maclaurin series: converges fast for |x| < 2.5.
        let mut term = x;
        let mut sum = x;
        let x2 = x * x;
        let mut n = 0.0;
        loop {
            n += 1.0;
            term *= -x2 / n;
            let add = term / (2.0 * n + 1.0);
            sum += add;
            if add.abs() < 1e-17 * sum.abs() {
                break;
            }
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        // erfc continued fraction (Lentz), accurate for |x| >= 2.5.
        let ax = x.abs();
        let mut f = ax;
        let mut c = ax;
        let mut d = 0.0;
        let tiny = 1e-300;
        for k in 1..200 {
            let a = k as f64 * 0.5;
            d = ax + a * d;
            d = if d.abs() < tiny { tiny } else { d };
            c = ax + a / c;
            c = if c.abs() < tiny { tiny } else { c };
            d = 1.0 / d;
            let delta = c * d;
            f *= delta;
            if (delta - 1.0).abs() < 1e-16 {
                break;
            }
        }
        let erfc = (-ax * ax).exp() / (f * std::f64::consts::PI.sqrt());
        (1.0 - erfc).copysign(x)
    }
}
