#!/usr/bin/env python3
"""Generate the decoding fixtures: small GIF, TIFF and PNM files where the `image` crate's
pixels differ from Pillow's (src/decode/), and Pillow's decoded RGB of each.

Run by hand (never by CI), from the repository root, with the virtualenv of
tools/requirements.txt (only Pillow and numpy are used):

    /work/pyenv/bin/python tools/make_decode_fixtures.py

It writes tests/fixtures/decode/:
  <image files>           synthetic patterns (no third-party content), listed in README.md
  README.md               what each file exercises
  expected.safetensors    U8 [H, W, 3] per file: np.asarray(Image.open(f).convert("RGB")),
                          Pillow's pixels, which tests/decode_reference.rs compares bit for bit.
                          One documented exception: 16-bit gray PNM (gray_max1000.pgm), which
                          Pillow opens as mode I and convert("RGB") clips; its expected pixels are
                          the high byte of Pillow's I values (the crate's documented behaviour).
                          The metadata holds the Pillow version, the notes, and for a few cut
                          copies of some files whether Pillow opens them ("truncations").

GIFs are assembled here (a plain LZW writer, or Pillow's own LZW data) so that frame offsets,
local tables, transparency, interlacing and missing tables can be laid out as needed. TIFFs
come from Pillow (LZW) with ExtraSamples patched to 1, or from the small writer below. The
output is deterministic (seeded).
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import PIL
from PIL import Image
from safetensors.numpy import save_file

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "decode"
RNG = np.random.default_rng(20240607)

# --------------------------------------------------------------------------------------
# GIF


def sub_blocks(data: bytes) -> bytes:
    out = bytearray()
    for i in range(0, len(data), 255):
        chunk = data[i : i + 255]
        out.append(len(chunk))
        out += chunk
    out.append(0)
    return bytes(out)


def lzw_plain(indices: list[int], m: int) -> bytes:
    """LZW data in which every index is one code: a clear code comes before the table would
    widen the codes, so the code size stays m + 1."""
    clear, end = 1 << m, (1 << m) + 1
    size = m + 1
    per = (1 << m) - 3 if m > 2 else 1
    codes: list[int] = []
    for i in range(0, len(indices), per):
        codes.append(clear)
        codes += indices[i : i + per]
    codes.append(end)
    acc = nbits = 0
    out = bytearray()
    for c in codes:
        acc |= c << nbits
        nbits += size
        while nbits >= 8:
            out.append(acc & 255)
            acc >>= 8
            nbits -= 8
    if nbits:
        out.append(acc & 255)
    return bytes(out)


def pillow_lzw(rows: np.ndarray, palette: bytes, interlace: bool) -> tuple[int, bytes]:
    """(min code size, LZW data) of Pillow's own encoding of the index image `rows`."""
    im = Image.fromarray(rows.astype(np.uint8), "P")
    im.putpalette(palette)
    buf = io.BytesIO()
    im.save(buf, "GIF", interlace=interlace, optimize=False)
    b = buf.getvalue()
    i = 13 + (3 << ((b[10] & 7) + 1) if b[10] & 0x80 else 0)
    while b[i] == 0x21:  # extensions
        i += 2
        while b[i]:
            i += b[i] + 1
        i += 1
    assert b[i] == 0x2C
    flags = b[i + 9]
    i += 10 + ((3 << ((flags & 7) + 1)) if flags & 0x80 else 0)
    m = b[i]
    i += 1
    data = bytearray()
    while b[i]:
        data += b[i + 1 : i + 1 + b[i]]
        i += b[i] + 1
    return m, bytes(data)


def interlace_order(h: int) -> list[int]:
    return [*range(0, h, 8), *range(4, h, 8), *range(2, h, 4), *range(1, h, 2)]


def table(entries: bytes) -> tuple[int, bytes]:
    """(size bits, padded table) of a colour table."""
    n = len(entries) // 3
    bits = max(1, (n - 1).bit_length())
    return bits, entries + bytes(3 * (1 << bits) - len(entries))


