#!/usr/bin/env bash
# Builds the web page into target/web/ as static files: index.html, app.js, vit-hybrid.js
# (window.vitHybrid), the wasm-bindgen glue vit_hybrid_web.js and vit_hybrid_web_bg.wasm.
# Serve the folder with any static server, e.g. `python3 -m http.server -d target/web`.
# Needs the wasm32-unknown-unknown target and wasm-bindgen-cli of the version in Cargo.lock
# (scripts/setup_web.sh installs both); no network or bundler at build time.
set -euo pipefail
cd "$(dirname "$0")/.."

out=target/web
want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
have=$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }' || true)
if [ "$have" != "$want" ]; then
    echo "build_web.sh: need wasm-bindgen-cli $want (have '${have:-none}'): run scripts/setup_web.sh" >&2
    exit 1
fi

cargo build --locked --target wasm32-unknown-unknown --profile wasm-release -p vit-hybrid-web
rm -rf "$out"
mkdir -p "$out"
wasm-bindgen --target web --no-typescript --out-dir "$out" \
    target/wasm32-unknown-unknown/wasm-release/vit_hybrid_web.wasm
cp web/index.html web/app.js web/vit-hybrid.js "$out"/
ls -l "$out"
