//! The one GPU context: instance, adapter, device, queue and the compiled-pipeline cache.
//!
//! Getting a device is kept apart from using it so that a desktop app (or a test) can hand in
//! the `wgpu::Device`/`Queue` it already has and share them with the classifier.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, anyhow, bail};

use crate::ops::Kernel;

/// How to pick the adapter.
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    /// Case-insensitive substring of the adapter name, or its index in `list_adapters()`.
    pub adapter: Option<String>,
    /// Restrict to these backends (`None`: every backend wgpu was built with, or `WGPU_BACKEND`).
    pub backends: Option<wgpu::Backends>,
    /// Run the other adapter class's kernels (`None`: the adapter's own class).
    pub kernels: Option<KernelClass>,
}

/// Which family of kernels the model runs. Each op has variants shaped for how CPU adapters
/// run a shader (storage textures, 8-lane workgroups, no workgroup memory: the README's
/// Performance section says why) and for GPUs (buffers, workgroup tiles). The adapter's device type picks one; forcing the other runs and profiles
/// the other family on the same adapter, which is how the GPU kernels are checked end to end
/// on a machine without a GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelClass {
    Cpu,
    Gpu,
}

impl KernelClass {
    /// The class an adapter runs by default: CPU kernels on CPU adapters (lavapipe, SwiftShader,
    /// WARP), GPU kernels everywhere else.
    pub fn of(info: &wgpu::AdapterInfo) -> Self {
        if info.device_type == wgpu::DeviceType::Cpu {
            KernelClass::Cpu
        } else {
            KernelClass::Gpu
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            KernelClass::Cpu => "cpu",
            KernelClass::Gpu => "gpu",
        }
    }
}

impl std::str::FromStr for KernelClass {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "cpu" => Ok(KernelClass::Cpu),
            "gpu" => Ok(KernelClass::Gpu),
            _ => bail!("kernel class {s:?}: expected \"cpu\" or \"gpu\""),
        }
    }
}

