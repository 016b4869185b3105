"""Resampling of a gantry-tilted or unevenly spaced stack to a regular grid (dcm2niix's ``_Tilt``/``_Eq``).

:func:`medipy.io.dicom.image` keeps what was acquired: a gantry-tilted stack gets a sheared affine that puts
every voxel where it was measured, and uneven slice gaps are reported in the metadata. Many tools want an
orthogonal, evenly spaced grid instead; :func:`resample_regular` makes one, as dcm2niix does:

* tilt: each slice stays in its plane and is shifted in-plane (linear interpolation along the rows and
  columns) so that the slices stack along their normal; the slice grid grows by the largest shift, and
  voxels no slice covers get the darkest value of the image (dcm2niix ``_Tilt``);
* uneven spacing: slices are re-spaced along the normal at the smallest gap between acquired slices,
  interpolating linearly between the two nearest acquired slices (dcm2niix ``_Eq``).

Integer images stay integer (values rounded, as dcm2niix does). The last three axes are (z, y, x); a 4D
image (volumes first) is resampled volume by volume.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from medipy.base import Image
from medipy.errors import GeometryError
from medipy.io.dicom.geometry import POSITION_TOLERANCE

__all__ = ["resample_regular", "slice_positions"]

logger = logging.getLogger(__name__)


def slice_positions(image: Image) -> np.ndarray:
    """Image Position (Patient) (LPS, x, y, z) of every slice of ``image``, shape (z, 3).

    Taken from the per-slice metadata of :func:`medipy.io.dicom.image` where positions vary, else from the
    affine (evenly spaced slices).
    """
    count = image.data.shape[-3]
    positions = image.metadata.get("per_slice", {}).get("ImagePositionPatient")
    if positions is not None and len(positions) == count and all(p is not None for p in positions):
        return np.asarray(positions, float)
    affine = image.lps_affine
    return affine[:3, 3] + np.arange(count)[:, None] * affine[:3, 0]


def _shift_axis(data: np.ndarray, axis: int, start: float, size: int, fill: float) -> np.ndarray:
    """Sample ``data`` (2D) along ``axis`` at ``start + arange(size)`` by linear interpolation.

    As dcm2niix (whose rows are stored bottom-up): samples in (-1, 0) take the first row, samples outside
    (-1, n - 1] are ``fill``.
    """
    n = data.shape[axis]
    coords = start + np.arange(size, dtype=float)
    inside = (coords > -1.0) & (coords <= n - 1 + 1e-6)
    floor = np.floor(coords + 1e-9).astype(int)
    low = np.clip(floor, 0, n - 1)
    high = np.clip(floor + 1, 0, n - 1)
    frac = np.clip(coords - floor, 0.0, 1.0)
    moved = np.moveaxis(data.astype(np.float64), axis, 0)
    out = moved[low] * (1.0 - frac)[:, None] + moved[high] * frac[:, None]
    out[~inside] = fill
    return np.moveaxis(out, 0, axis)


def _cast(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.round(values), info.min, info.max).astype(dtype)
    return values.astype(dtype)


def _untilt(data: np.ndarray, image: Image, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shift each slice in-plane so that the slices stack along the normal; returns data, origin, normal."""
    affine = image.lps_affine
    column, row = affine[:3, 1], affine[:3, 2]  # one step along j (down the rows), along i (along a row)
    normal = np.cross(row, column)
    normal /= np.linalg.norm(normal)
    if np.dot(positions[-1] - positions[0], normal) < 0:
        normal = -normal
    offsets = positions - positions[0]
    shift_j = offsets @ column / np.dot(column, column)  # in-plane offset of each slice, in voxels
    shift_i = offsets @ row / np.dot(row, row)
    # the output grid extends the acquired one by whole rows/columns (as dcm2niix), so that an unshifted
    # slice keeps its voxels exactly
    j0, i0 = math.floor(float(shift_j.min()) + 1e-6), math.floor(float(shift_i.min()) + 1e-6)
    rows = data.shape[-2] + math.ceil(float(shift_j.max()) - j0 - 1e-6)
    columns = data.shape[-1] + math.ceil(float(shift_i.max()) - i0 - 1e-6)
    fill = float(data.min())
    out = np.empty((*data.shape[:-2], rows, columns), np.float64)
    for k in range(data.shape[-3]):
        plane = data[..., k, :, :].reshape(-1, *data.shape[-2:])
        for v in range(plane.shape[0]):
            moved = _shift_axis(plane[v], 0, j0 - shift_j[k], rows, fill)
            moved = _shift_axis(moved, 1, i0 - shift_i[k], columns, fill)
            out.reshape(-1, data.shape[-3], rows, columns)[v, k] = moved
    origin = positions[0] + j0 * column + i0 * row
    return out, origin, normal


