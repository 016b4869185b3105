"""Serial 4D assembly: the volumes of a time or diffusion series that share one geometry, as one 4D image.

:func:`medipy.io.dicom.stacks` keeps MediPy's meaning (one stack per 3D volume). On top of it,
:func:`series_images` groups the stacks of one series with :func:`~medipy.io.dicom.volumes.group_volumes`
(same size, spacing, orientation, slice positions, echo and frame type) and assembles each group with
:func:`image4d`, volumes first: ``data[t]`` is the t-th volume, as dcm2niix's 4th NIfTI axis. Echoes and
image types (magnitude, phase, field map) stay separate images, as dcm2niix writes them (``_e1``, ``_e2``),
unless ``combine_echoes`` is set.

The diffusion encoding of each volume (b-value, unit gradient direction in LPS and in image coordinates)
is kept in ``metadata["diffusion"]``; :func:`diffusion_table` returns it as arrays. GE gradient directions
are in GE's (frequency, phase, slice) frame, which DICOM does not relate to the patient: they are kept as
``bvecs_logical`` and the LPS and image directions are then unknown (None), never guessed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from medipy.base import Image
from medipy.errors import DicomError, GeometryError
from medipy.io.dicom.assembly import image, slice_records
from medipy.io.dicom.keys import split_stacks
from medipy.io.dicom.record import SliceRecord
from medipy.io.dicom.volumes import group_volumes, volume_axis, volume_key

__all__ = ["DiffusionTable", "diffusion_table", "image4d", "series_images"]

logger = logging.getLogger(__name__)

#: Volumes of one 4D image must share their geometry within this distance (mm) / cosine difference.
GEOMETRY_TOLERANCE = 1e-4


@dataclass(frozen=True)
class DiffusionTable:
    """Diffusion encoding of the volumes of a 4D image.

    Attributes
    ----------
    bvals
        (n,) b-values in s/mm2 (0 where a volume has none).
    bvecs_lps
        (n, 3) unit gradient directions in patient coordinates (DICOM LPS, x, y, z order); zeros for b = 0.
        None when a diffusion-weighted volume has no direction in patient coordinates (GE).
    bvecs_image
        (n, 3) the same directions in image coordinates: components along the index axes (z, y, x) of the
        image (its ``direction`` columns), in numpy order like every medipy vector; None with ``bvecs_lps``.
    bvecs_logical
        (n, 3) GE's directions as recorded, along its (frequency, phase, slice) axes; None for other vendors.
    """

    bvals: np.ndarray
    bvecs_lps: np.ndarray | None
    bvecs_image: np.ndarray | None
    bvecs_logical: np.ndarray | None = None


def _volume_info(record: SliceRecord) -> dict[str, Any]:
    return {
        "temporal_position": record.temporal_position,
        "acquisition_number": record.acquisition_number,
        "acquisition_time": record.acquisition_time or None,
        "trigger_time": record.trigger_time,
        "echo_number": record.echo_number,
        "echo_time": record.echo_time,
        "b_value": record.b_value,
        "gradient_lps": None if record.gradient is None else list(record.gradient),
        "gradient_logical": None if record.gradient_logical is None else list(record.gradient_logical),
    }


def _same_geometry(a: Image, b: Image) -> bool:
    return (
        a.shape == b.shape
        and np.allclose(a.origin, b.origin, atol=GEOMETRY_TOLERANCE)
        and np.allclose(a.spacing, b.spacing, atol=GEOMETRY_TOLERANCE)
        and np.allclose(a.direction, b.direction, atol=GEOMETRY_TOLERANCE)
    )


def _per_volume(metadata: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
    """Top-level attributes whose value differs between volumes, one value per volume."""
    keys = {k for m in metadata for k in m if k not in ("per_slice", "sop_instance_uids", "frames")}
    out: dict[str, list[Any]] = {}
    for key in sorted(keys):
        values = [m.get(key) for m in metadata]
        if any(v != values[0] for v in values[1:]):
            out[key] = values
    return out


def _diffusion_metadata(volumes: Sequence[dict[str, Any]], direction: np.ndarray) -> dict[str, Any] | None:
    if all(not v["b_value"] and v["gradient_lps"] is None and v["gradient_logical"] is None for v in volumes):
        return None  # no diffusion weighting anywhere (e.g. GE fMRI carries b = 0 in its private tags)
    bvals = [0.0 if v["b_value"] is None else float(v["b_value"]) for v in volumes]
    out: dict[str, Any] = {"bvals": bvals}
    if any(v["gradient_logical"] is not None for v in volumes):  # GE: not related to the patient in DICOM
        out["bvecs_lps"] = out["bvecs_image"] = None
        out["bvecs_logical"] = [[0.0, 0.0, 0.0] if v["gradient_logical"] is None else list(v["gradient_logical"])
                                for v in volumes]
        return out
    lps = [[0.0, 0.0, 0.0] if v["gradient_lps"] is None else list(v["gradient_lps"]) for v in volumes]
    # image coordinates: components along the index axes (z, y, x); world vectors are (z, y, x) in medipy
    out["bvecs_lps"] = lps
    out["bvecs_image"] = [(direction.T @ np.asarray(g[::-1], float)).tolist() for g in lps]
    return out


def image4d(stacks: Sequence[Sequence[Dataset]]) -> Image:
    """Assemble the stacks of a time or diffusion series into one 4D image, volumes first.

    Parameters
    ----------
    stacks
        Stacks that share one geometry (e.g. elements of :func:`medipy.io.dicom.stacks` grouped by
        :func:`series_images`), in the order of the volumes.

    Returns
    -------
    Image
        ``data`` of shape (volumes, z, y, x) (a single stack gives the 3D image itself); the geometry of the
        first volume (shared by all); the metadata of the first volume plus ``volume_axis`` (``"time"`` or
        ``"channel"`` for diffusion), ``volumes`` (temporal position, times, echo, b-value and gradient of
        each volume), ``per_volume`` (attributes that vary between volumes) and, for diffusion, ``diffusion``
        (see :func:`diffusion_table`).

    Raises
    ------
    GeometryError
        When the stacks do not share one geometry (size, origin, spacing, orientation).
    DicomError
        When no stack is given.

    Examples
    --------
    >>> fmri = medipy.io.dicom.image4d(medipy.io.dicom.stacks(serie))  # doctest: +SKIP
    >>> fmri.shape  # doctest: +SKIP
    (10, 15, 64, 64)
    """
    if not stacks:
        raise DicomError("image4d() needs at least one stack")
    volumes = [image(stack) for stack in stacks]
    records = [slice_records(stack[:1])[1][0] for stack in stacks]
    info = [_volume_info(r) for r in records]
    first = volumes[0]
    diffusion = _diffusion_metadata(info, first.direction)
    if len(volumes) == 1:
        if diffusion is not None:
            first.metadata["diffusion"] = diffusion
        return first
    for index, volume in enumerate(volumes[1:], start=1):
        if not _same_geometry(first, volume):
            raise GeometryError(
                f"volume {index} does not share the geometry of volume 0 (shape {volume.shape} vs {first.shape}, "
                f"origin {volume.origin.tolist()} vs {first.origin.tolist()}): assemble these stacks as separate "
                "3D images, or group them with medipy.io.dicom.series_images()",
                getattr(stacks[index][0], "path", None),
            )
    dtype = np.result_type(*[v.dtype for v in volumes])
    data = np.stack([np.asarray(v.data, dtype=dtype) for v in volumes])
    metadata = dict(first.metadata)
    metadata["volume_axis"] = volume_axis([[r] for r in records])
    metadata["volumes"] = info
    metadata["per_volume"] = _per_volume([v.metadata for v in volumes])
    metadata["sop_instance_uids"] = [v.metadata.get("sop_instance_uids") for v in volumes]
    if diffusion is not None:
        metadata["diffusion"] = diffusion
    return Image(data, first.origin, first.spacing, first.direction, metadata)


def _echo_free_key(stack: Sequence[SliceRecord]) -> str:
    return volume_key([r.replace(echo_number=None, echo_time=None) for r in stack])


def series_images(serie: Sequence[Dataset], *, combine_echoes: bool = False) -> list[Image]:
    """Every image of one series: 3D images, and 4D images where volumes share one geometry.

    Parameters
    ----------
    serie
        The image datasets of one series (an element of :func:`medipy.io.dicom.series`).
    combine_echoes
        Also combine the echoes of a multi-echo series into one 4D image (echo-major: every volume of the
        first echo, then of the second...). By default each echo is a separate image, as dcm2niix writes
        ``_e1``, ``_e2``. Image types (magnitude, phase, field map) always stay separate.

    Returns
    -------
    list of Image
        One image per group of volumes, in the order of their first volume (see :func:`image4d` for the
        4D layout and metadata).

    Examples
    --------
    >>> serie = medipy.io.dicom.series(datasets)[0]  # doctest: +SKIP
    >>> [im.shape for im in medipy.io.dicom.series_images(serie)]  # doctest: +SKIP
    [(10, 15, 64, 64)]
    """
    headers, records = slice_records(serie)
    stacks = split_stacks(records)
    stack_records = [[records[i] for i in stack] for stack in stacks]
    groups = group_volumes(stack_records)
    if combine_echoes:
        merged: dict[str, list[int]] = {}
        for group in groups:
            merged.setdefault(_echo_free_key(stack_records[group[0]]), []).extend(group)
        groups = sorted(merged.values(), key=lambda g: g[0])
    for group in groups:
        if len(group) > 1:
            logger.debug("%d volumes of one geometry form a 4D image (%s)", len(group),
                         volume_key(stack_records[group[0]])[:60])
    return [image4d([[headers[i] for i in stacks[s]] for s in group]) for group in groups]


def diffusion_table(image_4d: Image) -> DiffusionTable | None:
    """The diffusion encoding of a 4D image made by :func:`image4d`, or None when it has none.

    Parameters
    ----------
    image_4d
        A 4D image whose volumes carry diffusion b-values (standard attributes or the Siemens, GE and
        Philips private tags read by :mod:`medipy.io.dicom.diffusion`).

    Returns
    -------
    DiffusionTable or None
    """
    diffusion = image_4d.metadata.get("diffusion")
    if diffusion is None:
        return None

    def vectors(key: str) -> np.ndarray | None:
        values = diffusion.get(key)
        return None if values is None else np.asarray(values, float).reshape(-1, 3)

    return DiffusionTable(bvals=np.asarray(diffusion["bvals"], float), bvecs_lps=vectors("bvecs_lps"),
                          bvecs_image=vectors("bvecs_image"), bvecs_logical=vectors("bvecs_logical"))
