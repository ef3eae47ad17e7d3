#!/usr/bin/env python3
"""Generate the reference fixtures for the Rust ViT-Hybrid implementation.

Run by hand (never by CI), from the repository root, inside the virtualenv made
from tools/requirements.txt:

    python tools/make_fixtures.py            # writes everything
    python tools/make_fixtures.py --check-real-size   # also builds the full-size model
    python tools/make_fixtures.py --f32-backbone      # also store f32.stem / f32.stages.*

It writes
  examples/images/chelsea.png                       bundled photo (CC0, from scikit-image)
  tests/fixtures/<name>/config.json                 as save_pretrained writes it
  tests/fixtures/<name>/preprocessor_config.json    ViTHybridImageProcessor config
  tests/fixtures/<name>/model.safetensors           float32 weights (save_pretrained)
  tests/fixtures/<name>/reference.safetensors       float64 reference activations
                                                    (+ float32 ones with prefix "f32.";
                                                    backbone maps only with --f32-backbone)
  tests/data/vit-hybrid-base-bit-384.config.json    config of google/vit-hybrid-base-bit-384
  tests/data/vit-hybrid-base-bit-384.preprocessor_config.json

Everything is seeded and deterministic. Nothing is downloaded: no hub ids are used.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

import transformers
from transformers import BitConfig
from transformers.models.bit.modeling_bit import BitBackbone
from transformers.models.deprecated.vit_hybrid import (
    ViTHybridConfig,
    ViTHybridForImageClassification,
    ViTHybridImageProcessor,
)

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
DATA = ROOT / "tests" / "data"
IMAGES = ROOT / "examples" / "images"
PHOTO = IMAGES / "chelsea.png"

# Photo size: short side 161, long side 241, so that for every fixture size the
# processor's resize truncates a fractional long side and the centre crop
# floors an odd margin.
PHOTO_SIZE = (241, 161)  # (width, height)

BATCH = 3

GREEK = [
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta",
    "iota", "kappa", "lambda", "mu", "nu", "xi", "omicron", "pi",
]

CONFIGS = {
    # name: (seed, backbone kwargs, vit kwargs)
    "tiny": dict(
        seed=1001,
        backbone=dict(
            layer_type="bottleneck",
            global_padding="same",
            embedding_dynamic_padding=True,
            depths=[2, 2, 3],
            hidden_sizes=[32, 64, 128, 256],
            embedding_size=16,
            num_groups=8,
            out_features=["stage3"],
        ),
        vit=dict(
            image_size=96,
            patch_size=1,
            hidden_size=48,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=96,
        ),
        num_labels=10,
    ),
    "odd": dict(
        seed=1002,
        backbone=dict(
            layer_type="bottleneck",
            global_padding="same",
            embedding_dynamic_padding=True,
            depths=[1, 2, 1],
            hidden_sizes=[16, 32, 64, 128],
            embedding_size=8,
            num_groups=4,
            out_features=["stage3"],
        ),
        vit=dict(
            image_size=72,
            patch_size=1,
            hidden_size=24,
            num_hidden_layers=3,
            num_attention_heads=3,
            intermediate_size=40,
        ),
        num_labels=7,
    ),
    # Projection conv with kernel = stride = 2. The backbone is the narrow one of
    # "odd" to keep the fixture small; the encoder is like "tiny" with one layer.
    "patch2": dict(
        seed=1003,
        backbone=dict(
            layer_type="bottleneck",
            global_padding="same",
            embedding_dynamic_padding=True,
            depths=[2, 2, 3],
            hidden_sizes=[16, 32, 64, 128],
            embedding_size=8,
            num_groups=4,
            out_features=["stage3"],
        ),
        vit=dict(
            image_size=64,
            patch_size=2,
            hidden_size=48,
            num_hidden_layers=1,
            num_attention_heads=4,
            intermediate_size=96,
        ),
        num_labels=5,
    ),
    # No encoder layers (transformers allows it: the embeddings go straight to the final
    # norm), on the narrowest backbone.
    "no_layers": dict(
        seed=1004,
        backbone=dict(
            layer_type="bottleneck",
            global_padding="same",
            embedding_dynamic_padding=True,
            depths=[1, 1, 1],
            hidden_sizes=[8, 16, 32, 64],
            embedding_size=8,
            num_groups=4,
            out_features=["stage3"],
        ),
        vit=dict(
            image_size=32,
            patch_size=1,
            hidden_size=20,
            num_hidden_layers=0,
            num_attention_heads=2,
            intermediate_size=20,
        ),
        num_labels=4,
    ),
}

# scale of the classifier weights relative to 1/sqrt(hidden): spreads logits over a few units
CLASSIFIER_GAIN = 2.0


# --------------------------------------------------------------------------------------
# photo


def make_photo() -> None:
    import skimage.data

    IMAGES.mkdir(parents=True, exist_ok=True)
    arr = skimage.data.chelsea()  # (300, 451, 3) uint8, CC0 (Stefan van der Walt)
    img = Image.fromarray(arr, mode="RGB").resize(PHOTO_SIZE, Image.Resampling.LANCZOS)
    img.save(PHOTO, format="PNG", optimize=True)
    (IMAGES / "LICENSE.md").write_text(
        "# Bundled images\n\n"
        "`chelsea.png`: \"Chelsea the cat\", the sample photo `skimage.data.chelsea()` shipped with\n"
        "scikit-image (file `skimage/data/chelsea.png`), resized from 451x300 to 241x161 with\n"
        "Pillow's LANCZOS filter by `tools/make_fixtures.py`.\n\n"
        "License: no copyright restrictions, CC0 by the photographer (Stefan van der Walt), as\n"
        "stated in the docstring of `skimage.data.chelsea`.\n"
    )


# --------------------------------------------------------------------------------------
# configs


def label_maps(name: str, n: int):
    id2label = {i: f"{name} class {i} ({GREEK[i % len(GREEK)]})" for i in range(n)}
    label2id = {v: k for k, v in id2label.items()}
    return id2label, label2id


def build_config(name: str, spec: dict) -> ViTHybridConfig:
    bb = BitConfig(**spec["backbone"])
    # ViTHybridPatchEmbeddings takes its grid size and the projection's input
    # channels from `backbone_featmap_shape`, not from the image size (the default is
    # [1, 1024, 24, 24], right only for 384). Run the backbone once to get them.
    with torch.no_grad():
        backbone = BitBackbone(bb).eval()
        s = spec["vit"]["image_size"]
        fm = backbone(torch.zeros(1, 3, s, s)).feature_maps[-1]
    featmap = [1, int(fm.shape[1]), int(fm.shape[2]), int(fm.shape[3])]
    id2label, label2id = label_maps(name, spec["num_labels"])
    return ViTHybridConfig(
        backbone_config=bb,
        backbone_featmap_shape=featmap,
        hidden_act="gelu",
        layer_norm_eps=1e-12,
        qkv_bias=True,
        id2label=id2label,
        label2id=label2id,
        **spec["vit"],
    )


def build_processor(image_size: int) -> ViTHybridImageProcessor:
    return ViTHybridImageProcessor(
        do_resize=True,
        size={"shortest_edge": image_size},
        resample=3,  # PILImageResampling.BICUBIC
        do_center_crop=True,
        crop_size={"height": image_size, "width": image_size},
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
        do_convert_rgb=True,
    )


# --------------------------------------------------------------------------------------
# weights


def construct(config) -> ViTHybridForImageClassification:
    """Build the model.

    In transformers 4.57 the deprecated model's `_init_weights` breaks for every model
    without a mask token (it calls `module.mask_token.data.zero_()` on None), so that
    one branch is skipped here; every weight is overwritten by `set_weights` anyway.
    """
    from transformers.models.deprecated.vit_hybrid import modeling_vit_hybrid as mvh

    orig = mvh.ViTHybridPreTrainedModel._init_weights

    def init_weights(self, module):
        if isinstance(module, mvh.ViTHybridEmbeddings) and module.mask_token is None:
            return
        orig(self, module)

    mvh.ViTHybridPreTrainedModel._init_weights = init_weights
    try:
        return ViTHybridForImageClassification(config)
    finally:
        mvh.ViTHybridPreTrainedModel._init_weights = orig


@torch.no_grad()
def set_weights(model: ViTHybridForImageClassification, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    done: set[int] = set()

    def normal_(p, std):
        p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * std)
        done.add(id(p))

    def uniform_(p, lo, hi):
        p.copy_(torch.rand(p.shape, generator=g, dtype=torch.float64) * (hi - lo) + lo)
        done.add(id(p))

    for mname, m in model.named_modules():
        if isinstance(m, torch.nn.Conv2d):
            if m.bias is None:
                # BiT conv: weight-standardised, scale irrelevant
                normal_(m.weight, 1.0)
            else:
                # patch projection: a linear layer over in*kh*kw
                fan_in = m.weight[0].numel()
                normal_(m.weight, 1.0 / math.sqrt(fan_in))
                uniform_(m.bias, -0.3, 0.3)
        elif isinstance(m, (torch.nn.GroupNorm, torch.nn.LayerNorm)):
            uniform_(m.weight, 0.5, 1.5)
            uniform_(m.bias, -0.5, 0.5)
        elif isinstance(m, torch.nn.Linear):
            fan_in = m.weight.shape[1]
            gain = CLASSIFIER_GAIN if mname == "classifier" else 1.0
            normal_(m.weight, gain / math.sqrt(fan_in))
            if m.bias is not None:
                uniform_(m.bias, -0.3, 0.3)
    emb = model.vit.embeddings
    normal_(emb.cls_token, 0.5)
    normal_(emb.position_embeddings, 0.5)

    missing = [n for n, p in model.named_parameters() if id(p) not in done]
    if missing:
        raise RuntimeError(f"parameters left unset: {missing}")


# --------------------------------------------------------------------------------------
# forward with taps


def run_taps(model, pixel_values: torch.Tensor) -> dict[str, torch.Tensor]:
    bit = model.vit.embeddings.patch_embeddings.backbone.bit
    taps: dict[str, torch.Tensor] = {}
    hooks = []

    def tap(name):
        def hook(_mod, _inp, out):
            taps[name] = out.detach().clone()

        return hook

    hooks.append(bit.embedder.register_forward_hook(tap("stem")))
    for i, stage in enumerate(bit.encoder.stages):
        hooks.append(stage.register_forward_hook(tap(f"stages.{i}")))
    hooks.append(model.vit.embeddings.patch_embeddings.register_forward_hook(tap("patch_embeddings")))
    hooks.append(model.vit.layernorm.register_forward_hook(tap("layernorm")))
    try:
        with torch.no_grad():
            out = model(pixel_values=pixel_values, output_hidden_states=True, return_dict=True)
    finally:
        for h in hooks:
            h.remove()

    res = {"pixel_values": pixel_values.detach().clone()}
    res["stem"] = taps["stem"]
    for i in range(len(bit.encoder.stages)):
        res[f"stages.{i}"] = taps[f"stages.{i}"]
    res["patch_embeddings"] = taps["patch_embeddings"]
    hs = out.hidden_states
    res["embeddings"] = hs[0]
    for i in range(len(hs) - 1):
        res[f"layers.{i}"] = hs[i + 1]
    res["layernorm"] = taps["layernorm"]
    res["logits"] = out.logits
    return {k: v.contiguous() for k, v in res.items()}


def make_inputs(processor, image_size: int, seed: int) -> torch.Tensor:
    """Float32 inputs (the processor's output dtype); exactly representable in f64 too."""
    rng = np.random.default_rng(seed)
    noise = rng.uniform(-1.0, 1.0, size=(2, 3, image_size, image_size)).astype(np.float32)
    with Image.open(PHOTO) as im:
        photo = processor(images=im, return_tensors="np")["pixel_values"]
    assert photo.dtype == np.float32, photo.dtype
    assert photo.shape == (1, 3, image_size, image_size), photo.shape
    return torch.from_numpy(np.concatenate([noise, photo], axis=0))


def write_safetensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Byte-deterministic safetensors writer (safetensors.save_file orders metadata
    keys at random). Keys sorted, data in key order, header padded to 8 bytes."""
    dtypes = {torch.float64: "F64", torch.float32: "F32"}
    header: dict = {"__metadata__": dict(sorted(metadata.items()))}
    blobs = []
    offset = 0
    for k in sorted(tensors):
        t = tensors[k].detach().contiguous().cpu()
        b = t.numpy().astype(t.numpy().dtype.newbyteorder("<"), copy=False).tobytes()
        header[k] = {"dtype": dtypes[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little"))
        f.write(h)
        for b in blobs:
            f.write(b)
    # read back with the reference implementation
    back = load_file(path)
    assert set(back) == set(tensors)
    for k, t in tensors.items():
        assert back[k].dtype == t.dtype and torch.equal(back[k], t), k


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    a = a.double()
    b = b.double()
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


# --------------------------------------------------------------------------------------


# Float32 copies of these (large) backbone maps are left out of reference.safetensors
# unless --f32-backbone is given, to keep the fixtures small; their f32-vs-f64 errors
# are still printed and stored in the file's metadata.
F32_SKIP_DEFAULT = ("pixel_values", "stem", "stages.")


def make_fixture(name: str, spec: dict, f32_backbone: bool) -> None:
    print(f"=== {name} ===")
    out_dir = FIXTURES / name
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(spec["seed"])

    config = build_config(name, spec)
    model = construct(config)
    set_weights(model, spec["seed"])
    model.eval()

    bit = model.vit.embeddings.patch_embeddings.backbone.bit
    print(f"  backbone_featmap_shape = {config.backbone_featmap_shape}")
    for i, stage in enumerate(bit.encoder.stages):
        l0 = stage.layers[0]
        print(
            f"  stage {i}: conv1 {tuple(l0.conv1.weight.shape)} conv2 {tuple(l0.conv2.weight.shape)} "
            f"conv3 {tuple(l0.conv3.weight.shape)} downsample {tuple(l0.downsample.conv.weight.shape)} "
            f"layers {len(stage.layers)}"
        )
    print(f"  projection {tuple(model.vit.embeddings.patch_embeddings.projection.weight.shape)}, "
          f"position_embeddings {tuple(model.vit.embeddings.position_embeddings.shape)}")

    # weights + config via save_pretrained
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        shutil.copyfile(Path(tmp) / "config.json", out_dir / "config.json")
        shutil.copyfile(Path(tmp) / "model.safetensors", out_dir / "model.safetensors")
    processor = build_processor(config.image_size)
    with tempfile.TemporaryDirectory() as tmp:
        processor.save_pretrained(tmp)
        shutil.copyfile(Path(tmp) / "preprocessor_config.json", out_dir / "preprocessor_config.json")

    # round-trip check: reload the saved weights and config
    sd = load_file(out_dir / "model.safetensors")
    msd = model.state_dict()
    assert set(sd) == set(msd), set(sd) ^ set(msd)
    for k in sd:
        assert sd[k].dtype == torch.float32 and torch.equal(sd[k], msd[k]), k
    print(f"  model.safetensors: {len(sd)} tensors, {sum(t.numel() for t in sd.values()):,} parameters")

    pixel_values = make_inputs(processor, config.image_size, spec["seed"])

    model64 = copy.deepcopy(model).double().eval()
    ref64 = run_taps(model64, pixel_values.double())
    ref32 = run_taps(model, pixel_values)

    # sanity: finite and O(1)-ish
    for k, v in ref64.items():
        assert torch.isfinite(v).all(), k
        print(f"  {k:18s} {str(tuple(v.shape)):22s} std {v.std().item():8.4f}  max|x| {v.abs().max().item():8.4f}")
    logits = ref64["logits"]
    assert (logits.max(dim=1).values - logits.min(dim=1).values > 1.0).all(), "logits too flat"
    print(f"  logits (f64):\n{logits.numpy().round(4)}")
    print(f"  argmax: {logits.argmax(dim=1).tolist()}")
    print(f"  tokens: grid {config.backbone_featmap_shape[2] // config.patch_size}x"
          f"{config.backbone_featmap_shape[3] // config.patch_size}, sequence length {ref64['embeddings'].shape[1]}")

    print("  f32 vs f64, relative L2 error ||f32 - f64|| / ||f64||:")
    errors = {}
    for k in ref64:
        if k == "pixel_values":
            continue
        errors[k] = rel_l2(ref32[k], ref64[k])
        print(f"    {k:18s} {errors[k]:.3e}")
    logits_maxabs = (ref32["logits"].double() - ref64["logits"]).abs().max().item()
    print(f"    logits max |f32 - f64| = {logits_maxabs:.3e}")

    tensors = {k: v.to(torch.float64) for k, v in ref64.items()}
    skip = ("pixel_values",) if f32_backbone else F32_SKIP_DEFAULT
    for k, v in ref32.items():
        # f32.pixel_values would equal pixel_values: the inputs are f32 values, stored exactly as f64
        if k == "pixel_values" or k.startswith(skip):
            continue
        tensors[f"f32.{k}"] = v.to(torch.float32)
    meta = {
        "fixture": name,
        "generator": "tools/make_fixtures.py",
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "inputs": "0,1: uniform(-1,1) noise (f32 values); 2: examples/images/chelsea.png via ViTHybridImageProcessor",
        "note": "unprefixed tensors: float64 model; f32.*: float32 model on the same inputs",
        "f32_rel_l2_error": json.dumps({k: float(f"{v:.4e}") for k, v in errors.items()}),
        "f32_logits_max_abs_diff": f"{logits_maxabs:.4e}",
    }
    write_safetensors(out_dir / "reference.safetensors", tensors, meta)


def write_real_config(check_size: bool) -> None:
    print("=== google/vit-hybrid-base-bit-384 config ===")
    import timm

    info = Path(timm.__file__).parent / "data" / "_info"
    synsets = [l.strip() for l in (info / "imagenet_synsets.txt").read_text().splitlines() if l.strip()]
    lemmas = dict(
        l.split("\t", 1) for l in (info / "imagenet_synset_to_lemma.txt").read_text().splitlines() if "\t" in l
    )
    assert len(synsets) == 1000
    id2label = {i: lemmas[s] for i, s in enumerate(synsets)}

    # as in transformers' convert_vit_hybrid_timm_to_pytorch.py
    backbone_config = BitConfig(
        global_padding="same",
        layer_type="bottleneck",
        depths=(3, 4, 9),
        out_features=["stage3"],
        embedding_dynamic_padding=True,
    )
    config = ViTHybridConfig(backbone_config=backbone_config, image_size=384, num_labels=1000)
    config.id2label = id2label
    config.label2id = {v: k for k, v in id2label.items()}
    # what model.save_pretrained adds to the config it writes
    config.architectures = ["ViTHybridForImageClassification"]
    config.dtype = "float32"

    DATA.mkdir(parents=True, exist_ok=True)
    model = None
    if check_size:
        model = construct(config)
        sd = model.state_dict()
        print(f"  state_dict tensors: {len(sd)}, parameters: {sum(p.numel() for p in model.parameters()):,}")
    with tempfile.TemporaryDirectory() as tmp:
        config.save_pretrained(tmp)
        shutil.copyfile(Path(tmp) / "config.json", DATA / "vit-hybrid-base-bit-384.config.json")
        # timm vit_base_r50_s16_384: input 384, crop_pct 1.0, bicubic, mean = std = 0.5
        build_processor(384).save_pretrained(tmp)
        shutil.copyfile(Path(tmp) / "preprocessor_config.json", DATA / "vit-hybrid-base-bit-384.preprocessor_config.json")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", help="fixture names to (re)generate (default: all)")
    ap.add_argument("--f32-backbone", action="store_true",
                    help="also store f32.stem and f32.stages.* (about 0.7 MB more)")
    ap.add_argument("--check-real-size", action="store_true",
                    help="instantiate the full-size model and print its tensor and parameter count")
    args = ap.parse_args()

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    print(f"transformers {transformers.__version__}, torch {torch.__version__}, numpy {np.__version__}")

    # --only regenerates the named fixtures alone, from the committed photo (so it needs
    # neither scikit-image nor timm)
    if not args.only or not PHOTO.exists():
        make_photo()
    for name, spec in CONFIGS.items():
        if args.only and name not in args.only:
            continue
        make_fixture(name, spec, args.f32_backbone)
    if not args.only:
        write_real_config(args.check_real_size)

    total = 0
    print("=== files ===")
    for d in (FIXTURES, IMAGES, DATA):
        for p in sorted(d.rglob("*")):
            if p.is_file():
                total += p.stat().st_size
                print(f"  {p.relative_to(ROOT)}  {p.stat().st_size:,} B")
    print(f"  total {total:,} B ({total / 2**20:.2f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
