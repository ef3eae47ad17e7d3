#!/usr/bin/env bash
# The browser build's tests, in headless Chromium (its WebGPU runs on SwiftShader where
# there is no GPU); scripts/setup_web.sh installs what they need:
#   1. the library compiled to wasm32 (web/tests/browser.rs) under wasm-bindgen-test-runner:
#      fixture logits against float64, PNG preprocessing bit for bit, broken image and model;
#   2. the page built by scripts/build_web.sh, driven through chromedriver
#      (web/tests/page.rs): models and images over loopback HTTP through window.vitHybrid,
#      then the page's own controls, with a screenshot in target/web-page.png.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/build_web.sh

# wasm-bindgen-test-runner reads web/webdriver.json (Chromium's binary and flags: WebGPU
# needs --enable-unsafe-webgpu on Linux).
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
export CHROMEDRIVER="${CHROMEDRIVER:-$(command -v chromedriver)}"
export WASM_BINDGEN_TEST_TIMEOUT=900
cargo test --locked --target wasm32-unknown-unknown --profile wasm-release -p vit-hybrid-web --test browser

cargo test --locked --release -p vit-hybrid-web --test page -- --nocapture
