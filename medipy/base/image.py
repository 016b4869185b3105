"""The image type of medipy: voxels with their geometry in patient space.

All vectors are in numpy order (z, y, x), like the array: a DICOM (x, y, z) vector appears reversed. World
coordinates are DICOM patient coordinates (LPS, mm). A physical point is
``direction @ (spacing * index) + origin``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["Image"]


class Image:
    """An n-dimensional image with its geometry.

    Parameters
    ----------
    data
        A numpy array or a (lazy, chunked) dask array. The last three spatial axes are (z, y, x); a colour
        image carries its samples on a trailing axis, a 4D image its volumes on a leading axis (the
        geometry then describes one volume).
    origin
        Physical position of the voxel of index 0, in (z, y, x) order (LPS, mm).
    spacing
        Distance between voxel centres along each spatial axis, in (z, y, x) order (mm).
    direction
        Matrix whose columns are the unit vectors of the index axes (z, y, x) in world (z, y, x) order.
    metadata
        Free-form metadata (for DICOM: shared attributes, per-slice values, geometry warnings).

    Examples
    --------
    >>> import numpy as np
    >>> image = Image(np.zeros((2, 3, 4)), origin=(10.0, 0.0, 0.0), spacing=(2.0, 1.0, 1.0))
    >>> image.index_to_physical((1, 0, 0)).tolist()
    [12.0, 0.0, 0.0]
    """

    def __init__(
        self,
        data: Any,
        origin: Sequence[float] | np.ndarray | None = None,
        spacing: Sequence[float] | np.ndarray | None = None,
        direction: Any = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.data = data
        ndim = 3 if np.ndim(data) >= 3 else np.ndim(data)
        self.origin = np.zeros(ndim) if origin is None else np.asarray(origin, dtype=float)
        self.spacing = np.ones(ndim) if spacing is None else np.asarray(spacing, dtype=float)
        self.direction = np.eye(ndim) if direction is None else np.asarray(direction, dtype=float)
        self.metadata = {} if metadata is None else metadata
        n = len(self.origin)
        if self.spacing.shape != (n,) or self.direction.shape != (n, n):
            raise ValueError(
                f"origin {self.origin.shape}, spacing {self.spacing.shape} and direction "
                f"{self.direction.shape} do not describe the same number of spatial axes"
            )

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the data."""
        return tuple(self.data.shape)

    @property
    def dtype(self) -> np.dtype:
        """Data type of the voxels."""
        return np.dtype(self.data.dtype)

    @property
    def affine(self) -> np.ndarray:
        """Homogeneous matrix from (z, y, x) index to (z, y, x) world coordinates."""
        n = len(self.origin)
        matrix = np.eye(n + 1)
        matrix[:n, :n] = self.direction * self.spacing[np.newaxis, :]
        matrix[:n, n] = self.origin
        return matrix

    @property
    def lps_affine(self) -> np.ndarray:
        """4x4 matrix from (z, y, x) index to DICOM patient (x, y, z) LPS coordinates in mm."""
        affine = self.affine
        if affine.shape != (4, 4):
            raise ValueError("lps_affine is defined for 3D geometry only")
        out = np.eye(4)
        out[:3, :] = affine[2::-1, :]  # world rows (z, y, x) -> (x, y, z)
        return out

    def index_to_physical(self, index: Any) -> np.ndarray:
        """Physical (z, y, x) position of one index, or of an array of indices (..., n)."""
        index = np.asarray(index, dtype=float)
        return (index * self.spacing) @ self.direction.T + self.origin

    def physical_to_index(self, point: Any) -> np.ndarray:
        """Continuous (z, y, x) index of one physical point, or of an array of points (..., n)."""
        point = np.asarray(point, dtype=float)
        return np.linalg.solve(self.direction, (point - self.origin).T).T / self.spacing

    def compute(self) -> Image:
        """The same image with its data computed into a numpy array (no-op for numpy data)."""
        data = self.data.compute() if hasattr(self.data, "compute") else self.data
        return Image(data, self.origin, self.spacing, self.direction, self.metadata)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return np.asarray(self.data, dtype=dtype)

    def __repr__(self) -> str:
        return (
            f"Image(shape={self.shape}, dtype={self.dtype}, origin={self.origin.tolist()}, "
            f"spacing={self.spacing.tolist()})"
        )