def gif(screen, global_table=None, background=0, frames=()) -> bytes:
    """frames: dicts with x, y, idx (2-D array), and optionally local (table), trans
    (transparency index), interlace, m (LZW code size), lzw (ready LZW data)."""
    b = bytearray(b"GIF89a") + struct.pack("<HH", *screen)
    if global_table is not None:
        bits, t = table(global_table)
        b += bytes([0x80 | (bits - 1), background, 0]) + t
    else:
        b += bytes([0, background, 0])
    for f in frames:
        trans = f.get("trans")
        if trans is not None or f.get("gce"):
            b += bytes([0x21, 0xF9, 4, int(trans is not None), 10, 0, trans or 0, 0])
        h, w = f["idx"].shape
        flags = 0x40 if f.get("interlace") else 0
        local = b""
        if f.get("local") is not None:
            bits, local = table(f["local"])
            flags |= 0x80 | (bits - 1)
        b += b"\x2c" + struct.pack("<HHHH", f["x"], f["y"], w, h) + bytes([flags]) + local
        m = f.get("m", 8)
        data = f.get("lzw")
        if data is None:
            order = interlace_order(h) if f.get("interlace") else range(h)
            data = lzw_plain([int(v) for r in order for v in f["idx"][r]], m)
        b += bytes([m]) + sub_blocks(data)
    b += b";"
    return bytes(b)


def colours(n: int, seed_shift: int = 0) -> bytes:
    """n distinct colours, none of them black and entry 0 bright, so that a fill with index 0
    is told apart from a fill with black."""
    rng = np.random.default_rng(1000 + seed_shift)
    c = rng.integers(16, 256, size=(n, 3), dtype=np.uint8)
    c[0] = (230, 40, 90)
    return c.tobytes()


