#![no_main]
use std::sync::LazyLock;

use vit_hybrid::config::ModelConfig;

static CONFIG: LazyLock<ModelConfig> = LazyLock::new(vit_hybrid_fuzz::tiny_config);

libfuzzer_sys::fuzz_target!(|data: &[u8]| vit_hybrid_fuzz::safetensors(data, &CONFIG));
