#!/usr/bin/env python3
"""Generate the preprocessing fixtures: small PNG/JPEG files of every colour type and what
transformers' `ViTHybridImageProcessor` makes of them.

Run by hand (never by CI), from the repository root, with the virtualenv of
tools/requirements.txt:

    /work/pyenv/bin/python tools/make_preprocess_fixtures.py

(only Pillow, numpy, safetensors, scikit-image and transformers of that list are used) and
jpegtran on the PATH (Debian: libjpeg-turbo-progs) for the arithmetic-coded JPEG.

It writes tests/fixtures/preprocess/:
  <image files>                      the inputs (see make_images and make_jpegs), from
                                     scikit-image's CC0 / public-domain sample photos; JPEG
                                     layouts Pillow cannot write come from
                                     tools/baseline_jpeg.py
  LICENSE.md                         where each image comes from and its licence
  preprocessor_config.json           shortest_edge 96, crop 96, bicubic, mean = std = 0.5
                                     (the same values as tests/fixtures/tiny)
  preprocessor_config_clip.json      shortest_edge 88, crop 80, bicubic, OPENAI-CLIP mean/std
  expected.safetensors               the processor's output for every image x config

Every image is processed exactly as a user would: `PIL.Image.open(path)` and then
`processor(images=img, return_tensors="np")`. Two documented exceptions:
  - gray16.png: Pillow opens 16-bit gray as mode I;16 and `convert("RGB")` clips every value
    above 255 to 255. The Rust crate takes the high byte instead (`v >> 8`, as Pillow does for
    16-bit RGB / RGBA / LA). `gray16.png` holds the processor's output on the 8-bit image
    `v >> 8` (our documented behaviour); `transformers/gray16.png` holds what transformers
    gives on the file itself.
  - wide_1px.png (300 x 1): numpy shape (1, 300, 3) is ambiguous to transformers'
    `infer_channel_dimension_format`, which guesses channels-first and then fails
    ("mean must have 1 elements"). Its expected output is computed with
    `input_data_format="channels_last"`, the argument a user has to pass.

Storage. pixel_values as float32 would be 110 KB per image at 96 x 96. Each value is a
function of (channel, u8 level) only, so the file stores instead
  `<image>` / `clip/<image>`    U8 [3, H, W]  the u8 level of every output value (the processor
                                run with do_rescale = do_normalize = False)
  `table/default`, `table/clip` F32 [3, 256]  level -> pixel_values, computed by the
                                processor's own `rescale` and `normalize` on all 256 levels
and the script asserts, for every entry, that table[c][level] is bit for bit the float32
pixel_values of the normal run. A Rust test comparing against table[c][level] therefore
compares against transformers' pixel_values exactly.
  `decoded/<name>.jpg`          U8 [H, W, 3]  Pillow's decoded RGB pixels of each JPEG
                                (`np.asarray(Image.open(p).convert("RGB"))`), so that a test
                                can tell decoder differences from preprocessing differences.
The metadata holds the library versions, the licences and, per image, the mode Pillow opened
it as, its size and any note.

The output is deterministic (fixed crops of fixed photos, no randomness without a seed).
"""

from __future__ import annotations

import io
import json
import shutil
import struct
import subprocess
import sys
import tempfile
import warnings
import zlib
from pathlib import Path

import numpy as np
import PIL
import skimage
import skimage.data
import transformers
from PIL import Image
from safetensors.numpy import load_file
from transformers.models.deprecated.vit_hybrid import ViTHybridImageProcessor

import baseline_jpeg

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "preprocess"

OPENAI_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

CONFIGS = {
    # key prefix, file name, processor kwargs
    "default": (
        "",
        "preprocessor_config.json",
        dict(
            size={"shortest_edge": 96},
            crop_size={"height": 96, "width": 96},
            resample=3,
            image_mean=[0.5, 0.5, 0.5],
            image_std=[0.5, 0.5, 0.5],
        ),
    ),
    "clip": (
        "clip/",
        "preprocessor_config_clip.json",
        dict(
            size={"shortest_edge": 88},
            crop_size={"height": 80, "width": 80},
            resample=3,
            image_mean=OPENAI_CLIP_MEAN,
            image_std=OPENAI_CLIP_STD,
        ),
    ),
}

