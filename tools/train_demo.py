#!/usr/bin/env python3
"""Train the demo model: a small ViTHybridForImageClassification on scikit-learn's 8x8 digits.

Run by hand (never by CI), from the repository root, inside the virtualenv made from
tools/requirements.txt:

    python tools/train_demo.py            # trains (a few CPU minutes), writes everything

It writes
  tests/fixtures/digits/config.json               as save_pretrained writes it
  tests/fixtures/digits/preprocessor_config.json  ViTHybridImageProcessor config
  tests/fixtures/digits/model.safetensors         float32 weights (save_pretrained)
  tests/fixtures/digits/heldout.safetensors       the held-out split: raw 8x8 digits, labels,
                                                  transformers' predictions and logits
  tests/fixtures/digits/examples.json             transformers' results on the example PNGs
  examples/images/digits/digit_<label>_a.png      one held-out digit per class, 8x8 gray
  examples/images/digits/LICENSE.md

Nothing is downloaded: the digits ship inside scikit-learn. Training is seeded and runs on
one thread with deterministic algorithms, so a rerun on the same versions writes the same
bytes.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import sklearn
import torch
from PIL import Image
from safetensors.torch import load_file
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import transformers
from transformers import BitConfig
from transformers.models.bit.modeling_bit import BitBackbone
from transformers.models.deprecated.vit_hybrid import ViTHybridConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_fixtures import build_processor, construct  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "digits"
EXAMPLES = ROOT / "examples" / "images" / "digits"

SEED = 2024
HELDOUT_FRACTION = 0.2
EPOCHS = 30
BATCH = 64
# Training images are shifted by up to this many pixels of the model's input (6 = one pixel
# of the 8x8 digit at 48), so the model does not learn each digit's exact placement.
MAX_SHIFT = 6
LR = 2e-3
WEIGHT_DECAY = 0.05

# 48 pixels: the backbone's stride of 16 leaves a 3x3 map, 9 tokens + CLS. Widths are the
# smallest that still reach high held-out accuracy, to keep model.safetensors under 1 MB.
BACKBONE = dict(
    layer_type="bottleneck",
    global_padding="same",
    embedding_dynamic_padding=True,
    depths=[1, 1, 1],
    hidden_sizes=[32, 64, 128, 256],
    embedding_size=16,
    num_groups=4,
    out_features=["stage3"],
)
VIT = dict(
    image_size=48,
    patch_size=1,
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=128,
)


def build_config() -> ViTHybridConfig:
    bb = BitConfig(**BACKBONE)
    # The grid and the projection's input channels come from backbone_featmap_shape, not
    # from image_size (see make_fixtures.build_config), so measure them.
    with torch.no_grad():
        s = VIT["image_size"]
        fm = BitBackbone(bb).eval()(torch.zeros(1, 3, s, s)).feature_maps[-1]
    id2label = {i: str(i) for i in range(10)}
    return ViTHybridConfig(
        backbone_config=bb,
        backbone_featmap_shape=[1, int(fm.shape[1]), int(fm.shape[2]), int(fm.shape[3])],
        hidden_act="gelu",
        layer_norm_eps=1e-12,
        qkv_bias=True,
        id2label=id2label,
        label2id={v: k for k, v in id2label.items()},
        **VIT,
    )


def to_images(x: np.ndarray) -> list[Image.Image]:
    """8x8 gray PIL images from uint8 arrays [N, 8, 8], as a user's PNG would open."""
    return [Image.fromarray(a, mode="L") for a in x]


def pixel_values(processor, images: list[Image.Image]) -> torch.Tensor:
    px = processor(images=images, return_tensors="np")["pixel_values"]
    assert px.dtype == np.float32, px.dtype
    return torch.from_numpy(px)