/// A pipeline: kernel, entry point, and its override constants (name, value bits).
pub(crate) type PipelineKey = (&'static str, &'static str, Vec<(&'static str, u64)>);

/// What tells two pipelines apart (the pipeline cache's key, and a dry run's).
pub(crate) fn pipeline_key(
    kernel: &Kernel,
    entry: &'static str,
    constants: &[(&'static str, f64)],
) -> PipelineKey {
    (
        kernel.name,
        entry,
        constants.iter().map(|&(n, v)| (n, v.to_bits())).collect(),
    )
}

/// Device, queue and the pipelines compiled on them.
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    /// The kernels the ops pick (the adapter's class unless forced).
    kernels: KernelClass,
    /// A binding limit below the device's, to plan as a smaller adapter would.
    binding_cap: Option<u64>,
    pipelines: Mutex<HashMap<PipelineKey, Arc<wgpu::ComputePipeline>>>,
    /// One module per kernel: wgpu parses and validates a module's whole source (300 KB for
    /// the written-out products), which took a third of the pipelines' cold start when every
    /// pipeline made its own.
    modules: Mutex<HashMap<&'static str, Arc<wgpu::ShaderModule>>>,
}

/// Every adapter wgpu can see, in the order `GpuOptions::adapter` indexes them.
#[cfg(not(target_arch = "wasm32"))]
/// Without a choice (or `WGPU_BACKEND`), the primary backends (Vulkan, Metal, DX12) come first
/// and GL is only probed when they offer nothing: its probing is slow and noisy.
pub fn list_adapters(backends: Option<wgpu::Backends>) -> Vec<wgpu::Adapter> {
    let chosen = backends.or_else(wgpu::Backends::from_env);
    let enumerate =
        |b: wgpu::Backends| pollster::block_on(new_instance(Some(b)).enumerate_adapters(b));
    match chosen {
        Some(b) => enumerate(b),
        None => {
            let primary = enumerate(wgpu::Backends::PRIMARY);
            if primary.is_empty() {
                enumerate(wgpu::Backends::SECONDARY)
            } else {
                primary
            }
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn new_instance(backends: Option<wgpu::Backends>) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    if let Some(b) = backends {
        desc.backends = b;
    }
    wgpu::Instance::new(desc)
}

#[cfg(not(target_arch = "wasm32"))]
fn pick_adapter(opts: &GpuOptions) -> Result<wgpu::Adapter> {
    let adapters = list_adapters(opts.backends);
    if adapters.is_empty() {
        bail!(
            "no GPU adapter found (wgpu saw no Vulkan, Metal, DX12 or GL device); on Linux without a \
             GPU install Mesa's software Vulkan driver (`apt-get install mesa-vulkan-drivers`)"
        );
    }
    let names: Vec<String> = adapters
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let info = a.get_info();
            format!("{i}: {} ({:?})", info.name, info.backend)
        })
        .collect();
    match &opts.adapter {
        None => {
            // Prefer real GPUs over CPU emulation, then the order wgpu reports.
            let rank = |a: &wgpu::Adapter| match a.get_info().device_type {
                wgpu::DeviceType::DiscreteGpu => 0,
                wgpu::DeviceType::IntegratedGpu => 1,
                wgpu::DeviceType::VirtualGpu => 2,
                wgpu::DeviceType::Other => 3,
                wgpu::DeviceType::Cpu => 4,
            };
            let best = adapters.iter().map(rank).min().unwrap_or(0);
            Ok(adapters
                .into_iter()
                .find(|a| rank(a) == best)
                .expect("non-empty"))
        }
        Some(sel) => {
            if let Ok(i) = sel.parse::<usize>() {
                let n = adapters.len();
                return adapters.into_iter().nth(i).ok_or_else(|| {
                    anyhow!(
                        "adapter index {i} out of range: {n} adapters ({})",
                        names.join(", ")
                    )
                });
            }
            let needle = sel.to_lowercase();
            adapters
                .into_iter()
                .find(|a| a.get_info().name.to_lowercase().contains(&needle))
                .ok_or_else(|| {
                    anyhow!(
                        "no adapter name contains {sel:?}; available: {}",
                        names.join(", ")
                    )
                })
        }
    }
}

impl Gpu {
    /// Picks an adapter and opens a device on it with the adapter's own limits, so that large
    /// activations fit where the adapter allows it.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new(opts: &GpuOptions) -> Result<Self> {
        let gpu = pollster::block_on(Self::from_adapter(pick_adapter(opts)?))?;
        Ok(match opts.kernels {
            Some(class) => gpu.with_kernels(class),
            None => gpu,
        })
    }

    /// The browser's WebGPU adapter (the high-performance one where there is a choice), opened
    /// as [`Gpu::from_adapter`] does.
    #[cfg(target_arch = "wasm32")]
    pub async fn new_browser() -> Result<Self> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends: wgpu::Backends::BROWSER_WEBGPU,
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        });
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|e| {
                anyhow!(
                    "this browser offers no WebGPU adapter ({e}); WebGPU needs Chrome or Edge \
                     113+, Safari 26 or Firefox 141+ (Windows), in a secure context (https or \
                     localhost), and a GPU or software adapter that is not blocklisted"
                )
            })?;
        Self::from_adapter(adapter).await
    }

    /// Opens a device on `adapter` with the adapter's own limits (wgpu's defaults are far
    /// smaller: 128 MiB bindings) and the optional features the kernels use.
    pub async fn from_adapter(adapter: wgpu::Adapter) -> Result<Self> {
        #[cfg_attr(not(target_arch = "wasm32"), allow(unused_mut))]
        let mut info = adapter.get_info();
        // WebGPU does not name its adapter to wgpu; errors still need something to say.
        #[cfg(target_arch = "wasm32")]
        if info.name.is_empty() {
            info.name = "the browser's WebGPU adapter".into();
        }
        let limits = adapter.limits();
        // Timestamps make `profile` exact, SHADER_F16 lets f16 linears load their weights
        // natively and SUBGROUP lets the CPU adapters' products share x rows across lanes,
        // where the adapter has them; nothing else is needed. Browsers want `enable
        // subgroups;` in such shaders, which naga 30 does not parse, so the web build goes
        // without.
        let subgroup = if cfg!(target_arch = "wasm32") {
            wgpu::Features::empty()
        } else {
            wgpu::Features::SUBGROUP
        };
        let features = adapter.features()
            & (wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::SHADER_F16 | subgroup);
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("vit-hybrid"),
                required_features: features,
                required_limits: limits,
                experimental_features: wgpu::ExperimentalFeatures::disabled(),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .with_context(|| format!("opening a device on adapter {:?}", info.name))?;
        Ok(Self::from_device(device, queue, info))
    }

    /// Shares a device someone else opened (a desktop app's, say).
    pub fn from_device(device: wgpu::Device, queue: wgpu::Queue, info: wgpu::AdapterInfo) -> Self {
        Self {
            device,
            queue,
            kernels: KernelClass::of(&info),
            info,
            binding_cap: None,
            pipelines: Mutex::new(HashMap::new()),
            modules: Mutex::new(HashMap::new()),
        }
    }

    pub fn limits(&self) -> wgpu::Limits {
        self.device.limits()
    }

    /// The family of kernels the ops run here.
    pub fn kernels(&self) -> KernelClass {
        self.kernels
    }

    /// Whether the ops run the kernels shaped for CPU adapters.
    pub fn cpu_kernels(&self) -> bool {
        self.kernels == KernelClass::Cpu
    }

    /// Runs `class`'s kernels whatever the adapter is.
    pub fn with_kernels(mut self, class: KernelClass) -> Self {
        self.kernels = class;
        self
    }

    /// The largest buffer one binding may cover on this device.
    pub fn max_binding_bytes(&self) -> u64 {
        let l = self.device.limits();
        let device = l.max_storage_buffer_binding_size.min(l.max_buffer_size);
        self.binding_cap.map_or(device, |cap| cap.min(device))
    }

    /// Plans batches as if one binding could hold at most `bytes` (shows and tests how a
    /// smaller adapter splits a batch).
    pub fn with_binding_cap(mut self, bytes: u64) -> Self {
        self.binding_cap = Some(bytes);
        self
    }

    /// The pipeline for one entry point of a kernel, compiled once per device.
    pub fn pipeline(&self, kernel: &Kernel, entry: &'static str) -> Arc<wgpu::ComputePipeline> {
        self.pipeline_with(kernel, entry, &[])
    }

    /// [`Gpu::pipeline`] with the shader's `override` constants set (the rest keep their
    /// defaults), compiled once per device and set of values.
    pub fn pipeline_with(
        &self,
        kernel: &Kernel,
        entry: &'static str,
        constants: &[(&'static str, f64)],
    ) -> Arc<wgpu::ComputePipeline> {
        let key = pipeline_key(kernel, entry, constants);
        if let Some(p) = self.cached_pipeline(&key) {
            return p;
        }
        let module = self.module(kernel);
        let pipeline = Arc::new(self.device.create_compute_pipeline(
            &wgpu::ComputePipelineDescriptor {
                label: Some(kernel.name),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    ..Default::default()
                },
                cache: None,
            },
        ));
        // Not held while compiling, so that `precompile`'s threads compile side by side.
        let mut cache = self.pipelines.lock().unwrap_or_else(|e| e.into_inner());
        cache.entry(key).or_insert(pipeline).clone()
    }

    fn cached_pipeline(&self, key: &PipelineKey) -> Option<Arc<wgpu::ComputePipeline>> {
        let cache = self.pipelines.lock().unwrap_or_else(|e| e.into_inner());
        cache.get(key).cloned()
    }

    /// Compiles `specs` (a [`crate::ops::Program::collecting`] run's pipelines) on up to as
    /// many threads as the machine has cores; the driver's compiles dominate a cold start
    /// (on lavapipe, its shader passes over the written-out products: 60-150 ms each).
    pub fn precompile(&self, specs: &[crate::ops::PipelineSpec]) {
        #[cfg(not(target_arch = "wasm32"))]
        let threads = cores();
        #[cfg(not(target_arch = "wasm32"))]
        if threads > 1 && specs.len() > 1 {
            let next = std::sync::atomic::AtomicUsize::new(0);
            std::thread::scope(|s| {
                for _ in 0..threads.min(specs.len()) {
                    s.spawn(|| {
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some((kernel, entry, constants)) = specs.get(i) else {
                                break;
                            };
                            self.pipeline_with(kernel, entry, constants);
                        }
                    });
                }
            });
            return;
        }
        for (kernel, entry, constants) in specs {
            self.pipeline_with(kernel, entry, constants);
        }
    }

    /// The shader module of `kernel`, created once per device.
    fn module(&self, kernel: &Kernel) -> Arc<wgpu::ShaderModule> {
        let mut modules = self.modules.lock().unwrap_or_else(|e| e.into_inner());
        modules
            .entry(kernel.name)
            .or_insert_with(|| {
                Arc::new(
                    self.device
                        .create_shader_module(wgpu::ShaderModuleDescriptor {
                            label: Some(kernel.name),
                            source: wgpu::ShaderSource::Wgsl(kernel.source.into()),
                        }),
                )
            })
            .clone()
    }

    /// A storage buffer holding `data`.
    pub fn upload(&self, label: &str, data: &[f32]) -> wgpu::Buffer {
        use wgpu::util::DeviceExt;
        // Zero-sized buffers cannot be bound; a one-element buffer stands in.
        let bytes: &[u8] = if data.is_empty() {
            &[0; 4]
        } else {
            bytemuck::cast_slice(data)
        };
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytes,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_DST
                    | wgpu::BufferUsages::COPY_SRC,
            })
    }

    /// An uninitialised storage buffer of `len` f32 values.
    pub fn storage(&self, label: &str, len: usize) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (len.max(1) * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        })
    }

    /// Copies `len` f32 values from the start of `buffer` back to the host (blocking).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read(&self, buffer: &wgpu::Buffer, len: usize) -> Result<Vec<f32>> {
        pollster::block_on(self.read_async(buffer, len))
    }

    /// Copies `len` f32 values from the start of `buffer` back to the host.
    pub async fn read_async(&self, buffer: &wgpu::Buffer, len: usize) -> Result<Vec<f32>> {
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: (len.max(1) * 4) as u64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, (len.max(1) * 4) as u64);
        self.queue.submit([encoder.finish()]);
        self.map_read_async(&staging, len).await
    }

    /// Waits for the queue and maps a MAP_READ buffer (blocking).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn map_read(&self, staging: &wgpu::Buffer, len: usize) -> Result<Vec<f32>> {
        pollster::block_on(self.map_read_async(staging, len))
    }

    /// Maps a MAP_READ buffer once the work before it is done and copies out `len` f32
    /// values. Natively the device is polled (blocking this thread, which is what a caller
    /// that awaits here wants); in the browser the page's event loop maps it meanwhile.
    pub async fn map_read_async(&self, staging: &wgpu::Buffer, len: usize) -> Result<Vec<f32>> {
        let slice = staging.slice(..);
        let (tx, rx) = futures_channel::oneshot::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.poll_native()?;
        rx.await
            .context("the GPU readback callback never ran (device lost?)")?
            .context("mapping the result buffer")?;
        let out = {
            let view = slice
                .get_mapped_range()
                .map_err(|e| anyhow!("reading the mapped result buffer: {e:?}"))?;
            bytemuck::cast_slice::<u8, f32>(&view)[..len].to_vec()
        };
        staging.unmap();
        Ok(out)
    }

    /// Resolves once the GPU has finished the work submitted so far. Awaiting this between
    /// submissions lets other users of the queue (a window's frames) get in between them.
    pub async fn work_done(&self) -> Result<()> {
        #[cfg_attr(target_arch = "wasm32", allow(unused_mut))]
        let (tx, mut rx) = futures_channel::oneshot::channel();
        self.queue.on_submitted_work_done(move || {
            let _ = tx.send(());
        });
        // Natively, poll without blocking: a blocking wait would keep the device busy in
        // `poll` while another thread (a window) wants to submit its frame in between.
        #[cfg(not(target_arch = "wasm32"))]
        {
            let mut spins = 0u32;
            loop {
                self.device
                    .poll(wgpu::PollType::Poll)
                    .context("waiting for the GPU")?;
                let done = rx
                    .try_recv()
                    .context("the GPU's work-done callback was dropped (device lost?)")?;
                if done.is_some() {
                    return Ok(());
                }
                spins += 1;
                if spins < 64 {
                    std::thread::yield_now();
                } else {
                    std::thread::sleep(std::time::Duration::from_micros(250));
                }
            }
        }
        #[cfg(target_arch = "wasm32")]
        rx.await
            .context("the GPU's work-done callback never ran (device lost?)")
    }

    /// Natively, callbacks run inside `poll`: wait for the queue here. The browser runs them
    /// from its event loop, so there is nothing to do (and nothing may block).
    fn poll_native(&self) -> Result<()> {
        #[cfg(not(target_arch = "wasm32"))]
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .context("waiting for the GPU")?;
        Ok(())
    }

    /// Runs `f` inside validation and out-of-memory error scopes and turns a captured error
    /// into this call's error (otherwise wgpu reports it to the uncaptured-error handler,
    /// which panics natively and aborts the module in the browser).
    pub async fn checked<T>(&self, what: &str, f: impl AsyncFnOnce() -> Result<T>) -> Result<T> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let result = f().await;
        let invalid = validation.pop().await;
        let out_of_memory = oom.pop().await;
        if let Some(e) = out_of_memory {
            bail!(
                "{what}: the GPU ran out of memory on adapter {:?} ({e})",
                self.info.name
            );
        }
        if let Some(e) = invalid {
            bail!(
                "{what}: the GPU refused the work on adapter {:?} (a limit of this adapter, or a \
                 bug): {e}",
                self.info.name
            );
        }
        result
    }

    /// One line naming the adapter, for `info` and benchmarks.
    pub fn describe(&self) -> String {
        let i = &self.info;
        format!(
            "{} ({:?}, {:?}, driver {} {}){}",
            i.name,
            i.backend,
            i.device_type,
            i.driver,
            i.driver_info,
            if self.kernels == KernelClass::of(i) {
                String::new()
            } else {
                format!(", running {} kernels", self.kernels.name())
            }
        ) + &lavapipe_threads(i).map_or(String::new(), |n| format!(", {n} threads"))
    }
}

