#!/usr/bin/env bash
# The desktop app on a virtual display: installs Xvfb and the libraries winit loads at run time
# (Debian/Ubuntu, if missing), then runs tests/gui.rs under xvfb-run with lavapipe. The tests
# start `vit-hybrid gui --model tests/fixtures/digits examples/images/digits/digit_3_a.png
# --screenshot FILE --exit-after-first-result` (the trained demo model on a held-out digit),
# require its printed labels to equal `vit-hybrid classify`'s on the same image and the
# screenshot not to be blank, and require a broken model to be shown and exit non-zero. Exits
# non-zero on any failure.
#
# Usage: scripts/gui_check.sh [SCREENSHOT.png]   (default target/gui-check.png, kept)
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

# Xvfb and xauth (for xvfb-run); Mesa's Vulkan (lavapipe); what winit dlopens for X11.
packages=(xvfb xauth mesa-vulkan-drivers libvulkan1 libx11-xcb1 libxcursor1 libxi6 libxrandr2
    libxkbcommon-x11-0)
if command -v apt-get >/dev/null 2>&1; then
    missing=()
    for p in "${packages[@]}"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        export DEBIAN_FRONTEND=noninteractive
        $SUDO apt-get update -q
        $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
fi
command -v xvfb-run >/dev/null 2>&1 || {
    echo "gui_check: xvfb-run not found (install Xvfb)" >&2
    exit 1
}

if ! command -v cargo >/dev/null 2>&1; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi

# winit tries Wayland first; without a runtime dir libwayland complains on stderr.
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
    XDG_RUNTIME_DIR="$(mktemp -d)"
    export XDG_RUNTIME_DIR
fi
export VIT_HYBRID_GUI_SCREENSHOT="${1:-target/gui-check.png}"

# Build outside the timeout (CI has usually built it already for `cargo test`).
cargo test --release --locked --test gui --no-run
timeout 600 xvfb-run -a -s "-screen 0 1280x800x24" \
    cargo test --release --locked --test gui -- --ignored --nocapture --test-threads=1
echo "gui_check: ok, screenshot in $VIT_HYBRID_GUI_SCREENSHOT"
