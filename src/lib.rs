//! vit-hybrid: the hybrid Vision Transformer (BiT ResNet stem + ViT encoder) on any GPU
//! through wgpu, every layer a WGSL compute shader.

pub mod bench;
pub mod config;
pub mod gpu;
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
