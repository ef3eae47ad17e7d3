#![no_main]
//! Every format, as the CLI sees a file: the format guessed from the content.
use std::sync::LazyLock;

use vit_hybrid::preprocess::PreprocessConfig;

static PRE: LazyLock<PreprocessConfig> = LazyLock::new(vit_hybrid_fuzz::tiny_preprocess);

libfuzzer_sys::fuzz_target!(|data: &[u8]| vit_hybrid_fuzz::image(data, None, &PRE));
