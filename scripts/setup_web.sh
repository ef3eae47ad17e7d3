#!/usr/bin/env bash
# What the browser build and its tests need, on a fresh Debian/Ubuntu machine (after
# scripts/setup.sh): the wasm32 target, wasm-bindgen-cli of exactly the wasm-bindgen version
# in Cargo.lock (the JS glue must match the crate), and Chromium with chromedriver for
# scripts/web_test.sh. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

if ! command -v cargo >/dev/null 2>&1; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi

if command -v apt-get >/dev/null 2>&1 && ! { command -v chromedriver >/dev/null && [ -x /usr/lib/chromium/chromium ]; }; then
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q --no-install-recommends chromium chromium-driver
fi

rustup target add wasm32-unknown-unknown

want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
have=$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }' || true)
if [ "$have" != "$want" ]; then
    # Without --locked: the CLI's own lockfile pins a crate version the registry lacks.
    cargo install wasm-bindgen-cli --version "$want"
fi
