#!/usr/bin/env bash
# Prepares a fresh Debian/Ubuntu machine: a C compiler and a Rust toolchain if none is
# installed, and a Vulkan driver. Machines without a GPU get Mesa's lavapipe (a CPU Vulkan driver); machines with a
# GPU driver already installed are left alone. Safe to run again.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

if command -v apt-get >/dev/null 2>&1 && ! dpkg -s mesa-vulkan-drivers >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q --no-install-recommends mesa-vulkan-drivers libvulkan1
fi

# A C compiler: Rust links with it, and libjpeg-turbo's decoder (mozjpeg-sys) and ring build
# their C sources with it.
if command -v apt-get >/dev/null 2>&1 && ! command -v cc >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q --no-install-recommends gcc libc6-dev
fi

if ! command -v cargo >/dev/null 2>&1; then
    if [ -f "$HOME/.cargo/env" ]; then
        # shellcheck disable=SC1091
        . "$HOME/.cargo/env"
    else
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
        # shellcheck disable=SC1091
        . "$HOME/.cargo/env"
    fi
fi
if command -v rustup >/dev/null 2>&1; then
    rustup component add rustfmt clippy >/dev/null 2>&1 || true
fi