def write_safetensors(path: Path, tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    """Byte-deterministic safetensors writer: keys sorted, data in key order, header padded
    to 8 bytes (safetensors.save_file orders metadata keys at random)."""
    dtypes = {np.dtype("uint8"): "U8", np.dtype("int64"): "I64", np.dtype("float32"): "F32",
              np.dtype("float64"): "F64"}
    header: dict = {"__metadata__": dict(sorted(metadata.items()))}
    blobs = []
    offset = 0
    for k in sorted(tensors):
        a = np.ascontiguousarray(tensors[k])
        b = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[k] = {"dtype": dtypes[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little"))
        f.write(h)
        for b in blobs:
            f.write(b)
    back = load_file(path)
    for k, a in tensors.items():
        assert np.array_equal(back[k].numpy(), a), k


def shifted(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Each image moved by a random whole number of pixels; uncovered pixels are the
    background (gray 0, normalised to -1)."""
    s = x.shape[-1]
    padded = torch.nn.functional.pad(x, (MAX_SHIFT,) * 4, value=-1.0)
    offsets = torch.randint(0, 2 * MAX_SHIFT + 1, (len(x), 2), generator=g).tolist()
    return torch.stack([padded[i, :, dy : dy + s, dx : dx + s] for i, (dy, dx) in enumerate(offsets)])


def train(model, x: torch.Tensor, y: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor) -> None:
    g = torch.Generator().manual_seed(SEED)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    steps = EPOCHS * math.ceil(len(x) / BATCH)
    warmup = steps // 20
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps)))
    )
    t0 = time.time()
    for epoch in range(EPOCHS):
        model.train()
        order = torch.randperm(len(x), generator=g)
        total = 0.0
        for i in range(0, len(x), BATCH):
            idx = order[i : i + BATCH]
            logits = model(pixel_values=shifted(x[idx], g)).logits
            loss = torch.nn.functional.cross_entropy(logits, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        model.eval()
        with torch.no_grad():
            acc = (model(pixel_values=x_val).logits.argmax(1) == y_val).float().mean().item()
        print(f"  epoch {epoch + 1:2d}: loss {total / len(x):.4f}, held-out accuracy {acc:.4f} "
              f"({time.time() - t0:.0f} s)", flush=True)


@torch.no_grad()
def logits_of(model, px: torch.Tensor) -> torch.Tensor:
    return torch.cat([model(pixel_values=px[i : i + 128]).logits for i in range(0, len(px), 128)])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.parse_args()

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    print(f"transformers {transformers.__version__}, torch {torch.__version__}, "
          f"scikit-learn {sklearn.__version__}, numpy {np.__version__}")

    digits = load_digits()
    # 0..16 ink levels to 0..255 gray: 16 maps to 255.
    raw = np.round(digits.images * (255 / 16)).astype(np.uint8)
    labels = digits.target.astype(np.int64)
    train_idx, held_idx = train_test_split(
        np.arange(len(raw)), test_size=HELDOUT_FRACTION, random_state=SEED, stratify=labels
    )
    held_idx = np.sort(held_idx)
    train_idx = np.sort(train_idx)
    print(f"digits: {len(raw)} images, {len(train_idx)} train, {len(held_idx)} held out")

    config = build_config()
    processor = build_processor(config.image_size)
    x_train = pixel_values(processor, to_images(raw[train_idx]))
    x_held = pixel_values(processor, to_images(raw[held_idx]))
    y_train = torch.from_numpy(labels[train_idx])
    y_held = torch.from_numpy(labels[held_idx])

    model = construct(config)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: featmap {config.backbone_featmap_shape}, {n_params:,} parameters "
          f"({4 * n_params / 1e6:.2f} MB as float32)")
    train(model, x_train, y_train, x_held, y_held)
    model.eval()

    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        shutil.copyfile(Path(tmp) / "config.json", OUT / "config.json")
        shutil.copyfile(Path(tmp) / "model.safetensors", OUT / "model.safetensors")
        processor.save_pretrained(tmp)
        shutil.copyfile(Path(tmp) / "preprocessor_config.json", OUT / "preprocessor_config.json")

    # The recorded run is the saved model reloaded, as a user of the folder would run it.
    saved = construct(config)
    saved.load_state_dict(load_file(OUT / "model.safetensors"))
    saved.eval()
    logits = logits_of(saved, x_held)
    logits64 = logits_of(saved.double(), x_held.double())
    saved.float()
    pred = logits.argmax(1)
    assert torch.equal(pred, logits64.argmax(1)), "float32 and float64 runs disagree on a prediction"
    correct = int((pred == y_held).sum())
    accuracy = correct / len(held_idx)
    top2 = logits.topk(2, dim=1).values
    margin = float((top2[:, 0] - top2[:, 1]).min())
    print(f"held out: {correct}/{len(held_idx)} correct, accuracy {accuracy:.4f}; "
          f"smallest top-1 margin {margin:.3e}; float32 vs float64 logits max |diff| "
          f"{(logits.double() - logits64).abs().max().item():.3e}")
    wrong = [(int(held_idx[i]), int(y_held[i]), int(pred[i])) for i in range(len(pred)) if pred[i] != y_held[i]]
    print(f"  misclassified (dataset index, label, predicted): {wrong}")

    write_safetensors(
        OUT / "heldout.safetensors",
        {
            "images": raw[held_idx],
            "labels": labels[held_idx],
            "dataset_index": held_idx.astype(np.int64),
            "predicted": pred.numpy().astype(np.int64),
            "logits": logits.numpy().astype(np.float32),
            "logits_f64": logits64.numpy().astype(np.float64),
        },
        {
            "generator": "tools/train_demo.py",
            "data": "sklearn.datasets.load_digits(), ink 0..16 scaled to gray 0..255 (round(v * 255 / 16))",
            "split": f"train_test_split(test_size={HELDOUT_FRACTION}, random_state={SEED}, stratify=labels), "
                     "indices sorted",
            "correct": str(correct),
            "accuracy": f"{accuracy:.6f}",
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "scikit-learn": sklearn.__version__,
            "note": "images: U8 [N, 8, 8] as 8x8 gray images for ViTHybridImageProcessor; predicted, "
                    "logits: the float32 model; logits_f64: the same model in float64",
        },
    )

    # One example PNG per class: the first held-out digit of that class, whatever the model
    # says about it. Their results are read back from the files, as a user would run them.
    EXAMPLES.mkdir(parents=True, exist_ok=True)
    for old in EXAMPLES.glob("*.png"):
        old.unlink()
    examples = []
    for digit in range(10):
        i = int(np.flatnonzero(labels[held_idx] == digit)[0])
        name = f"digit_{digit}_a.png"
        Image.fromarray(raw[held_idx[i]], mode="L").save(EXAMPLES / name, format="PNG")
        with Image.open(EXAMPLES / name) as im:
            px = pixel_values(processor, [im])
        assert torch.equal(px[0], x_held[i]), f"{name}: the PNG does not give the held-out pixels"
        lg = logits_of(saved, px)[0]
        probs = torch.softmax(lg.double(), 0)
        examples.append({
            "file": f"examples/images/digits/{name}",
            "label": digit,
            "heldout_index": i,
            "predicted": int(lg.argmax()),
            "probability": round(float(probs.max()), 6),
            "logits": [float(v) for v in lg],
        })
        print(f"  {name}: predicted {int(lg.argmax())} ({float(probs.max()):.2%})")
    (OUT / "examples.json").write_text(json.dumps(examples, indent=1) + "\n")
    (EXAMPLES / "LICENSE.md").write_text(
        "# Digits\n\n"
        "`digit_<label>_a.png`: 8x8 gray images of handwritten digits from the held-out split of\n"
        "`tools/train_demo.py`, taken from scikit-learn's bundled copy of the UCI \"Optical\n"
        "Recognition of Handwritten Digits\" data set (E. Alpaydin, C. Kaynak, 1998;\n"
        "`sklearn.datasets.load_digits`), ink levels 0..16 scaled to 0..255.\n\n"
        "License: the UCI Machine Learning Repository distributes the data set under CC BY 4.0\n"
        "(https://archive.ics.uci.edu/dataset/80); scikit-learn ships it under its BSD-3-Clause license.\n"
    )

    print("=== files ===")
    for p in sorted([*OUT.iterdir(), *EXAMPLES.iterdir()]):
        print(f"  {p.relative_to(ROOT)}  {p.stat().st_size:,} B")
    size = (OUT / "model.safetensors").stat().st_size
    assert size < 1_000_000, f"model.safetensors is {size:,} B, over the 1 MB budget"
    assert accuracy > 0.9, f"held-out accuracy {accuracy:.4f} is not above 0.9"
    return 0


if __name__ == "__main__":
    sys.exit(main())