def _equalize(data: np.ndarray, distances: np.ndarray) -> tuple[np.ndarray, float]:
    """Re-space slices at the smallest gap along the normal; returns data and the new spacing."""
    gaps = np.diff(distances)
    step = float(gaps[gaps > POSITION_TOLERANCE].min())
    total = float(distances[-1] - distances[0])
    count = int(round(total / step)) + 1
    step = total / (count - 1)
    targets = distances[0] + step * np.arange(count)
    high = np.clip(np.searchsorted(distances, targets - 1e-6), 1, len(distances) - 1)
    low = high - 1
    frac = np.clip((targets - distances[low]) / (distances[high] - distances[low]), 0.0, 1.0)
    shape = (1,) * (data.ndim - 3)
    lo = np.take(data, low, axis=-3)
    hi = np.take(data, high, axis=-3)
    weights = frac.reshape(*shape, -1, 1, 1)
    return lo * (1.0 - weights) + hi * weights, step


def resample_regular(image: Image, *, tilt: bool = True, uneven: bool = True) -> Image:
    """Resample a gantry-tilted and/or unevenly spaced stack to an orthogonal, evenly spaced grid.

    Parameters
    ----------
    image
        An image from :func:`medipy.io.dicom.image` (or a 4D image from :func:`medipy.io.dicom.image4d`,
        volumes first), with its per-slice positions in the metadata.
    tilt
        Correct a gantry tilt (sheared stack), as dcm2niix's ``_Tilt`` output.
    uneven
        Re-space unevenly spaced slices (missing slices, variable gaps), as dcm2niix's ``_Eq`` output.

    Returns
    -------
    Image
        ``image`` itself when nothing is to be done; else a new image on a regular grid whose metadata
        records ``resampled`` (``["tilt"]``, ``["equidistant"]`` or both), ``gantry_tilt`` 0 and the new
        ``slice_spacing``.

    Raises
    ------
    GeometryError
        When the slices do not progress along the normal (repeated positions), so that no regular grid exists.

    Examples
    --------
    >>> from medipy.io.dicom.resample import resample_regular
    >>> regular = resample_regular(medipy.io.dicom.image(stack))  # doctest: +SKIP
    """
    data = np.asarray(image.data)
    if data.shape[-3] < 2:
        return image
    positions = slice_positions(image)
    affine = image.lps_affine
    row, column = affine[:3, 2], affine[:3, 1]
    normal = np.cross(row, column)
    normal /= np.linalg.norm(normal)
    if np.dot(positions[-1] - positions[0], normal) < 0:
        normal = -normal
    distances = (positions - positions[0]) @ normal
    gaps = np.diff(distances)
    if np.any(gaps <= POSITION_TOLERANCE):
        raise GeometryError(
            "slices repeat positions or go back along the normal: no regular grid; split the stack first "
            "(medipy.io.dicom.stacks) or assemble its volumes with medipy.io.dicom.image4d"
        )
    offsets = positions - positions[0] - np.outer((positions - positions[0]) @ normal, normal)
    tilted = tilt and float(np.abs(offsets).max()) > POSITION_TOLERANCE
    is_uneven = uneven and float(np.ptp(gaps)) > max(POSITION_TOLERANCE, 1e-3 * float(gaps.mean()))
    if not (tilted or is_uneven):
        return image
    done: list[str] = []
    values: np.ndarray = data.astype(np.float64)
    origin = positions[0]
    slice_axis = normal
    if tilted:
        values, origin, slice_axis = _untilt(values, image, positions)
        done.append("tilt")
    spacing = float(gaps.mean())
    if is_uneven:
        values, spacing = _equalize(values, distances)
        done.append("equidistant")
    unit_column = column / np.linalg.norm(column)
    unit_row = row / np.linalg.norm(row)
    direction = np.column_stack([slice_axis, unit_column, unit_row])[::-1, :]  # world (z, y, x) rows
    metadata: dict[str, Any] = dict(image.metadata)
    metadata.pop("per_slice", None)
    metadata.update(
        resampled=done,
        gantry_tilt=0.0,
        slice_spacing=spacing,
        slice_gaps=[spacing] * (values.shape[-3] - 1),
        geometry_warnings=[],
        acquired_geometry_warnings=list(image.metadata.get("geometry_warnings", [])),
    )
    logger.info("resampled to a regular grid (%s): %s -> %s", ", ".join(done), data.shape, values.shape)
    return Image(
        _cast(values, data.dtype),
        origin[::-1],
        (spacing, float(np.linalg.norm(column)), float(np.linalg.norm(row))),
        direction,
        metadata,
    )
