//! vit-hybrid: the hybrid Vision Transformer (BiT ResNet stem + ViT encoder) on any GPU
//! through wgpu, every layer a WGSL compute shader.
//!
//! The same code builds for the browser (wasm32 + WebGPU, see `web/`): there the async API
//! (`Gpu::from_adapter`, `Model::from_bytes`, `Model::classify_async`...) is the only one, since
//! the page's thread may never block on the GPU. Natively the blocking methods wrap it with
//! `pollster`.

#[cfg(not(target_arch = "wasm32"))]
pub mod bench;
pub mod config;
pub mod decode;
pub mod gpu;
#[cfg(not(target_arch = "wasm32"))]
pub mod hub;
pub mod image_integrity;
pub mod input;
#[cfg(not(target_arch = "wasm32"))]
pub mod jpeg;
pub mod model;
pub mod npy;
pub mod ops;
pub mod preprocess;
pub mod profile;
pub mod shader_template;

pub use gpu::{Gpu, GpuOptions};
pub use model::{Classification, Model, Prediction};
