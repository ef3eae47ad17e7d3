#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| vit_hybrid_fuzz::npy(data));