/// The CPU's cores as the OS offers them to this process (1 where it cannot tell).
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Mesa's cap on lavapipe's threads (LP_MAX_THREADS): it ignores a larger LP_NUM_THREADS.
const LAVAPIPE_MAX_THREADS: usize = 16;

/// lavapipe (Mesa's CPU Vulkan driver) starts one thread per core and splits every dispatch
/// into one contiguous range of workgroups per thread, so a core that is busy with anything
/// else (another process, a neighbour on a shared host) holds up every dispatch until its
/// half is done. With four threads per core the kernel's scheduler moves the remaining
/// quarters to whichever core is free: on 2 cores the full-size model ran 5-15 % faster
/// alone and 12-27 % faster beside a busy loop (README, Performance). This sets
/// LP_NUM_THREADS to that (within Mesa's cap) unless it is set already; GPUs never read it.
/// lavapipe reads it once, when wgpu first opens it, so call this before any [`Gpu`].
///
/// # Safety
/// It changes the process environment: call it while no other thread exists (first thing
/// in `main`), as [`std::env::set_var`] requires.
pub unsafe fn spread_lavapipe_threads() {
    if std::env::var_os("LP_NUM_THREADS").is_none() {
        let threads = (4 * cores()).min(LAVAPIPE_MAX_THREADS);
        // SAFETY: the caller guarantees that no other thread exists.
        unsafe { std::env::set_var("LP_NUM_THREADS", threads.to_string()) };
    }
}

/// How many threads lavapipe runs dispatches on (it reads LP_NUM_THREADS once, at start,
/// else takes one per core; [`spread_lavapipe_threads`] raises the default): a benchmark's
/// figures depend on it. None for other drivers.
fn lavapipe_threads(info: &wgpu::AdapterInfo) -> Option<usize> {
    // In a browser the driver runs in the browser's GPU process, whose settings we cannot see.
    if cfg!(target_arch = "wasm32") || !info.driver.to_lowercase().contains("llvmpipe") {
        return None;
    }
    let set = std::env::var("LP_NUM_THREADS").ok();
    Some(
        set.and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(cores)
            .clamp(1, LAVAPIPE_MAX_THREADS),
    )
}