def pattern(h: int, w: int, n: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return ((x * 3 + y * 5 + (x * y) // 3) % n).astype(np.uint8)


def make_gifs() -> dict[str, tuple[bytes, str]]:
    out: dict[str, tuple[bytes, str]] = {}
    pal = colours(256)
    frame = pattern(14, 20, 256)
    out["gif_offset.gif"] = (
        gif((40, 30), pal, background=7, frames=[dict(x=7, y=5, idx=frame)]),
        "40x30 screen, first frame 20x14 at (7, 5), global table of 256: the canvas outside "
        "the frame is index 0 (not the background index 7, not black)",
    )
    f = frame.copy()
    f[3:6, 4:12] = 3
    out["gif_offset_trns.gif"] = (
        gif((40, 30), pal, background=5, frames=[dict(x=9, y=11, idx=f, trans=3)]),
        "as gif_offset.gif with transparency index 3 (also used inside the frame): the "
        "canvas is index 3, and transparent pixels keep their palette colour",
    )
    local = colours(16, 1)
    out["gif_local_palette.gif"] = (
        gif((33, 21), pal, frames=[dict(x=5, y=4, idx=pattern(12, 17, 16), local=local, m=4)]),
        "local table of 16 colours on a frame at (5, 4): frame and canvas (index 0) looked up "
        "in the local table",
    )
    out["gif_past_screen.gif"] = (
        gif((20, 12), pal, frames=[dict(x=6, y=4, idx=pattern(16, 24, 256))]),
        "20x12 screen, frame 24x16 at (6, 4): Pillow enlarges the image to 30x20",
    )
    rows = pattern(23, 26, 256)
    m, data = pillow_lzw(rows, pal, interlace=True)
    out["gif_interlaced.gif"] = (
        gif((36, 31), pal, frames=[dict(x=3, y=6, idx=rows, interlace=True, m=m, lzw=data)]),
        "interlaced 26x23 frame at (3, 6), LZW data by Pillow's encoder",
    )
    second = pattern(30, 40, 256)[::-1].copy()
    out["gif_animated.gif"] = (
        gif(
            (40, 30),
            pal,
            frames=[
                dict(x=11, y=2, idx=frame, trans=9, gce=True),
                dict(x=0, y=0, idx=second),
            ],
        ),
        "two frames, the first 20x14 at (11, 2) with transparency index 9: only the first "
        "frame is decoded",
    )
    out["gif_no_palette.gif"] = (
        gif((24, 18), None, frames=[dict(x=4, y=3, idx=pattern(9, 13, 256), trans=77)]),
        "no colour table at all (Pillow mode L): each index is its gray level, canvas 77 "
        "(the transparency index)",
    )
    ramp = bytes(v for i in range(16) for v in (i, i, i))
    out["gif_gray_ramp.gif"] = (
        gif((22, 14), ramp, frames=[dict(x=2, y=1, idx=pattern(10, 15, 200))]),
        "global table that is the gray ramp 0..15 (Pillow keeps no palette, mode L): indices "
        "16..199 are their own gray level, not black",
    )
    short = colours(4, 2)
    out["gif_short_table.gif"] = (
        gif((18, 12), short, frames=[dict(x=3, y=2, idx=pattern(8, 11, 8), m=3)]),
        "global table of 4 colours, indices up to 7: indices past the table are black",
    )
    return out


# --------------------------------------------------------------------------------------
# TIFF


def set_extrasamples(b: bytes, value: int) -> bytes:
    b = bytearray(b)
    e = "<" if b[:2] == b"II" else ">"
    off = struct.unpack(e + "I", b[4:8])[0]
    for i in range(struct.unpack(e + "H", b[off : off + 2])[0]):
        p = off + 2 + 12 * i
        tag, typ, cnt = struct.unpack(e + "HHI", b[p : p + 8])
        if tag == 338:
            assert typ == 3 and cnt == 1, (typ, cnt)
            b[p + 8 : p + 10] = struct.pack(e + "H", value)
            return bytes(b)
    raise ValueError("no ExtraSamples tag")


def tiff(w, h, data: bytes, bps, spp, extra, order="<", compression=1) -> bytes:
    """A one-strip RGB(A) TIFF; `data` holds the samples, interleaved, in the file's byte
    order. compression 1 (none) or 8 (deflate)."""
    if compression == 8:
        data = zlib.compress(data, 9)
    e = order
    entries = [
        (256, 4, [w]),
        (257, 4, [h]),
        (258, 3, [bps] * spp),
        (259, 3, [compression]),
        (262, 3, [2]),
        (273, 4, [0]),
        (277, 3, [spp]),
        (278, 4, [h]),
        (279, 4, [len(data)]),
        (284, 3, [1]),
        (338, 3, list(extra)),
    ]
    head = (b"II" if e == "<" else b"MM") + struct.pack(e + "HI", 42, 8)
    blob_at = 8 + 2 + 12 * len(entries) + 4
    blobs = bytearray()
    ifd = bytearray(struct.pack(e + "H", len(entries)))
    strip = None
    for tag, typ, vals in entries:
        raw = b"".join(struct.pack(e + {3: "H", 4: "I"}[typ], v) for v in vals)
        if len(raw) <= 4:
            ifd += struct.pack(e + "HHI", tag, typ, len(vals)) + raw + bytes(4 - len(raw))
            if tag == 273:
                strip = len(ifd) - 4
        else:
            ifd += struct.pack(e + "HHII", tag, typ, len(vals), blob_at + len(blobs))
            blobs += raw
    ifd += struct.pack(e + "I", 0)
    ifd[strip : strip + 4] = struct.pack(e + "I", blob_at + len(blobs))
    return head + bytes(ifd) + bytes(blobs) + data


def premultiplied(h: int, w: int, bits: int) -> np.ndarray:
    """RGBA samples: alpha covers 0, 1, 2, 127, 128, 254, 255 and random values; colour
    samples are random, so many exceed alpha (clipped to 255 by the un-premultiply)."""
    top = (1 << bits) - 1
    a = RNG.integers(0, top + 1, size=(h, w))
    special = np.array([0, 1, 2, 127, 128, 254, 255]) * (top // 255)
    a[0, : len(special)] = special
    a[1, :] = top
    a[2, :] = 0
    rgb = RNG.integers(0, top + 1, size=(h, w, 3))
    low = rgb[h // 2 :] * a[h // 2 :, :, None] // top  # a truly premultiplied half
    rgb[h // 2 :] = low
    return np.concatenate([rgb, a[..., None]], -1)


def make_tiffs() -> dict[str, tuple[bytes, str]]:
    out: dict[str, tuple[bytes, str]] = {}
    px = premultiplied(24, 40, 8).astype(np.uint8)
    out["rgba_premul.tif"] = (
        tiff(40, 24, px.tobytes(), 8, 4, [1]),
        "8-bit RGBA, ExtraSamples 1 (associated alpha), uncompressed: Pillow un-premultiplies "
        "(CLIP8(v * 255 / a), 0 where a = 0); alpha 0 and 255 rows, colour above alpha",
    )
    buf = io.BytesIO()
    Image.fromarray(premultiplied(20, 36, 8).astype(np.uint8), "RGBA").save(
        buf, "TIFF", compression="tiff_lzw"
    )
    out["rgba_premul_lzw.tif"] = (
        set_extrasamples(buf.getvalue(), 1),
        "as rgba_premul.tif, LZW-compressed by Pillow (libtiff), ExtraSamples patched to 1",
    )
    px = premultiplied(18, 30, 8).astype(np.uint8)
    out["rgba_premul_deflate_be.tif"] = (
        tiff(30, 18, px.tobytes(), 8, 4, [1], order=">", compression=8),
        "as rgba_premul.tif, big-endian, deflate",
    )
    px = premultiplied(16, 24, 16).astype(">u2")
    out["rgba16_premul.tif"] = (
        tiff(24, 16, px.tobytes(), 16, 4, [1], order=">"),
        "16-bit RGBA, associated alpha, big-endian: Pillow (RGBa;16B) un-premultiplies the "
        "high bytes with the 8-bit formula",
    )
    px = premultiplied(12, 20, 8).astype(np.uint8)
    out["rgba_unassoc.tif"] = (
        tiff(20, 12, px.tobytes(), 8, 4, [2]),
        "8-bit RGBA, ExtraSamples 2 (unassociated alpha): stored colours kept",
    )
    return out


# --------------------------------------------------------------------------------------
# PNM


def pnm(magic: bytes, w: int, h: int, maxval: int, values: np.ndarray, header=b"") -> bytes:
    head = magic + b"\n" + header + b"%d %d\n%d\n" % (w, h, maxval)
    flat = values.reshape(-1)
    if magic in (b"P5", b"P6"):
        return head + flat.astype(np.uint8 if maxval < 256 else ">u2").tobytes()
    lines = []
    per_line = 9
    for i in range(0, len(flat), per_line):
        lines.append(b" ".join(b"%d" % v for v in flat[i : i + per_line]))
    body = b"\n".join(lines)
    # comments in the data: at a line start, and between two tokens
    body = body.replace(b"\n", b"\n# a comment line\n", 1)
    return head + body + b"\n"


def samples(h: int, w: int, bands: int, maxval: int, above: bool) -> np.ndarray:
    n = h * w * bands
    v = np.arange(n) % (maxval + 1)  # every value, halves included
    v = (v * 7919) % (maxval + 1) if maxval > 255 else v
    v = v.astype(np.int64)
    if above and maxval < 255:
        v[-5:] = [maxval + 1, 200, 255, maxval + 3, 254][:5]  # binary data above maxval
    return v.reshape(h, w, bands) if bands == 3 else v.reshape(h, w)


def make_pnms() -> dict[str, tuple[bytes, str]]:
    out: dict[str, tuple[bytes, str]] = {}
    out["rgb_max100.ppm"] = (
        pnm(b"P6", 13, 9, 100, samples(9, 13, 3, 100, True)),
        "P6, maxval 100: round(v / 100 * 255) half to even; values above maxval clip to 255",
    )
    out["gray_max100.pgm"] = (
        pnm(b"P5", 17, 7, 100, samples(7, 17, 1, 100, True), header=b"# header comment\n"),
        "P5, maxval 100, a comment in the header",
    )
    out["rgb_max1.ppm"] = (
        pnm(b"P6", 6, 4, 1, samples(4, 6, 3, 1, False)),
        "P6, maxval 1",
    )
    out["gray_max1_plain.pgm"] = (
        pnm(b"P2", 7, 5, 1, samples(5, 7, 1, 1, False)),
        "P2 (plain), maxval 1",
    )
    out["gray_max2.pgm"] = (
        pnm(b"P5", 5, 3, 2, samples(3, 5, 1, 2, True)),
        "P5, maxval 2: 1 -> 127.5 -> 128 (half to even)",
    )
    out["rgb_max100_plain.ppm"] = (
        pnm(b"P3", 11, 6, 100, samples(6, 11, 3, 100, False)),
        "P3 (plain), maxval 100, comments in the data",
    )
    out["rgb_max1000.ppm"] = (
        pnm(b"P6", 12, 8, 1000, samples(8, 12, 3, 1000, False)),
        "P6, maxval 1000: 16-bit samples scaled to 8 bits with Python's rounding",
    )
    out["rgb_max1000_plain.ppm"] = (
        pnm(b"P3", 9, 5, 1000, samples(5, 9, 3, 1000, False)),
        "P3 (plain), maxval 1000",
    )
    out["rgb_max65535.ppm"] = (
        pnm(b"P6", 10, 6, 65535, samples(6, 10, 3, 65535, False)),
        "P6, maxval 65535: round(v / 65535 * 255), not the high byte",
    )
    out["gray_max1000.pgm"] = (
        pnm(b"P5", 9, 6, 1000, samples(6, 9, 1, 1000, False)),
        "P5, maxval 1000 (Pillow mode I, round(v / 1000 * 65535)); documented deviation: "
        "expected is the high byte of Pillow's I values, where Pillow's convert('RGB') clips",
    )
    out["rgb_max255_plain.ppm"] = (
        pnm(b"P3", 8, 5, 255, samples(5, 8, 3, 255, False)),
        "P3 (plain), maxval 255, comments in the data (the image crate refuses them)",
    )
    return out


# --------------------------------------------------------------------------------------


def pillow_rgb(data: bytes) -> np.ndarray:
    im = Image.open(io.BytesIO(data))
    if im.mode == "I":  # 16-bit gray PNM: the crate's documented high byte
        v = np.asarray(im).astype(np.int64)
        assert v.max() <= 65535
        return np.repeat((v >> 8).astype(np.uint8)[..., None], 3, -1)
    return np.ascontiguousarray(np.asarray(im.convert("RGB")))


def opens(data: bytes) -> bool:
    try:
        pillow_rgb(data)
        return True
    except Exception:  # noqa: BLE001: any refusal counts
        return False


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    files = {**make_gifs(), **make_tiffs(), **make_pnms()}
    tensors = {}
    notes = {}
    truncations: dict[str, dict[str, bool]] = {}
    for name, (data, note) in files.items():
        (OUT / name).write_bytes(data)
        rgb = pillow_rgb(data)
        tensors[name] = rgb
        notes[name] = note
        print(f"{name}: {len(data)} bytes, {rgb.shape[1]}x{rgb.shape[0]}")
        if name.endswith((".gif", ".ppm", ".pgm")):
            n = len(data)
            cuts = sorted({n - 1, n - 2, n - 3, n - 8, n // 2, 30, 14})
            truncations[name] = {str(c): opens(data[:c]) for c in cuts if 0 < c < n}
    meta = {
        "pillow": PIL.__version__,
        "numpy": np.__version__,
        "notes": json.dumps(notes),
        "truncations": json.dumps(truncations),
    }
    save_file(tensors, str(OUT / "expected.safetensors"), metadata=meta)
    lines = [
        "# Decoding fixtures",
        "",
        "Written by `tools/make_decode_fixtures.py` (synthetic patterns, no third-party "
        f"content), with Pillow {PIL.__version__}. `expected.safetensors` holds Pillow's "
        "`convert(\"RGB\")` pixels of each file; `tests/decode_reference.rs` compares them bit "
        "for bit.",
        "",
        "| file | bytes | what it exercises |",
        "| --- | --- | --- |",
    ]
    lines += [f"| `{n}` | {len(d)} | {note} |" for n, (d, note) in files.items()]
    (OUT / "README.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
