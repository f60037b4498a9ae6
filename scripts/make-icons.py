#!/usr/bin/env python3
"""Draw the web app icons (app/ui/static/icon-192.png, icon-512.png) from the same
shapes as icon.svg: a dark rounded square with a yellow "M". Pure Python (zlib),
so no image library is needed; run it again after changing the design."""

from __future__ import annotations

import itertools
import math
import struct
import zlib
from pathlib import Path

STATIC = Path(__file__).resolve().parents[1] / "app" / "ui" / "static"
BACKGROUND = (0x12, 0x23, 0x3D)
STROKE = (0xFF, 0xD5, 0x4F)
# icon.svg's path, in its 32-unit box; maskable icons keep the mark in the middle 80 %
POINTS = [(7.0, 23.0), (7.0, 9.0), (16.0, 17.0), (25.0, 9.0), (25.0, 23.0)]
HALF_WIDTH = 1.6


def _segment_distance(
    px: float, py: float, a: tuple[float, float], b: tuple[float, float]
) -> float:
    ax, ay = a
    bx, by = b
    dx, dy = bx - ax, by - ay
    t = max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)))
    return math.hypot(px - (ax + t * dx), py - (ay + t * dy))


def draw(size: int) -> bytes:
    scale = size / 32.0
    rows = []
    for y in range(size):
        row = bytearray([0])  # filter: none
        for x in range(size):
            u, v = (x + 0.5) / scale, (y + 0.5) / scale
            near = min(_segment_distance(u, v, a, b) for a, b in itertools.pairwise(POINTS))
            row += bytes(STROKE if near <= HALF_WIDTH else BACKGROUND)
        rows.append(bytes(row))
    raw = b"".join(rows)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


if __name__ == "__main__":
    for size in (192, 512):
        (STATIC / f"icon-{size}.png").write_bytes(draw(size))
