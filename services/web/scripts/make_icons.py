"""Draws the app's icons (a yellow star on the party red) as PNGs, with the standard library.

python services/web/scripts/make_icons.py
"""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

STATIC = Path(__file__).resolve().parents[1] / "src" / "sotay_web" / "static"
RED, YELLOW = (158, 17, 17), (255, 221, 0)


def star(size: int) -> list[tuple[float, float]]:
    cx = cy = size / 2
    outer, inner = size * 0.36, size * 0.36 * 0.382
    points = []
    for i in range(10):
        radius = outer if i % 2 == 0 else inner
        angle = -math.pi / 2 + i * math.pi / 5
        points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
    return points


def inside(x: float, y: float, polygon: list[tuple[float, float]]) -> bool:
    hit = False
    for (x1, y1), (x2, y2) in zip(polygon, polygon[1:] + polygon[:1], strict=True):
        if (y1 > y) != (y2 > y) and x < (x2 - x1) * (y - y1) / (y2 - y1) + x1:
            hit = not hit
    return hit


def png(size: int) -> bytes:
    polygon = star(size)
    rows = b"".join(
        b"\x00"
        + b"".join(bytes(YELLOW if inside(x + 0.5, y + 0.5, polygon) else RED) for x in range(size))
        for y in range(size)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


if __name__ == "__main__":
    for size in (48, 192, 512):
        (STATIC / f"icon-{size}.png").write_bytes(png(size))
