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


@pytest.mark.parametrize("whole", [True, False], ids=["volume-read-whole", "three-slices-read"])
@pytest.mark.parametrize("fixture", ["example_store", "corpus_reference"])
def test_thumbnail_views_are_the_middle_slices_of_the_first_volume(fixture, whole, request, monkeypatch):
    """The three views (read with the volume, or alone for a large volume) equal the middle slices of the
    first volume."""
    import zarr

    from medipy.engine import thumbnails
    from medipy.engine.thumbnails import _views

    if not whole:
        monkeypatch.setattr(thumbnails, "WHOLE_VOLUME_BYTES", 0)

    _, store = request.getfixturevalue(fixture)
    report = json.loads((store / "report.json").read_text())
    layouts = set()
    for stack in report["stacks"]:
        group = zarr.open_group(store=str(store / stack["path"]), mode="r")
        four_d = bool(group.attrs["medipy"].get("volume_axis"))
        volume = group["0"][0] if four_d else group["0"][...]
        colour = volume.ndim == 4
        if colour:
            volume = np.moveaxis(volume, 0, -1)  # (c, z, y, x) -> (z, y, x, c)
        depth, rows, cols = volume.shape[:3]
        views, is_colour, got_depth = _views(group["0"], four_d)
        assert (is_colour, got_depth) == (colour, depth)
        for view, expected in zip(views, [volume[depth // 2], volume[:, rows // 2], volume[:, :, cols // 2]],
                                  strict=True):
            np.testing.assert_array_equal(view, expected, err_msg=stack["path"])
        layouts.add((four_d, colour))
    assert len(layouts) >= 2 if fixture == "example_store" else (True, False) in layouts


@pytest.mark.parametrize("fixture", ["example_store", "corpus_reference"])
def test_report_thumbnails_equal_those_read_back_from_the_store(fixture, request):
    """Small stacks get their thumbnail from their writer (values in memory): the same PNG as read back."""
    from medipy.engine.thumbnails import stack_thumbnail

    _, store = request.getfixturevalue(fixture)
    page = (store / "report.html").read_text(encoding="utf-8")
    found = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([^"]+)"', page)
    assert found
    for name, data in found:
        assert base64.b64decode(data) == stack_thumbnail(str(store / name / "0")), name


def test_writers_make_the_thumbnails_of_small_stacks(testdata, tmp_path):
    import zarr

    from medipy.engine import ClusterOptions
    from medipy.engine.cluster import open_runner
    from medipy.engine.conversion import plan_export, write_stacks
    from medipy.engine.thumbnails import stack_thumbnail
    from medipy.engine.walk import collect_files
    from medipy.engine.zarr_sink import SinkOptions, stack_bytes

    source = testdata / "dcm_qa_nih"
    store = str(tmp_path / "out.zarr")
    zarr.open_group(store=store, mode="w")
    made: dict[str, bytes] = {}
    with open_runner(ClusterOptions("processes", workers=2)) as runner:
        plans, _ = plan_export(collect_files(source).paths, runner)
        stacks = [s for p in plans for s in p.stacks]
        write_stacks(store, stacks, runner, SinkOptions(), source_root=str(source), thumbnails=made)
    assert sorted(made) == sorted(s.path for s in stacks)  # all small: GE fMRI 4D, Siemens mosaics
    assert any(s.is_4d for s in stacks)
    assert all(stack_bytes(s) < 8 << 20 for s in stacks)
    for path, png in made.items():
        assert png == stack_thumbnail(f"{store}/{path}/0"), path