SOURCES = {
    "chelsea": "skimage.data.chelsea(): \"Chelsea the cat\", no copyright restrictions, CC0 by "
    "the photographer (Stefan van der Walt)",
    "coffee": "skimage.data.coffee(): coffee cup, courtesy of Pikolo Espresso Bar; no copyright "
    "restrictions, CC0 by the photographer (Rachel Michetti)",
    "astronaut": "skimage.data.astronaut(): astronaut Eileen Collins, NASA Great Images database; "
    "no known copyright restrictions, released into the public domain",
    "camera": "skimage.data.camera(): gray \"camera\" image, no copyright restrictions, CC0 by "
    "the photographer (Lav Varshney)",
}


# --------------------------------------------------------------------------------------
# a small PNG writer for what Pillow cannot write (16-bit RGB / RGBA / LA, 2-bit gray,
# interlacing). Rows cycle through the five filter types so decoders' unfiltering is
# exercised too.

PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _filter_rows(raw_rows: list[bytes], bpp: int) -> bytes:
    out = bytearray()
    prev = bytes(len(raw_rows[0])) if raw_rows else b""
    for r, row in enumerate(raw_rows):
        ftype = r % 5
        f = bytearray(len(row))
        for i, x in enumerate(row):
            a = row[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            pred = (0, a, b, (a + b) // 2, _paeth(a, b, c))[ftype]
            f[i] = (x - pred) & 0xFF
        out.append(ftype)
        out += f
        prev = row
    return bytes(out)


def _pack_rows(arr: np.ndarray, bit_depth: int) -> list[bytes]:
    """arr: [H, W, C] of uint8 / uint16 sample values -> the unfiltered scanlines."""
    rows = []
    for row in arr:
        flat = row.reshape(-1)
        if bit_depth == 16:
            rows.append(flat.astype(">u2").tobytes())
        elif bit_depth == 8:
            rows.append(flat.astype(np.uint8).tobytes())
        else:
            per = 8 // bit_depth
            padded = np.zeros(-(-len(flat) // per) * per, np.uint8)
            padded[: len(flat)] = flat
            packed = np.zeros(len(padded) // per, np.uint8)
            for k in range(per):
                packed |= (padded[k::per] << (8 - bit_depth * (k + 1))).astype(np.uint8)
            rows.append(packed.tobytes())
    return rows


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def write_png(path: Path, arr: np.ndarray, color_type: int, bit_depth: int,
              palette: np.ndarray | None = None, interlace: bool = False) -> None:
    if arr.ndim == 2:
        arr = arr[:, :, None]
    h, w, c = arr.shape
    assert c == PNG_CHANNELS[color_type]
    bpp = max(1, c * bit_depth // 8)
    if interlace:
        data = b""
        for x0, y0, dx, dy in ADAM7:
            sub = arr[y0::dy, x0::dx]
            if sub.size:
                data += _filter_rows(_pack_rows(sub, bit_depth), bpp)
    else:
        data = _filter_rows(_pack_rows(arr, bit_depth), bpp)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    png = b"\x89PNG\r\n\x1a\n"
    png += chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, int(interlace)))
    if palette is not None:
        png += chunk(b"PLTE", palette.astype(np.uint8).tobytes())
    png += chunk(b"IDAT", zlib.compress(data, 9))
    png += chunk(b"IEND", b"")
    path.write_bytes(png)


def png_header(path: Path) -> tuple[int, int, int, int, int]:
    """(width, height, bit depth, colour type, interlace) from the IHDR chunk."""
    b = path.read_bytes()
    w, h, depth, ctype, _, _, inter = struct.unpack(">IIBBBBB", b[16:29])
    return w, h, depth, ctype, inter


# --------------------------------------------------------------------------------------
# the images


def lanczos(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a uint8 photo to (width, height) with Pillow's LANCZOS (just to make it small)."""
    return np.asarray(Image.fromarray(arr).resize(size, Image.Resampling.LANCZOS))


def make_images() -> dict[str, dict]:
    """Writes the input files; returns name -> {source, note, expect_mode}."""
    chelsea = skimage.data.chelsea()      # (300, 451, 3)
    coffee = skimage.data.coffee()        # (400, 600, 3)
    astronaut = skimage.data.astronaut()  # (512, 512, 3)
    camera = skimage.data.camera()        # (512, 512)
    info: dict[str, dict] = {}

    def add(name: str, source: str, mode: str, note: str) -> None:
        info[name] = dict(source=source, pillow_mode=mode, note=note)

    # RGB 8-bit, 131 x 99: shrinks to 127 x 96 (and 116 x 88), truncating a fractional side
    rgb = lanczos(chelsea, (196, 130))[16:115, 40:171]
    Image.fromarray(rgb).save(OUT / "rgb.png", optimize=True)
    add("rgb.png", "chelsea", "RGB", "8-bit RGB, shrunk by the resize")

    # RGBA 8-bit, 120 x 90 (upscaled to 128 x 96): alpha varies across the image and is 0 on
    # a block whose colours are kept (PNG stores them; the processor drops alpha, it does not
    # composite)
    rgb2 = lanczos(coffee, (150, 100))[5:95, 15:135]
    yy, xx = np.mgrid[0:90, 0:120]
    alpha = ((xx * 255) // 119).astype(np.uint8)
    alpha[30:60, 40:80] = 0
    alpha[0:10, :] = 255
    rgba = np.dstack([rgb2, alpha])
    Image.fromarray(rgba, "RGBA").save(OUT / "rgba.png", optimize=True)
    add("rgba.png", "coffee", "RGBA", "8-bit RGBA, alpha 0..255 with a block of alpha 0")

    # L 8-bit, tall: 110 x 260 shrinks to 96 x 226, where the height loses more than twice as
    # many pixels as the width (Pillow 13 resizes vertically first)
    gray = lanczos(camera, (260, 260))[:, 70:180]
    Image.fromarray(gray, "L").save(OUT / "gray.png", optimize=True)
    add("gray.png", "camera", "L", "8-bit gray, portrait, vertical pass first in Pillow 13")

    # LA 8-bit, 90 x 70
    ga = lanczos(astronaut, (140, 140))[10:80, 25:115]
    g = np.asarray(Image.fromarray(ga).convert("L"))
    a = ((np.arange(90)[None, :] * 3 + np.arange(70)[:, None] * 2) % 256).astype(np.uint8)
    a[20:40, 30:50] = 0
    Image.fromarray(np.dstack([g, a]), "LA").save(OUT / "gray_alpha.png", optimize=True)
    add("gray_alpha.png", "astronaut", "LA", "8-bit gray + alpha (alpha 0 on a block)")

    # gray, 2 bits per pixel, 64 x 48 (Pillow unpacks L;2 to 0, 85, 170, 255)
    g2 = lanczos(np.dstack([camera] * 3), (128, 128))[40:88, 30:94, 0] >> 6
    write_png(OUT / "gray_2bit.png", g2.astype(np.uint8), 0, 2)
    assert np.array_equal(np.asarray(Image.open(OUT / "gray_2bit.png")), g2 * 85)
    add("gray_2bit.png", "camera", "L", "2-bit gray, levels 0/85/170/255")

    # P, 256 colours, 100 x 100 (square)
    pal = Image.fromarray(lanczos(astronaut, (200, 200))[0:100, 50:150]).quantize(256)
    pal.save(OUT / "palette.png", optimize=False)
    add("palette.png", "astronaut", "P", "8-bit palette, 256 colours (quantize, dithered)")

    # P, 16 colours, 4 bits per index, with a tRNS chunk (alpha per palette entry, some 0)
    pt = Image.fromarray(lanczos(coffee, (105, 70))).quantize(16)
    trns = bytes([0, 255, 128, 64, 255, 0, 200, 30, 255, 255, 90, 0, 255, 17, 255, 255])
    pt.save(OUT / "palette_trns.png", bits=4, transparency=trns)
    add("palette_trns.png", "coffee", "P", "4-bit palette, 16 colours, tRNS with alpha 0 entries "
        "(Pillow's convert('RGB') looks the palette up and drops the transparency)")

    # 16-bit gray, 100 x 80: camera in the high byte, a pattern in the low byte
    g16 = lanczos(camera, (200, 200))[60:140, 50:150].astype(np.uint16) << 8
    g16 |= ((np.arange(100)[None, :] * 37 + np.arange(80)[:, None] * 11) % 256).astype(np.uint16)
    write_png(OUT / "gray16.png", g16, 0, 16)
    assert np.array_equal(np.asarray(Image.open(OUT / "gray16.png")), g16)
    add("gray16.png", "camera", "I;16", "16-bit gray: transformers (Pillow) clips > 255 to 255; "
        "expected `gray16.png` is the processor on the high byte (v >> 8), the crate's "
        "documented behaviour; `transformers/gray16.png` is transformers' own output")

    # 16-bit gray + alpha, 60 x 50 (Pillow opens it as RGBA from the high bytes)
    la16_g = lanczos(np.dstack([camera] * 3), (150, 150))[20:70, 40:100, 0].astype(np.uint16) * 257
    la16_a = ((np.arange(60)[None, :] * 1111 + np.arange(50)[:, None] * 777) % 65536).astype(np.uint16)
    write_png(OUT / "gray_alpha16.png", np.dstack([la16_g, la16_a]), 4, 16)
    hi = (np.dstack([la16_g, la16_g, la16_g, la16_a]) >> 8).astype(np.uint8)
    assert np.array_equal(np.asarray(Image.open(OUT / "gray_alpha16.png")), hi)
    add("gray_alpha16.png", "camera", "RGBA", "16-bit gray + alpha (Pillow: RGBA from the high bytes)")

    # 16-bit RGB, 90 x 100: high byte from the photo, low byte a pattern (so that rounding
    # instead of truncating would show)
    r16 = lanczos(astronaut, (180, 180))[20:120, 40:130].astype(np.uint16) << 8
    r16 |= ((np.arange(90)[None, :, None] * 53 + np.arange(100)[:, None, None] * 29
             + np.arange(3)[None, None, :] * 101) % 256).astype(np.uint16)
    write_png(OUT / "rgb16.png", r16, 2, 16)
    assert np.array_equal(np.asarray(Image.open(OUT / "rgb16.png")), (r16 >> 8).astype(np.uint8))
    add("rgb16.png", "astronaut", "RGB", "16-bit RGB (Pillow opens RGB from the high bytes)")

    # 16-bit RGBA, 70 x 60
    a16 = lanczos(chelsea, (150, 100))[20:80, 40:110].astype(np.uint16) * 257 + 0x80
    a16 = np.minimum(a16, 65535).astype(np.uint16)
    al16 = ((np.arange(70)[None, :] * 999 + np.arange(60)[:, None] * 2222) % 65536).astype(np.uint16)
    write_png(OUT / "rgba16.png", np.dstack([a16, al16]), 6, 16)
    assert np.array_equal(np.asarray(Image.open(OUT / "rgba16.png")),
                          (np.dstack([a16, al16]) >> 8).astype(np.uint8))
    add("rgba16.png", "chelsea", "RGBA", "16-bit RGBA (Pillow opens RGBA from the high bytes)")

    # interlaced (Adam7) 8-bit RGB, 70 x 50
    il = lanczos(coffee, (105, 70))[10:60, 20:90]
    write_png(OUT / "rgb_interlaced.png", il, 2, 8, interlace=True)
    assert np.array_equal(np.asarray(Image.open(OUT / "rgb_interlaced.png")), il)
    add("rgb_interlaced.png", "coffee", "RGB", "8-bit RGB, Adam7 interlaced")

    # smaller than the crop: 40 x 30 is upscaled to 128 x 96 (and 117 x 88)
    Image.fromarray(lanczos(chelsea, (60, 40))[5:35, 10:50]).save(OUT / "small.png", optimize=True)
    add("small.png", "chelsea", "RGB", "40 x 30, smaller than the crop: upscaled")

    # one pixel wide / tall: 1 x 300 -> 96 x 28800, 300 x 1 -> 28800 x 96
    col = lanczos(coffee, (450, 300))[:, 225:226]
    Image.fromarray(np.ascontiguousarray(col)).save(OUT / "tall_1px.png", optimize=True)
    add("tall_1px.png", "coffee", "RGB", "1 x 300")
    row = lanczos(coffee, (300, 200))[100:101, :]
    Image.fromarray(np.ascontiguousarray(row)).save(OUT / "wide_1px.png", optimize=True)
    add("wide_1px.png", "coffee", "RGB", "300 x 1; transformers guesses channels-first for numpy "
        "shape (1, 300, 3) and raises, so the expected output is computed with "
        "input_data_format='channels_last'")

    # JPEGs (libjpeg-turbo through Pillow): odd sizes so the 4:2:0 chroma planes have a
    # half-covered edge
    Image.fromarray(lanczos(astronaut, (242, 242))[10:131, 40:201]).save(
        OUT / "photo.jpg", quality=90)
    add("photo.jpg", "astronaut", "RGB", "JPEG 161 x 121, quality 90, 4:2:0 chroma subsampling")
    Image.fromarray(lanczos(np.dstack([camera] * 3), (200, 200))[20:157, 50:153, 0], "L").save(
        OUT / "gray.jpg", quality=90)
    add("gray.jpg", "camera", "L", "grayscale JPEG 103 x 137, quality 90")
    make_jpegs(add, chelsea, coffee, astronaut, camera)
    return info


def make_jpegs(add, chelsea: np.ndarray, coffee: np.ndarray, astronaut: np.ndarray,
               camera: np.ndarray) -> None:
    """Every JPEG layout the decoder must get bit for bit right, written by Pillow where Pillow
    can write it and by tools/baseline_jpeg.py where it cannot (4:1:1, 4:4:0, YCCK, Adobe
    RGB: Pillow's "4:1:1" is 4:2:0, and it writes CMYK only untransformed). Sizes are odd so
    that subsampled chroma planes have half-covered edges."""
    def save(name: str, arr: np.ndarray, mode: str, source: str, note: str, **kw) -> None:
        Image.fromarray(arr, mode).save(OUT / name, **kw)
        add(name, source, mode, note)

    save("s444.jpg", lanczos(chelsea, (135, 90))[8:78, 20:109], "RGB", "chelsea",
         "JPEG 89 x 70, 4:4:4, quality 92", quality=92, subsampling=0)
    save("s422.jpg", lanczos(coffee, (120, 80))[6:73, 14:105], "RGB", "coffee",
         "JPEG 91 x 67, 4:2:2, quality 90", quality=90, subsampling=1)
    save("odd_37x23.jpg", lanczos(coffee, (60, 40))[3:26, 5:42], "RGB", "coffee",
         "JPEG 37 x 23, 4:2:0: every MCU row and column partly outside the image",
         quality=90, subsampling=2)
    # 97 x 240 shrinks to 96 x 237: the height loses more than twice as many pixels as the
    # width, so Pillow 13 resizes vertically first
    save("tall.jpg", lanczos(astronaut, (240, 240))[:, 70:167], "RGB", "astronaut",
         "JPEG 97 x 240 (a tall crop), 4:2:0, quality 88", quality=88, subsampling=2)
    save("progressive.jpg", lanczos(astronaut, (150, 150))[40:115, 20:121], "RGB", "astronaut",
         "progressive JPEG 101 x 75, 4:2:0, quality 85", quality=85, progressive=True)
    save("progressive_444.jpg", lanczos(chelsea, (90, 60))[2:53, 6:79], "RGB", "chelsea",
         "progressive JPEG 73 x 51, 4:4:4, quality 90", quality=90, progressive=True, subsampling=0)
    save("gray_progressive.jpg", lanczos(np.dstack([camera] * 3), (100, 100))[3:98, 20:81, 0],
         "L", "camera", "progressive grayscale JPEG 61 x 95, quality 90", quality=90,
         progressive=True)
    save("restart_blocks.jpg", lanczos(chelsea, (120, 80))[9:70, 15:98], "RGB", "chelsea",
         "JPEG 83 x 61, 4:2:0, a restart marker every 3 MCUs", quality=90,
         restart_marker_blocks=3)
    save("restart_rows.jpg", lanczos(coffee, (105, 70))[4:63, 6:97], "RGB", "coffee",
         "JPEG 91 x 59, 4:2:2, a restart marker every MCU row", quality=90, subsampling=1,
         restart_marker_rows=1)
    cmyk = np.asarray(Image.fromarray(lanczos(astronaut, (90, 90))[20:65, 14:74]).convert("CMYK"))
    save("cmyk.jpg", cmyk, "CMYK", "astronaut",
         "CMYK JPEG 60 x 45 as Pillow writes it (inverted, Adobe marker with transform 0); "
         "Pillow's convert('RGB') is its cmyk2rgb", quality=90)

    # Pillow cannot write these
    rgb = lanczos(coffee, (90, 60))[5:50, 3:80]
    baseline_jpeg.write(OUT / "s411.jpg", baseline_jpeg.rgb_to_ycc(rgb), [(4, 1), (1, 1), (1, 1)])
    add("s411.jpg", "coffee", "RGB", "JPEG 77 x 45, 4:1:1 (luma 4x1), by tools/baseline_jpeg.py")
    rgb = lanczos(chelsea, (90, 60))[4:57, 9:80]
    baseline_jpeg.write(OUT / "s440.jpg", baseline_jpeg.rgb_to_ycc(rgb), [(1, 2), (1, 1), (1, 1)],
                        restart_interval=4)
    add("s440.jpg", "chelsea", "RGB", "JPEG 71 x 53, 4:4:0 (luma 1x2), a restart marker every "
        "4 MCUs, by tools/baseline_jpeg.py")
    # Adobe YCCK: stored CMYK is inverted (as Adobe and Pillow write it); Y, Cb, Cr are
    # computed from R = 255 - stored C (and so on), K is stored as is
    stored = 255 - np.asarray(Image.fromarray(lanczos(astronaut, (80, 80))[5:70, 7:60]).convert("CMYK"))
    planes = baseline_jpeg.rgb_to_ycc(255 - stored[..., :3]) + [stored[..., 3]]
    baseline_jpeg.write(OUT / "ycck.jpg", planes, [(2, 2), (1, 1), (1, 1), (2, 2)], adobe_transform=2)
    add("ycck.jpg", "astronaut", "CMYK", "YCCK JPEG 53 x 65 (Adobe marker, transform 2), Y and K "
        "2x2, by tools/baseline_jpeg.py")
    rgb = lanczos(coffee, (70, 50))[3:46, 5:62]
    baseline_jpeg.write(OUT / "adobe_rgb.jpg", [rgb[..., c] for c in range(3)], [(1, 1)] * 3,
                        adobe_transform=0)
    add("adobe_rgb.jpg", "coffee", "RGB", "JPEG 57 x 43 storing RGB itself (Adobe marker, "
        "transform 0), by tools/baseline_jpeg.py")

    # Arithmetic coding, which Pillow cannot write: jpegtran (Debian's libjpeg-turbo-progs)
    # re-codes a Pillow JPEG's coefficients losslessly
    src = OUT / "arithmetic_src.jpg"
    Image.fromarray(lanczos(astronaut, (100, 100))[10:69, 15:92]).save(src, quality=90)
    if shutil.which("jpegtran") is None:
        sys.exit("jpegtran not found: apt-get install libjpeg-turbo-progs")
    subprocess.run(["jpegtran", "-arithmetic", "-outfile", str(OUT / "arithmetic.jpg"), str(src)],
                   check=True)
    src.unlink()
    add("arithmetic.jpg", "astronaut", "RGB", "arithmetic-coded JPEG 77 x 59, 4:2:0 (Pillow's "
        "file re-coded by jpegtran -arithmetic, libjpeg-turbo 2.1.5)")

    # Damage libjpeg steps over with a warning and Pillow accepts (its output_message is
    # silent): the pixels are whatever libjpeg makes of it
    buf = io.BytesIO()
    Image.fromarray(lanczos(chelsea, (96, 64))[6:54, 12:76]).save(buf, "JPEG", quality=90)
    base = buf.getvalue()
    sos = base.index(b"\xff\xda")
    scan = sos + 2 + int.from_bytes(base[sos + 2:sos + 4], "big")
    damaged = bytearray(base)
    mid = (scan + len(base)) // 2
    for i in range(mid, mid + 6):
        if damaged[i] != 0xFF and damaged[i - 1] != 0xFF and damaged[i] ^ 0x5A != 0xFF:
            damaged[i] ^= 0x5A
    (OUT / "corrupt_scan.jpg").write_bytes(bytes(damaged))
    add("corrupt_scan.jpg", "chelsea", "RGB", "JPEG 64 x 48 with 6 bytes in the middle of its "
        "scan changed (bad Huffman data: a libjpeg warning, which Pillow ignores)")
    (OUT / "cut_scan.jpg").write_bytes(base[:(scan + len(base)) // 2] + b"\xff\xd9")
    add("cut_scan.jpg", "chelsea", "RGB", "JPEG 64 x 48 whose scan stops halfway, followed by "
        "its end-of-image marker (libjpeg warns and fills the rest; Pillow accepts it)")
    buf = io.BytesIO()
    Image.fromarray(lanczos(coffee, (96, 64))[8:56, 16:80]).save(buf, "JPEG", quality=90,
                                                                 restart_marker_blocks=2)
    b = bytearray(buf.getvalue())
    rst = b.index(b"\xff\xd3")
    b[rst + 1] = 0xD6  # RST3 where RST6 comes: libjpeg resynchronises
    b[-2:-2] = b"\x00\x11\x22"  # stray bytes before EOI: "extraneous bytes before marker"
    (OUT / "bad_restart.jpg").write_bytes(bytes(b))
    add("bad_restart.jpg", "coffee", "RGB", "JPEG 64 x 48 with a restart marker out of sequence "
        "and stray bytes before its end-of-image marker (libjpeg warnings, Pillow accepts it)")


# --------------------------------------------------------------------------------------
# expected outputs


def save_safetensors(path: Path, tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    """safetensors.numpy.save_file writes the metadata in hash order, which changes from run
    to run; this writes the same format with every key sorted, so the file is reproducible."""
    dtypes = {np.dtype(np.uint8): "U8", np.dtype(np.float32): "F32"}
    header: dict = {"__metadata__": dict(sorted(metadata.items()))}
    blobs, offset = [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        b = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtypes[a.dtype], "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    path.write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    back = load_file(str(path))
    assert back.keys() == tensors.keys()
    assert all(np.array_equal(back[k], tensors[k]) and back[k].dtype == tensors[k].dtype for k in tensors)


def processors() -> dict[str, ViTHybridImageProcessor]:
    """Writes the preprocessor_config files and loads them back as a user would."""
    out = {}
    for name, (_, fname, kwargs) in CONFIGS.items():
        with tempfile.TemporaryDirectory() as tmp:
            ViTHybridImageProcessor(**kwargs).save_pretrained(tmp)
            shutil.copy(Path(tmp) / "preprocessor_config.json", OUT / fname)
        if fname == "preprocessor_config.json":
            out[name] = ViTHybridImageProcessor.from_pretrained(OUT)
        else:
            out[name] = ViTHybridImageProcessor.from_json_file(OUT / fname)
    return out


def level_table(proc: ViTHybridImageProcessor) -> np.ndarray:
    """F32 [3, 256]: the processor's own rescale + normalize on every u8 level."""
    levels = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)  # [1, 256, 3]
    x = proc.rescale(levels, scale=proc.rescale_factor, input_data_format="channels_last")
    x = proc.normalize(x, mean=proc.image_mean, std=proc.image_std, input_data_format="channels_last")
    assert x.dtype == np.float32, x.dtype
    return np.ascontiguousarray(x[0].T)


def run(proc: ViTHybridImageProcessor, img: Image.Image, table: np.ndarray, what: str,
        **kwargs) -> np.ndarray:
    """The processor's pixel_values for one image, returned as u8 levels [3, H, W] after
    checking that table[c][level] reproduces the float32 output bit for bit."""
    pv = proc(images=img, return_tensors="np", **kwargs)["pixel_values"]
    assert pv.dtype == np.float32 and pv.shape[0] == 1 and pv.shape[1] == 3, (what, pv.dtype, pv.shape)
    lv = proc(images=img, return_tensors="np", do_rescale=False, do_normalize=False,
              **kwargs)["pixel_values"]
    assert lv.dtype == np.uint8 and lv.shape == pv.shape, (what, lv.dtype, lv.shape)
    lv = lv[0]
    rebuilt = table[np.arange(3)[:, None, None], lv]
    assert rebuilt.view(np.uint32).tobytes() == pv[0].view(np.uint32).tobytes(), \
        f"{what}: the level table does not reproduce pixel_values"
    return np.ascontiguousarray(lv)


def channels_ambiguous(img: Image.Image) -> bool:
    """Whether transformers' infer_channel_dimension_format will guess channels-first."""
    arr = np.asarray(img.convert("RGB"))
    return arr.shape[0] in (1, 3)


def main() -> int:
    print(f"Pillow {PIL.__version__}, transformers {transformers.__version__}, "
          f"numpy {np.__version__}, scikit-image {skimage.__version__}")
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)

    info = make_images()
    procs = processors()
    tables = {name: level_table(p) for name, p in procs.items()}
    tensors: dict[str, np.ndarray] = {f"table/{k}": v for k, v in tables.items()}

    for name, meta in info.items():
        path = OUT / name
        img = Image.open(path)
        meta["size"] = list(img.size)
        assert img.mode == meta["pillow_mode"], (name, img.mode, meta["pillow_mode"])
        if path.suffix == ".png":
            w, h, depth, ctype, inter = png_header(path)
            meta["png"] = dict(bit_depth=depth, color_type=ctype, interlaced=bool(inter))
        kwargs = {}
        if channels_ambiguous(img):
            try:
                procs["default"](images=img, return_tensors="np")
                meta["transformers_as_is"] = "ran, but treated the image as channels-first"
            except ValueError as e:
                meta["transformers_as_is"] = f"ValueError: {e}"
            kwargs["input_data_format"] = "channels_last"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Palette images with Transparency ..."
            for cname, (prefix, _, _) in CONFIGS.items():
                proc, table = procs[cname], tables[cname]
                if name == "gray16.png":
                    raw = np.asarray(img)
                    assert raw.dtype == np.uint16
                    high = Image.fromarray((raw >> 8).astype(np.uint8), "L")
                    tensors[f"{prefix}{name}"] = run(proc, high, table, f"{prefix}{name} (v >> 8)")
                    tensors[f"{prefix}transformers/{name}"] = run(proc, img, table, f"{prefix}{name}")
                else:
                    tensors[f"{prefix}{name}"] = run(proc, img, table, f"{prefix}{name}", **kwargs)
        if path.suffix == ".jpg":
            tensors[f"decoded/{name}"] = np.ascontiguousarray(np.asarray(img.convert("RGB")))
        print(f"  {name:20s} {img.mode:5s} {img.size[0]}x{img.size[1]}"
              + (f"  [{meta['transformers_as_is']}]" if "transformers_as_is" in meta else ""))

    metadata = {
        "pillow": PIL.__version__,
        "transformers": transformers.__version__,
        "numpy": np.__version__,
        "scikit-image": skimage.__version__,
        "generator": "tools/make_preprocess_fixtures.py",
        "layout": "<image>, clip/<image>: U8 [3,H,W] levels; expected pixel_values = "
                  "table/<config>[c][level] (F32, verified bit-exact against the processor's "
                  "float32 output); decoded/<jpg>: U8 [H,W,3] Pillow-decoded RGB",
        "configs": json.dumps({k: v[1] for k, v in CONFIGS.items()}),
        "images": json.dumps(info, sort_keys=True),
        "sources": json.dumps(SOURCES, sort_keys=True),
    }
    save_safetensors(OUT / "expected.safetensors", tensors, metadata)

    lic = ["# Preprocessing fixture images", "",
           "Written by `tools/make_preprocess_fixtures.py` from scikit-image's sample photos "
           f"(scikit-image {skimage.__version__}), cropped and resized with Pillow.", "",
           "| file | source | what it exercises |", "| --- | --- | --- |"]
    for name, meta in info.items():
        lic.append(f"| `{name}` | `skimage.data.{meta['source']}()` | {meta['note']} |")
    lic += ["", "Licences, as stated in the functions' docstrings:", ""]
    lic += [f"- {SOURCES[s]}" for s in sorted(SOURCES)]
    (OUT / "LICENSE.md").write_text("\n".join(lic) + "\n")

    total = 0
    print("=== files ===")
    for p in sorted(OUT.iterdir()):
        total += p.stat().st_size
        print(f"  {p.relative_to(ROOT)}  {p.stat().st_size:,} B")
    print(f"  total {total:,} B")
    return 0


if __name__ == "__main__":
    sys.exit(main())
