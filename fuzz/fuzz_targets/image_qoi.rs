#![no_main]
//! The same entry point as the `image` target, with the fuzzer's time kept on one decoder.
use std::sync::LazyLock;

use vit_hybrid::preprocess::PreprocessConfig;

static PRE: LazyLock<PreprocessConfig> = LazyLock::new(vit_hybrid_fuzz::tiny_preprocess);

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vit_hybrid_fuzz::image(data, Some(image::ImageFormat::Qoi), &PRE)
});
