"""A small baseline JPEG writer for the layouts Pillow cannot write: any sampling factors per
component (4:1:1, 4:4:0), four-component YCCK with an Adobe marker (transform 2), and
three-component RGB without colour transform (Adobe transform 0).

Used only by tools/make_preprocess_fixtures.py to make decoder inputs; the expected pixels
always come from Pillow decoding the written file, so this writer only has to produce valid
JPEG streams, not good ones. Fixed-length Huffman codes (4 bits for the 12 DC categories,
8 bits for the 162 AC symbols) keep it short and are valid baseline tables. Deterministic: the
same arrays give the same bytes.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

# Annex K.1 luminance table; scaled like libjpeg's quality 85 for every component.
_K1 = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
]).reshape(8, 8)
QUANT = np.clip((_K1 * 30 + 50) // 100, 1, 255)

ZIGZAG = sorted(range(64), key=lambda k: (k // 8 + k % 8, k // 8 if (k // 8 + k % 8) % 2 else -(k // 8)))

_n = np.arange(8)
_C = np.sqrt(2 / 8) * np.cos((2 * _n[None, :] + 1) * _n[:, None] * np.pi / 16)
_C[0] /= np.sqrt(2)  # orthonormal DCT-II: JPEG's FDCT

DC_SYMBOLS = list(range(12))
AC_SYMBOLS = [0x00, 0xF0] + [(run << 4) | size for run in range(16) for size in range(1, 11)]


def _codes(symbols: list[int], length: int) -> dict[int, tuple[int, int]]:
    """Canonical codes of one length: the k-th symbol gets code k."""
    return {s: (k, length) for k, s in enumerate(symbols)}


DC_CODES, AC_CODES = _codes(DC_SYMBOLS, 4), _codes(AC_SYMBOLS, 8)


class _Bits:
    def __init__(self) -> None:
        self.out = bytearray()
        self.acc = 0
        self.n = 0

    def put(self, value: int, n: int) -> None:
        for i in range(n - 1, -1, -1):
            self.acc = (self.acc << 1) | ((value >> i) & 1)
            self.n += 1
            if self.n == 8:
                self.out.append(self.acc)
                if self.acc == 0xFF:
                    self.out.append(0)  # byte stuffing
                self.acc, self.n = 0, 0

    def align(self) -> None:
        """Pads the last byte with 1 bits, as before a marker."""
        while self.n:
            self.put(1, 1)


def _category(v: int) -> tuple[int, int]:
    """(size, the size bits) of a coefficient difference."""
    s = abs(v).bit_length()
    return s, (v if v >= 0 else v + (1 << s) - 1)


def _block_coefficients(block: np.ndarray) -> list[int]:
    f = _C @ (block.astype(np.float64) - 128) @ _C.T
    q = np.round(f / QUANT).astype(int).reshape(64)
    return [int(q[k]) for k in ZIGZAG]


def _segment(marker: int, body: bytes) -> bytes:
    return struct.pack(">HH", marker, len(body) + 2) + body


def write(path: Path, planes: list[np.ndarray], sampling: list[tuple[int, int]],
          adobe_transform: int | None = None, restart_interval: int = 0) -> None:
    """Writes full-resolution `planes` (uint8 [H, W] each, already in the JPEG's colour space)
    with per-component (h, v) sampling factors; chroma is box-averaged down."""
    h_img, w_img = planes[0].shape
    hmax = max(h for h, _ in sampling)
    vmax = max(v for _, v in sampling)
    mcux = -(-w_img // (8 * hmax))
    mcuy = -(-h_img // (8 * vmax))
    comps = []
    for plane, (h, v) in zip(planes, sampling):
        full = np.pad(plane, ((0, mcuy * 8 * vmax - h_img), (0, mcux * 8 * hmax - w_img)), mode="edge")
        fy, fx = vmax // v, hmax // h
        small = full.reshape(full.shape[0] // fy, fy, full.shape[1] // fx, fx).astype(np.float64)
        comps.append(np.round(small.mean(axis=(1, 3))).astype(np.uint8))

    bits = _Bits()
    preds = [0] * len(planes)
    rst = 0
    for my in range(mcuy):
        for mx in range(mcux):
            n = my * mcux + mx
            if restart_interval and n and n % restart_interval == 0:
                bits.align()
                bits.out += bytes([0xFF, 0xD0 + rst])
                rst = (rst + 1) % 8
                preds = [0] * len(planes)
            for ci, (h, v) in enumerate(sampling):
                for by in range(v):
                    for bx in range(h):
                        y0, x0 = (my * v + by) * 8, (mx * h + bx) * 8
                        zz = _block_coefficients(comps[ci][y0:y0 + 8, x0:x0 + 8])
                        size, b = _category(zz[0] - preds[ci])
                        preds[ci] = zz[0]
                        bits.put(*DC_CODES[size])
                        bits.put(b, size)
                        run = 0
                        for c in zz[1:]:
                            if c == 0:
                                run += 1
                                continue
                            while run > 15:
                                bits.put(*AC_CODES[0xF0])
                                run -= 16
                            size, b = _category(c)
                            bits.put(*AC_CODES[(run << 4) | size])
                            bits.put(b, size)
                            run = 0
                        if run:
                            bits.put(*AC_CODES[0x00])
    bits.align()

    out = b"\xff\xd8"
    if adobe_transform is None:
        out += _segment(0xFFE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    else:
        out += _segment(0xFFEE, b"Adobe" + struct.pack(">HHHB", 100, 0, 0, adobe_transform))
    out += _segment(0xFFDB, bytes([0]) + bytes(int(QUANT.reshape(64)[k]) for k in ZIGZAG))
    sof = struct.pack(">BHHB", 8, h_img, w_img, len(planes))
    for ci, (h, v) in enumerate(sampling):
        sof += bytes([ci + 1, (h << 4) | v, 0])
    out += _segment(0xFFC0, sof)

    def dht(cls_id: int, symbols: list[int], length: int) -> bytes:
        counts = [0] * 16
        counts[length - 1] = len(symbols)
        return _segment(0xFFC4, bytes([cls_id] + counts + symbols))

    out += dht(0x00, DC_SYMBOLS, 4) + dht(0x10, AC_SYMBOLS, 8)
    if restart_interval:
        out += _segment(0xFFDD, struct.pack(">H", restart_interval))
    sos = bytes([len(planes)]) + b"".join(bytes([ci + 1, 0x00]) for ci in range(len(planes)))
    out += _segment(0xFFDA, sos + bytes([0, 63, 0]))
    out += bytes(bits.out) + b"\xff\xd9"
    path.write_bytes(out)


def rgb_to_ycc(rgb: np.ndarray) -> list[np.ndarray]:
    """JFIF's RGB -> YCbCr, rounded: the three planes."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b + 128
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b + 128
    return [np.clip(np.round(p), 0, 255).astype(np.uint8) for p in (y, cb, cr)]
