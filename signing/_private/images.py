"""Default signature images for the dev PKI and demos: a red round seal and a handwriting-like stroke.

Real agencies supply their own scanned seal and signature (``--image PNG``); these only make demos
look like the documents clerks know.
"""

from __future__ import annotations

import functools
import io
import math

from PIL import Image, ImageDraw

SEAL_RED = (200, 16, 30, 255)


@functools.cache
def seal_png(size: int = 360) -> bytes:
    """A red seal: two rings and a star, transparent background."""
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    c = size / 2
    for radius, width in ((c - 4, 10), (c * 0.72, 5)):
        draw.ellipse((c - radius, c - radius, c + radius, c + radius), outline=SEAL_RED, width=width)
    points = []
    for i in range(10):
        r = c * (0.42 if i % 2 == 0 else 0.17)
        angle = -math.pi / 2 + i * math.pi / 5
        points.append((c + r * math.cos(angle), c + r * math.sin(angle)))
    draw.polygon(points, fill=SEAL_RED)
    return _png(image)


@functools.cache
def handwriting_png(width: int = 480, height: int = 180) -> bytes:
    """A blue scribble standing in for a handwritten signature."""
    image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    points = [
        (x, height / 2 + math.sin(x / 23.0) * height / 4 + math.sin(x / 7.0) * height / 12)
        for x in range(20, width - 20, 2)
    ]
    draw.line(points, fill=(20, 40, 160, 255), width=6, joint="curve")
    draw.line([(40, height * 0.8), (width - 60, height * 0.72)], fill=(20, 40, 160, 255), width=4)
    return _png(image)


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
