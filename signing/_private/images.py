"""Default signature images for the dev PKI and demos: a red round seal and a handwriting-like stroke.

Real agencies supply their own scanned seal and signature (``--image PNG``); these only make demos
look like the documents clerks know.
"""

from __future__ import annotations

import functools
import io
import math
from typing import Any

from PIL import Image, ImageDraw
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.images import pil_image
from pyhanko.pdf_utils.writer import BasePdfFileWriter

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


# --- image XObjects, compressed once ----------------------------------------------------------------

_XObject = tuple[list[tuple[Any, Any]], bytes, "_XObject | None"]  # dictionary entries, encoded data, its /SMask
_XOBJECTS: dict[bytes, _XObject] = {}
_MAX_XOBJECTS = 64


def image_xobject(png: bytes, image: Image.Image, writer: BasePdfFileWriter) -> generic.IndirectObject:
    """``pyhanko.pdf_utils.images.pil_image(image, writer)``, compressing each image (``png``) only once.

    pyHanko deflates the pixels (and the alpha channel, as a soft mask) for every document, ~1 ms for a
    seal. The first time, its output is recorded (dictionary entries in order, encoded bytes, the soft
    mask likewise); after that, the same objects are written from the record: the same bytes.
    """
    recorded = _XOBJECTS.get(png)
    if recorded is None:
        ref: generic.IndirectObject = pil_image(image, writer)
        if len(_XOBJECTS) >= _MAX_XOBJECTS:
            _XOBJECTS.clear()
        _XOBJECTS[png] = _record(ref.get_object())
        return ref
    return _replay(recorded, writer)


def _record(stream: generic.StreamObject) -> _XObject:
    smask = stream.get("/SMask")
    return (list(stream.items()), stream.encoded_data, _record(smask.get_object()) if smask is not None else None)


def _replay(recorded: _XObject, writer: BasePdfFileWriter) -> generic.IndirectObject:
    entries, encoded, smask = recorded
    smask_ref = _replay(smask, writer) if smask is not None else None  # written first, as pil_image does
    values = {name: smask_ref if name == "/SMask" else value for name, value in entries}
    return writer.add_object(generic.StreamObject(values, encoded_data=encoded))
