"""The HTML report: it exists, holds one thumbnail per stack, and the thumbnails are not blank."""

from __future__ import annotations

import base64
import json
import re
import struct
import zlib

import numpy as np
import pytest


def decode_png(data: bytes) -> np.ndarray:
    """A minimal PNG reader (8-bit grey or RGB, not interlaced, any filter type)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, idat, header = 8, b"", None
    while position < len(data):
        (length,) = struct.unpack(">I", data[position:position + 4])
        kind, body = data[position + 4:position + 8], data[position + 8:position + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        position += 12 + length
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8
    assert colour in (0, 2)
    assert interlace == 0
    channels = 3 if colour == 2 else 1
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(height, 1 + width * channels)
    assert (raw[:, 0] == 0).all(), "medipy writes filter type 0"
    return raw[:, 1:].reshape(height, width, channels)


def _thumbnails(store) -> tuple[list[str], list[np.ndarray]]:
    page = (store / "report.html").read_text(encoding="utf-8")
    found = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([^"]+)"', page)
    return [name for name, _ in found], [decode_png(base64.b64decode(data)) for _, data in found]


@pytest.mark.parametrize("fixture", ["example_store", "corpus_reference"])
def test_one_thumbnail_per_stack(fixture, request):
    _, store = request.getfixturevalue(fixture)
    report = json.loads((store / "report.json").read_text())
    names, images = _thumbnails(store)
    assert sorted(names) == sorted(s["path"] for s in report["stacks"])
    not_blank = [image.std() > 0 for image in images]
    if fixture == "example_store":
        assert all(not_blank)
    else:  # a few corpus stacks are constant on purpose (e.g. blank or synthetic images)
        assert sum(not_blank) >= 0.9 * len(images)
    assert all(image.shape[0] <= 128 and image.shape[1] <= 3 * 128 + 8 for image in images)


def test_colour_and_volume_thumbnails(example_store):
    _, store = example_store
    names, images = _thumbnails(store)
    report = {s["path"]: s for s in json.loads((store / "report.json").read_text())["stacks"]}
    for name, image in zip(names, images, strict=True):
        stack = report[name]
        if stack["modality"] == "US":
            assert image.shape[2] == 3
        if stack["modality"] == "RTDOSE":  # a 15-slice volume: three views side by side
            assert image.shape[1] > image.shape[0]
