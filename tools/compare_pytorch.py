#!/usr/bin/env python3
"""Time transformers' ViTHybrid on the CPU (PyTorch, and the same model exported to ONNX and
run by ONNX Runtime) and `vit-hybrid bench` on the same full-size random model (f32 and f16 weights), in one run,
and print the ratios.

Run by hand (never by CI), from the repository root, with the fixtures' virtualenv:

    cargo build --release
    /work/pyenv/bin/python tools/compare_pytorch.py [--batch-size 1] [--iters 5] [--json]
        [--rounds 3]   # time all three in turn 3 times; print each round and the medians
        [--precision f32 --precision f16]   # vit-hybrid's weights; both unless given
    /work/pyenv/bin/python tools/compare_pytorch.py --skip-ours   # PyTorch and ONNX Runtime only

PyTorch gets as many threads as the machine has cores (torch.set_num_threads), which is
also what lavapipe uses; on a machine with a GPU, vit-hybrid runs there instead. ONNX
Runtime runs on its CPUExecutionProvider with the same number of intra-op threads and all
graph optimisations on. The model is exported with torch.onnx (TorchScript exporter by
default, `--exporter dynamo` for the torch.export one) to a temporary folder, with the batch
size fixed (opset 17; 18 with dynamo), and ONNX Runtime's logits are checked against
PyTorch's on the same input.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers.models.deprecated.vit_hybrid import ViTHybridConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_fixtures import construct  # noqa: E402  (the deprecated model needs its init patch)

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "tests/data/vit-hybrid-base-bit-384.config.json"
# opset asked of each exporter: 17 for the TorchScript one; the dynamo one writes 18 natively
# and cannot convert this graph down to 17 (no Pad adapter)
OPSET = {"torchscript": 17, "dynamo": 18}
# float32 end to end; the two runtimes sum in different orders, so allow some slack
LOGITS_TOLERANCE = 1e-3


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def stats(first: float, runs: list[float], batch: int) -> dict:
    med = statistics.median(runs)
    return {
        "first_s": first,
        "median_s": med,
        "min_s": min(runs),
        "max_s": max(runs),
        "median_s_per_image": med / batch,
    }


class Logits(torch.nn.Module):
    """pixel_values -> logits, so the exporter sees a plain tensor output."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values).logits


def time_pytorch(model: torch.nn.Module, pixels: torch.Tensor, iters: int, threads: int):
    torch.set_num_threads(threads)
    with torch.inference_mode():
        t = time.perf_counter()
        logits = model(pixel_values=pixels).logits
        first = time.perf_counter() - t
        runs = []
        for _ in range(iters):
            t = time.perf_counter()
            model(pixel_values=pixels)
            runs.append(time.perf_counter() - t)
    return stats(first, runs, pixels.shape[0]), logits.numpy()


def export_onnx(model: torch.nn.Module, pixels: torch.Tensor, path: Path, exporter: str) -> float:
    t = time.perf_counter()
    with torch.no_grad():
        torch.onnx.export(
            Logits(model).eval(),
            (pixels,),
            str(path),
            input_names=["pixel_values"],
            output_names=["logits"],
            opset_version=OPSET[exporter],
            do_constant_folding=True,
            dynamo=(exporter == "dynamo"),
        )
    return time.perf_counter() - t


def onnx_opset(path: Path) -> int:
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    return next(o.version for o in m.opset_import if o.domain in ("", "ai.onnx"))


