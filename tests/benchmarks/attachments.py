"""Benchmark: what a photo upload costs in `gridmap.cases.attachments.prepare` (sniff, header pixel check, EXIF GPS,
decode, orientation, re-encode, thumbnail) — the part of POST /api/v1/cases/{id}/attachments a grid worker waits
for besides the network — and how fast bad files are refused.

    .venv/bin/python tests/benchmarks/attachments.py

Inputs are made here: phone-like JPEGs (smooth content with noise, EXIF with orientation 6 and GPS) of 3, 12 and
48 megapixels, a 1,000 × 800 PNG screenshot, a lossy WebP, and the refusals: an HTML page named .jpg, an SVG, and a
30,000 × 30,000 1-bit PNG decompression bomb (~100 KB). Prints best and median of REPS runs, in milliseconds, with
the stored size. Figures are measurements on this machine at this moment (shared CPUs: run it twice).
"""

from __future__ import annotations

import io
import statistics
import struct
import sys
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from gridmap.cases import attachments  # noqa: E402

REPS = 5


def phone_jpeg(width: int, height: int) -> bytes:
    rng = np.random.default_rng(width)
    small = (rng.random((height // 10, width // 10, 3)) * 255).astype("uint8")
    image = Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps.update({1: "N", 2: (25.0, 2.0, 30.5), 3: "E", 4: (102.0, 43.0, 12.25)})
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90, exif=exif)
    return out.getvalue()


def encoded(image: Image.Image, fmt: str, **kw) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **kw)
    return out.getvalue()


def bomb(side: int = 30_000) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    packer = zlib.compressobj(9)
    row = b"\x00" * (1 + side // 8)
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
        + chunk(b"IDAT", idat)
        + chunk(b"IEND", b"")
    )


def timed(data: bytes, limits: attachments.Limits) -> tuple[list[float], str]:
    times, outcome = [], ""
    for _ in range(REPS):
        started = time.perf_counter()
        try:
            prepared = attachments.prepare(data, limits)
            outcome = (
                f"stored {prepared.content_type} {prepared.width}×{prepared.height}, "
                f"{len(prepared.data) / 1024:,.0f} KB; thumbnail {prepared.thumb_width}×{prepared.thumb_height}"
                f"; gps {'yes' if prepared.gps else 'no'}"
            )
        except attachments.InvalidInput as exc:
            outcome = f"refused: {exc.message[:70]}"
        times.append((time.perf_counter() - started) * 1000)
    return times, outcome


def main() -> None:
    limits = attachments.Limits(max_bytes=25 * 1024 * 1024, max_pixels=50_000_000)
    cases = [
        ("phone JPEG 3 MP", phone_jpeg(2000, 1500)),
        ("phone JPEG 12 MP", phone_jpeg(4000, 3000)),
        ("phone JPEG 48 MP", phone_jpeg(8000, 6000)),
        ("PNG screenshot", encoded(Image.new("RGB", (1000, 800), (240, 240, 240)), "PNG")),
        (
            "WebP 2 MP",
            encoded(
                Image.fromarray((np.random.default_rng(3).random((120, 160, 3)) * 255).astype("uint8")).resize(
                    (1600, 1200)
                ),
                "WEBP",
                quality=80,
            ),
        ),
        ("HTML named .jpg", b"<!DOCTYPE html><html><script>alert(1)</script></html>"),
        ("SVG named .jpg", b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'),
        ("PNG bomb 30,000²", bomb()),
    ]
    print(f"gridmap.cases.attachments.prepare, best / median of {REPS} (ms)")
    for name, data in cases:
        times, outcome = timed(data, limits)
        print(
            f"  {name:<18} {len(data) / 1024:>9,.0f} KB in  {min(times):>8.1f} / {statistics.median(times):>8.1f}"
            f"   {outcome}"
        )


if __name__ == "__main__":
    main()
