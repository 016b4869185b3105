"""Thumbnails: the middle slice of each axis of a stored stack, windowed, as one small PNG.

:func:`stack_thumbnail` runs where the engine computes (:func:`stack_thumbnails`: several stacks per task):
it reads the three middle slices of the first volume from the OME-Zarr array (only those, not the volume),
resamples them to square pixels (using the stored spacing), windows them to the 1st-99th percentile of
their values (colour images are shown as stored) and returns a PNG (written with zlib; no imaging library
needed). A single slice is shown alone.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from collections.abc import Sequence

import numpy as np

from medipy.engine.zarr_sink import medipy_attributes

__all__ = ["encode_png", "stack_thumbnail", "stack_thumbnails", "volume_thumbnail", "window"]

logger = logging.getLogger(__name__)

SIDE = 128  #: the longest side of each of the three views, in pixels
GAP = 4


def encode_png(pixels: np.ndarray) -> bytes:
    """Encode an 8-bit image, (h, w) grey or (h, w, 3) RGB, as PNG bytes.

    Examples
    --------
    >>> encode_png(np.zeros((2, 3), np.uint8))[:8]
    b'\\x89PNG\\r\\n\\x1a\\n'
    """
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    height, width = pixels.shape[:2]
    colour = 2 if pixels.ndim == 3 else 0
    rows = pixels.reshape(height, -1)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)  # filter type 0 on every row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def window(values: np.ndarray, low: float = 1.0, high: float = 99.0) -> np.ndarray:
    """Map values to 0-255 between their ``low`` and ``high`` percentiles (finite values only)."""
    data = np.asarray(values, dtype=np.float64)
    finite = data[np.isfinite(data)]
    if finite.size == 0:
        return np.zeros(data.shape, np.uint8)
    lo, hi = np.percentile(finite, [low, high])
    if hi <= lo:
        lo, hi = float(finite.min()), float(finite.max())
    if hi <= lo:
        hi = lo + 1.0
    scaled = (np.nan_to_num(data, nan=lo) - lo) / (hi - lo)
    return (np.clip(scaled, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _resample(view: np.ndarray, row_mm: float, col_mm: float) -> np.ndarray:
    """Nearest-neighbour resampling to square pixels, the longest side at most :data:`SIDE`."""
    rows, cols = view.shape[:2]
    height, width = rows * max(row_mm, 1e-6), cols * max(col_mm, 1e-6)
    scale = SIDE / max(height, width)
    out_h, out_w = max(1, round(height * scale)), max(1, round(width * scale))
    r = np.minimum((np.arange(out_h) + 0.5) / out_h * rows, rows - 1).astype(int)
    c = np.minimum((np.arange(out_w) + 0.5) / out_w * cols, cols - 1).astype(int)
    return view[r][:, c]


#: A first volume of at most this many bytes is read whole (one read); a larger one three slices at a time.
WHOLE_VOLUME_BYTES = 64 * 1024 * 1024


def _middle(volume, index: tuple[int, ...], colour: bool) -> list[np.ndarray]:
    """The middle z, y and x slices of ``volume[index]`` (an array or a zarr array), samples last."""
    shape = volume.shape[len(index):]  # ([c,] z, y, x)
    views = []
    for axis, size in enumerate(shape[-3:]):
        where: list[slice | int] = [slice(None)] * len(shape)
        where[len(shape) - 3 + axis] = size // 2
        view = np.asarray(volume[(*index, *where)])
        views.append(np.moveaxis(view, 0, -1) if colour else view)  # (c, a, b) -> (a, b, c)
    return views


def _views(array, four_d: bool) -> tuple[list[np.ndarray], bool, int]:
    """The middle z, y and x slices of the first volume of a stored array, whether they are colour (then with
    samples last), and the volume's depth. A large volume is not read whole: only the three slices are kept
    in memory."""
    lead = (0,) if four_d else ()
    shape = array.shape[len(lead):]  # ([c,] z, y, x)
    colour = len(shape) == 4
    if int(np.prod(shape)) * array.dtype.itemsize <= WHOLE_VOLUME_BYTES:  # one read costs less than three
        return _middle(np.asarray(array[lead] if lead else array[...]), (), colour), colour, shape[-3]
    return _middle(array, lead, colour), colour, shape[-3]


def volume_thumbnail(volume: np.ndarray, spacing: Sequence[float]) -> bytes:
    """The thumbnail of an image volume in memory, as :func:`stack_thumbnail` makes it from the stored array
    (a writer that holds the values makes it here).

    Parameters
    ----------
    volume
        (z, y, x) values, or colour (z, y, x, samples).
    spacing
        Voxel size (z, y, x) in mm.

    Returns
    -------
    bytes
        A PNG (see :func:`stack_thumbnail`).
    """
    colour = volume.ndim == 4
    views = _middle(np.moveaxis(volume, -1, 0) if colour else volume, (), colour)
    return _sheet(views, colour, volume.shape[0], spacing)


def stack_thumbnails(array_paths: Sequence[str]) -> list[bytes]:
    """:func:`stack_thumbnail` of several stored images (one task for many small stacks).

    Parameters
    ----------
    array_paths
        Full-resolution arrays of image groups.

    Returns
    -------
    list of bytes
        Their PNGs, in the same order.
    """
    return [stack_thumbnail(path) for path in array_paths]


def stack_thumbnail(array_path: str) -> bytes:
    """The PNG thumbnail of the stored image at ``array_path`` (``<store>/<stack>/0``).

    Parameters
    ----------
    array_path
        The full-resolution array of an image group written by :mod:`medipy.engine.zarr_sink`.

    Returns
    -------
    bytes
        A PNG: the middle axial (z), coronal (y) and sagittal (x) slices of the first volume, side by side.
    """
    import zarr

    array = zarr.open_array(store=array_path, mode="r")
    group = zarr.open_group(store=os.path.dirname(array_path), mode="r")
    attrs = medipy_attributes(group)
    views, colour, depth = _views(array, bool(attrs.get("volume_axis")))
    return _sheet(views, colour, depth, attrs.get("spacing") or [1.0, 1.0, 1.0])


def _sheet(middle: list[np.ndarray], colour: bool, depth: int, spacing: Sequence[float]) -> bytes:
    """The PNG of the three middle slices side by side, windowed (grey) and resampled to square pixels."""
    axial, coronal, sagittal = middle
    sz, sy, sx = (list(spacing) + [1.0] * 3)[:3]
    views = [(axial, sy, sx), (coronal, sz, sx), (sagittal, sz, sy)]
    if depth == 1:  # one slice: the other two views would be lines
        views = views[:1]
    if colour:
        shown = [np.clip(v, 0, 255).astype(np.uint8) if v.dtype != np.uint8 else v for v, _, _ in views]
    else:
        flat = np.concatenate([v.ravel() for v, _, _ in views])
        windowed = window(flat)
        sizes = np.cumsum([0] + [v.size for v, _, _ in views])
        shown = [windowed[sizes[i]:sizes[i + 1]].reshape(v.shape) for i, (v, _, _) in enumerate(views)]
    panels = [_resample(p, row_mm, col_mm) for p, (_, row_mm, col_mm) in zip(shown, views, strict=True)]
    height = max(p.shape[0] for p in panels)
    width = sum(p.shape[1] for p in panels) + GAP * (len(panels) - 1)
    sheet = np.zeros((height, width, *panels[0].shape[2:]), np.uint8)
    x = 0
    for panel in panels:
        top = (height - panel.shape[0]) // 2
        sheet[top:top + panel.shape[0], x:x + panel.shape[1]] = panel
        x += panel.shape[1] + GAP
    return encode_png(sheet)