def time_onnxruntime(path: Path, pixels: np.ndarray, iters: int, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    t = time.perf_counter()
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    session_s = time.perf_counter() - t
    feed = {sess.get_inputs()[0].name: pixels}
    t = time.perf_counter()
    (logits,) = sess.run(None, feed)
    first = time.perf_counter() - t
    runs = []
    for _ in range(iters):
        t = time.perf_counter()
        sess.run(None, feed)
        runs.append(time.perf_counter() - t)
    out = stats(first, runs, pixels.shape[0])
    out["session_s"] = session_s
    out["providers"] = sess.get_providers()
    return out, logits


EXE = ROOT / "target/release/vit-hybrid"


def round_figures(pt: dict, ort_t: dict, ours: dict) -> dict:
    """One round's timings and the ratios between them (seconds per image)."""
    pt_img = pt["median_s_per_image"]
    ort_img = ort_t["median_s_per_image"]
    ratios = {"onnxruntime_over_pytorch": ort_img / pt_img}
    for precision, o in ours.items():
        ratios[f"vit_hybrid_{precision}_over_pytorch"] = o["median_s_per_image"] / pt_img
        ratios[f"vit_hybrid_{precision}_over_onnxruntime"] = o["median_s_per_image"] / ort_img
    return {"pytorch": dict(pt), "onnxruntime": dict(ort_t), "vit_hybrid": ours,
            "ratios": ratios}


def time_ours(batch: int, iters: int, precision: str) -> dict:
    exe = EXE
    out = subprocess.run(
        [str(exe), "bench", "--random-config", str(CONFIG), "--batch-size", str(batch),
         "--iters", str(iters), "--precision", precision, "--json"],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout)


def main() -> None:
    import onnxruntime as ort

    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--exporter", choices=["torchscript", "dynamo"], default="torchscript",
                    help="torch.onnx exporter (default: torchscript, i.e. dynamo=False)")
    ap.add_argument("--skip-ours", action="store_true",
                    help="time only PyTorch and ONNX Runtime (no vit-hybrid binary needed)")
    ap.add_argument("--precision", action="append", choices=["f32", "f16"],
                    help="vit-hybrid's linear weights, repeatable (default: f32 and f16)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="time all three this many times in turn; the figures are the medians "
                         "over rounds, each round's ratios compare runs made minutes apart")
    ap.add_argument("--json", action="store_true",
                    help="print one JSON object with all figures (progress goes to stderr)")
    args = ap.parse_args()
    b = args.batch_size
    if args.rounds < 1 or args.iters < 1:
        sys.exit("--rounds and --iters take a positive count")
    if not args.skip_ours and not EXE.exists():
        sys.exit("build it first: cargo build --release (or pass --skip-ours)")

    machine = {
        "processor": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "threads": args.threads,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "onnxruntime": ort.__version__,
    }
    if not args.json:
        print(f"machine: {machine['processor']}, {machine['cores']} cores, "
              f"torch {torch.__version__}, transformers {transformers.__version__}, "
              f"onnxruntime {ort.__version__}", flush=True)

    torch.manual_seed(0)
    config = ViTHybridConfig.from_json_file(str(CONFIG))
    model = construct(config).eval()
    pixels = torch.rand(b, 3, config.image_size, config.image_size) * 2 - 1

    precisions = [] if args.skip_ours else (args.precision or ["f32", "f16"])
    rounds = []
    with tempfile.TemporaryDirectory(prefix="vit-hybrid-onnx-") as tmp:
        path = Path(tmp) / "vit-hybrid-base-bit-384.onnx"
        log(f"exporting to ONNX ({args.exporter}, opset {OPSET[args.exporter]}) ...")
        export_s = export_onnx(model, pixels, path, args.exporter)
        opset = onnx_opset(path)
        size = sum(f.stat().st_size for f in Path(tmp).iterdir())  # + external data, if any
        # Each round times all three back to back, so a round's ratios compare runs made in
        # the same minutes of a shared host whose speed drifts; the headline is their median.
        for r in range(args.rounds):
            log(f"round {r + 1} of {args.rounds}: timing PyTorch ...")
            pt, pt_logits = time_pytorch(model, pixels, args.iters, args.threads)
            log(f"round {r + 1} of {args.rounds}: timing ONNX Runtime ...")
            ort_t, ort_logits = time_onnxruntime(path, pixels.numpy(), args.iters, args.threads)
            ours = {}
            for precision in precisions:
                log(f"round {r + 1} of {args.rounds}: timing vit-hybrid bench "
                    f"--precision {precision} ...")
                ours[precision] = time_ours(b, args.iters, precision)
            rounds.append(round_figures(pt, ort_t, ours))
    diff = float(np.max(np.abs(ort_logits.astype(np.float64) - pt_logits.astype(np.float64))))
    ort_t.update({
        "exporter": args.exporter,
        "opset": opset,
        "export_s": export_s,
        "onnx_bytes": size,
        "logits_max_abs_diff_vs_pytorch": diff,
        "logits_max_abs": float(np.max(np.abs(pt_logits))),
        "logits_match": diff <= LOGITS_TOLERANCE,
        "argmax_match": bool((ort_logits.argmax(-1) == pt_logits.argmax(-1)).all()),
    })
    ratios = {k: statistics.median(r["ratios"][k] for r in rounds) for k in rounds[0]["ratios"]}
    pt_img = statistics.median(r["pytorch"]["median_s_per_image"] for r in rounds)
    ort_img = statistics.median(r["onnxruntime"]["median_s_per_image"] for r in rounds)
    ours = {}
    for p in precisions:
        med = statistics.median(r["vit_hybrid"][p]["median_s_per_image"] for r in rounds)
        ours[p] = {**rounds[-1]["vit_hybrid"][p], "median_s_per_image": med,
                   "gflops_per_s": rounds[-1]["vit_hybrid"][p]["gflop_per_image"] / med}

    if args.json:
        print(json.dumps({
            "machine": machine,
            "batch_size": b,
            "iters": args.iters,
            "rounds": rounds,
            "pytorch": pt,
            "onnxruntime": ort_t,
            "vit_hybrid": ours or None,
            "ratios": ratios,
        }, indent=2))
    else:
        if args.rounds > 1:
            for i, r in enumerate(rounds):
                line = (f"round {i + 1}: PyTorch {r['pytorch']['median_s_per_image']:.3f} s, "
                        f"ONNX Runtime {r['onnxruntime']['median_s_per_image']:.3f} s")
                for p, o in r["vit_hybrid"].items():
                    line += (f", vit-hybrid {p} {o['median_s_per_image']:.3f} s "
                             f"({r['ratios'][f'vit_hybrid_{p}_over_pytorch']:.2f}x)")
                print(line)
        of = (f"median of {args.iters}" if args.rounds == 1
              else f"median over {args.rounds} rounds of {args.iters} runs")
        print(f"PyTorch (CPU, {args.threads} threads): {pt_img:.3f} s/image "
              f"({of}, batch {b}; first run {pt['first_s']:.2f} s)")
        print(f"ONNX Runtime (CPUExecutionProvider, {args.threads} intra-op threads, "
              f"opt all): {ort_img:.3f} s/image ({of}, batch {b}; "
              f"first run {ort_t['first_s']:.2f} s, session {ort_t['session_s']:.2f} s, "
              f"export {export_s:.1f} s, opset {opset}, {size / 1e6:.0f} MB)")
        print(f"ONNX Runtime logits vs PyTorch: max abs diff {diff:.2e} "
              f"(max |logit| {ort_t['logits_max_abs']:.2f}; "
              f"argmax {'matches' if ort_t['argmax_match'] else 'DIFFERS'})")
        for precision, o in ours.items():
            print(f"vit-hybrid {precision} ({o['adapter']}): {o['median_s_per_image']:.3f} "
                  f"s/image ({of}, batch {b}; cold start "
                  f"{o['cold_start_s']:.2f} s, {o['gflops_per_s']:.1f} GFLOP/s)")
        # with several rounds, each ratio is the median of the rounds' ratios
        for precision in ours:
            print(f"ratio vit-hybrid {precision} / PyTorch: "
                  f"{ratios[f'vit_hybrid_{precision}_over_pytorch']:.2f}x")
            print(f"ratio vit-hybrid {precision} / ONNX Runtime: "
                  f"{ratios[f'vit_hybrid_{precision}_over_onnxruntime']:.2f}x")
        print(f"ratio ONNX Runtime / PyTorch: {ratios['onnxruntime_over_pytorch']:.2f}x")

    if not ort_t["logits_match"]:
        sys.exit(f"ONNX Runtime's logits differ from PyTorch's by {diff:.3e} "
                 f"(> {LOGITS_TOLERANCE}): the export is wrong, its timing means nothing")


if __name__ == "__main__":
    main()
