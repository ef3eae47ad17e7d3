#!/usr/bin/env python3
"""Time transformers' ViTHybrid on the CPU and `vit-hybrid bench` on the same full-size random
model, in one run, and print the ratio.

Run by hand (never by CI), from the repository root, with the fixtures' virtualenv:

    cargo build --release
    /work/pyenv/bin/python tools/compare_pytorch.py [--batch-size 1] [--iters 5]

PyTorch gets as many threads as the machine has cores (torch.set_num_threads), which is
also what lavapipe uses; on a machine with a GPU, vit-hybrid runs there instead.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import transformers
from transformers.models.deprecated.vit_hybrid import ViTHybridConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_fixtures import construct  # noqa: E402  (the deprecated model needs its init patch)

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "tests/data/vit-hybrid-base-bit-384.config.json"


def time_pytorch(batch: int, iters: int, threads: int) -> dict:
    torch.set_num_threads(threads)
    config = ViTHybridConfig.from_json_file(str(CONFIG))
    model = construct(config).eval()
    pixels = torch.rand(batch, 3, config.image_size, config.image_size) * 2 - 1
    with torch.inference_mode():
        t = time.perf_counter()
        model(pixel_values=pixels)
        first = time.perf_counter() - t
        runs = []
        for _ in range(iters):
            t = time.perf_counter()
            model(pixel_values=pixels)
            runs.append(time.perf_counter() - t)
    return {"first_s": first, "median_s": statistics.median(runs), "min_s": min(runs), "max_s": max(runs)}


def time_ours(batch: int, iters: int) -> dict:
    exe = ROOT / "target/release/vit-hybrid"
    if not exe.exists():
        sys.exit("build it first: cargo build --release")
    out = subprocess.run(
        [str(exe), "bench", "--random-config", str(CONFIG), "--batch-size", str(batch),
         "--iters", str(iters), "--json"],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, transformers {transformers.__version__}")
    pt = time_pytorch(args.batch_size, args.iters, args.threads)
    ours = time_ours(args.batch_size, args.iters)
    b = args.batch_size
    pt_img = pt["median_s"] / b
    print(f"PyTorch (CPU, {args.threads} threads): {pt_img:.3f} s/image "
          f"(median of {args.iters}, batch {b}; first run {pt['first_s']:.2f} s)")
    print(f"vit-hybrid ({ours['adapter']}): {ours['median_s_per_image']:.3f} s/image "
          f"(median of {args.iters}, batch {b}; cold start {ours['cold_start_s']:.2f} s, "
          f"{ours['gflops_per_s']:.1f} GFLOP/s)")
    print(f"ratio vit-hybrid / PyTorch: {ours['median_s_per_image'] / pt_img:.2f}x")


if __name__ == "__main__":
    main()
