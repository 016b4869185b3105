"""Geometry of a stack of slices: slice normal, positions along it, origin, spacing, direction, warnings.

Plain functions of :class:`~medipy.io.dicom.record.SliceRecord` s, shared by the serial API and the dask
engine. Vectors are returned in numpy (z, y, x) order (a DICOM (x, y, z) LPS vector appears reversed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from medipy.io.dicom.record import SliceRecord

__all__ = [
    "ORIENTATION_TOLERANCE",
    "POSITION_TOLERANCE",
    "StackGeometry",
    "normal_of",
    "same_orientation",
    "slice_distance",
    "stack_geometry",
]

#: Two orientations are the same when no direction cosine differs by more than this.
ORIENTATION_TOLERANCE = 1e-3
#: Two slice positions along the normal are the same within this distance (mm).
POSITION_TOLERANCE = 1e-2


def normal_of(orientation: Sequence[float]) -> np.ndarray:
    """Unit slice normal (LPS x, y, z): the cross product of the row and column direction cosines."""
    r0, r1, r2, c0, c1, c2 = (float(v) for v in orientation[:6])
    normal = np.array([r1 * c2 - r2 * c1, r2 * c0 - r0 * c2, r0 * c1 - r1 * c0])  # as np.cross, 50x faster here
    return normal / np.linalg.norm(normal)


def same_orientation(a: Sequence[float] | None, b: Sequence[float] | None) -> bool:
    """True when two Image Orientation (Patient) values agree within :data:`ORIENTATION_TOLERANCE`."""
    if a is None or b is None:
        return a is None and b is None
    return max(abs(x - y) for x, y in zip(a, b, strict=True)) <= ORIENTATION_TOLERANCE


def slice_distance(record: SliceRecord, normal: np.ndarray) -> float | None:
    """Position of a slice along ``normal`` (mm), or None when it has no Image Position (Patient)."""
    if record.position is None:
        return None
    return float(np.dot(np.asarray(record.position, float), normal))


@dataclass(frozen=True)
class StackGeometry:
    """Geometry of a sorted stack, in (z, y, x) order; see :class:`medipy.base.Image`.

    ``slice_spacing`` is the mean distance between slices along the normal; ``gantry_tilt`` the angle (in
    degrees) between the slice normal and the direction in which slices follow each other (0 when not
    tilted): a tilted stack has a sheared ``direction`` whose slice column is that actual direction, so that
    every voxel maps exactly where it was acquired. ``gaps`` lists the distances between consecutive slices.
    """

    origin: np.ndarray
    spacing: np.ndarray
    direction: np.ndarray
    slice_spacing: float
    gantry_tilt: float = 0.0
    gaps: tuple[float, ...] = ()
    warnings: tuple[str, ...] = field(default=())

    @property
    def uneven(self) -> bool:
        """True when the slices are not evenly spaced."""
        return any(w.startswith("uneven") for w in self.warnings)

    def lps_affine(self) -> np.ndarray:
        """4x4 matrix from index (k, j, i) (array order z, y, x) to DICOM patient x, y, z (LPS, mm)."""
        affine = np.eye(4)
        affine[:3, :3] = (self.direction * self.spacing[np.newaxis, :])[::-1, :]
        affine[:3, 3] = self.origin[::-1]
        return affine


def _gap_warnings(gaps: np.ndarray, mean: float) -> list[str]:
    warnings: list[str] = []
    if len(gaps) == 0:
        return warnings
    tolerance = max(POSITION_TOLERANCE, 1e-3 * abs(mean))
    if np.any(np.abs(gaps) <= POSITION_TOLERANCE):
        warnings.append("duplicate slice positions")
    if np.ptp(gaps) > tolerance:
        smallest = float(np.min(gaps))
        text = f"uneven slice spacing: gaps from {smallest:.4g} to {float(np.max(gaps)):.4g} mm"
        if smallest > POSITION_TOLERANCE:
            ratios = gaps / smallest
            missing = int(np.sum(np.round(ratios) - 1)) if np.allclose(ratios, np.round(ratios), atol=0.05) else 0
            if missing:
                text += f" ({missing} missing slice(s) likely)"
        warnings.append(text)
    return warnings


def stack_geometry(records: Sequence[SliceRecord]) -> StackGeometry:
    """Geometry of a stack whose records are already in slice order (see :func:`keys.order_slices`).

    Parameters
    ----------
    records
        The sorted slices of one stack (same orientation and size).

    Returns
    -------
    StackGeometry
        origin = Image Position (Patient) of the first slice; spacing = (slice spacing, Pixel Spacing[0],
        Pixel Spacing[1]); direction columns = slice direction, column direction, row direction.
    """
    first = records[0]
    warnings: list[str] = []
    row_spacing, column_spacing = first.pixel_spacing or (1.0, 1.0)
    if first.pixel_spacing is None:
        warnings.append("no valid Pixel Spacing (missing, not finite or absurd): 1 mm assumed")
    if first.orientation is None:
        warnings.append("no valid Image Orientation (Patient) (missing, not finite or not orthonormal): identity "
                        "assumed")
        orientation: Sequence[float] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    else:
        orientation = first.orientation
    row = np.asarray(orientation[:3], float)
    column = np.asarray(orientation[3:6], float)
    normal = normal_of(orientation)
    positions = [r.position for r in records]
    if any(p is None for p in positions):
        if len(records) > 1 or first.position is None:
            warnings.append("no valid Image Position (Patient) (missing, not finite or absurd) on some slices: "
                            "ordered by Instance Number")
        origin = np.asarray(first.position if first.position is not None else (0.0, 0.0, 0.0), float)
        points = None
    else:
        points = np.asarray(positions, float)
        origin = points[0]
    slice_direction = normal
    gaps: np.ndarray = np.zeros(0)
    tilt = 0.0
    if points is not None and len(records) > 1:
        distances = points @ normal
        gaps = np.diff(distances)
        step = (points[-1] - points[0]) / (len(points) - 1)
        along = float(np.dot(step, normal))
        slice_spacing = along
        if abs(along) > POSITION_TOLERANCE:
            slice_direction = step / np.linalg.norm(step)
            cosine = min(1.0, abs(along) / float(np.linalg.norm(step)))
            tilt = math.degrees(math.acos(cosine))
            if tilt < 1e-2:
                tilt, slice_direction = 0.0, normal
            else:
                warnings.append(f"gantry tilt of {tilt:.3f} degrees: slices are sheared")
        warnings.extend(_gap_warnings(gaps, along))
        length = float(np.linalg.norm(step)) if tilt else abs(along)
        if length <= POSITION_TOLERANCE:
            length = 1.0
    else:
        length = first.spacing_between_slices or first.slice_thickness or 1.0
        slice_spacing = length
    if len(records) > 1 and points is None:
        length = first.spacing_between_slices or first.slice_thickness or 1.0
        slice_spacing = length
    direction_lps = np.column_stack([slice_direction, column, row])  # columns for index axes z, y, x
    return StackGeometry(
        origin=origin[::-1].copy(),
        spacing=np.array([abs(length), row_spacing, column_spacing], float),
        direction=direction_lps[::-1, :].copy(),
        slice_spacing=float(abs(slice_spacing)),
        gantry_tilt=tilt,
        gaps=tuple(float(g) for g in gaps),
        warnings=tuple(warnings),
    )
