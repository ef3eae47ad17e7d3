//! vit-hybrid in the browser: the library on the page's WebGPU device, exported to JavaScript
//! with wasm-bindgen. `web/vit-hybrid.js` fetches the model files (with progress and
//! readable network errors) and wraps these exports as `window.vitHybrid`.
//!
//! One page holds one device and one model (state in thread-locals: wasm32 has one thread).
//! Everything that waits for the GPU is async, so the page stays live during a pass.

#[cfg(target_arch = "wasm32")]
mod exports;
