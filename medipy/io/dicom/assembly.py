"""Assembly of one stack of slices into an :class:`~medipy.base.Image`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName

from medipy.base import Image
from medipy.errors import DicomError, NotImageError, SeveralStacksError
from medipy.io.dicom.frames import frame_layout
from medipy.io.dicom.geometry import StackGeometry, stack_geometry
from medipy.io.dicom.keys import duplicate_instances, split_stacks
from medipy.io.dicom.pixels import decode, fit_bits_stored, mosaic_tile, output_dtype, rescale
from medipy.io.dicom.record import SliceRecord, dataset_records

__all__ = ["image", "image_metadata", "slice_records", "stack_metadata"]

logger = logging.getLogger(__name__)

_SKIPPED_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009, 0x00280008}


def slice_records(datasets: Sequence[Dataset]) -> tuple[list[Dataset], list[SliceRecord]]:
    """Frame headers and records of every slice of ``datasets`` (multi-frame objects and mosaics split).

    Raises
    ------
    NotImageError
        When given DICOMDIR directory records instead of image datasets.
    """
    headers: list[Dataset] = []
    records: list[SliceRecord] = []
    for ds in datasets:
        if "DirectoryRecordType" in ds or "DirectoryRecordSequence" in ds:
            raise NotImageError(
                "got DICOMDIR records, not images: call medipy.io.dicom.load_dicomdir_records() on the "
                "series first",
                getattr(ds, "path", None),
            )
        h, r = dataset_records(ds)
        headers.extend(h)
        records.extend(r)
    return headers, records


def _plain(value: Any) -> Any:
    """A JSON-friendly Python value for an element value (None for binary and sequences)."""
    if isinstance(value, bytes | bytearray | memoryview) or isinstance(value, list) and not isinstance(
        value, MultiValue
    ):
        return None
    if isinstance(value, MultiValue | tuple):
        items = [_plain(v) for v in value]
        return None if any(v is None for v in items) else items
    if isinstance(value, PersonName):
        return str(value)
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if np.isfinite(value) else str(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return int(number) if isinstance(value, int) else number


def stack_metadata(headers: Sequence[Dataset]) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """Public non-sequence attributes shared by all slices, and per-slice lists of those that vary."""
    values: dict[str, list[Any]] = {}
    for index, header in enumerate(headers):
        for tag in header.keys():
            if tag.is_private or tag in _SKIPPED_TAGS or tag.group == 0x0002:
                continue
            try:
                element = header[tag]
            except Exception:  # noqa: BLE001 - an undecodable element is not metadata
                continue
            if element.VR == "SQ" or not element.keyword:
                continue
            plain = _plain(element.value)
            if plain is None and element.value not in (None, ""):
                continue
            values.setdefault(element.keyword, [None] * len(headers))[index] = plain
    shared = {k: v[0] for k, v in values.items() if all(x == v[0] for x in v)}
    varying = {k: v for k, v in values.items() if k not in shared}
    return shared, varying


def image_metadata(
    headers: Sequence[Dataset], records: Sequence[SliceRecord], geometry: StackGeometry
) -> dict[str, Any]:
    """The metadata dict of an image: shared attributes, per-slice values and geometry findings."""
    shared, varying = stack_metadata(headers)
    metadata: dict[str, Any] = dict(shared)
    metadata["per_slice"] = varying
    metadata["sop_instance_uids"] = [r.sop_instance_uid for r in records]
    metadata["frames"] = [r.frame for r in records]
    metadata["slice_spacing"] = geometry.slice_spacing
    metadata["gantry_tilt"] = geometry.gantry_tilt
    metadata["slice_gaps"] = list(geometry.gaps)
    metadata["geometry_warnings"] = list(geometry.warnings)
    metadata["duplicate_sop_instance_uids"] = duplicate_instances(records)
    return metadata


def _read_pixels(headers: Sequence[Dataset], records: Sequence[SliceRecord]) -> list[np.ndarray]:
    """Stored values of each slice; a multi-frame or mosaic source is decoded once for all its frames."""
    decoded: dict[int, np.ndarray] = {}
    out = []
    for header, _record in zip(headers, records, strict=True):
        source = getattr(header, "source", None)
        if source is None:
            out.append(decode(header))
            continue
        key = id(source)
        if key not in decoded:
            decoded[key] = decode(source)
        whole = decoded[key]
        layout = frame_layout(source)
        if layout.kind == "mosaic":
            out.append(mosaic_tile(whole, int(header.frame), layout.mosaic_tiles or 1))
        elif layout.count > 1:
            out.append(whole[int(header.frame)])
        else:
            out.append(whole)
    return [fit_bits_stored(v, r) for v, r in zip(out, records, strict=True)]


def image(datasets: Sequence[Dataset]) -> Image:
    """Assemble one stack of slices into an image.

    Parameters
    ----------
    datasets
        The datasets of one stack (e.g. one element of :func:`medipy.io.dicom.stacks`, or a whole series
        that holds a single stack). Multi-frame objects and mosaics are split into their slices first.

    Returns
    -------
    Image
        Voxels (z, y, x) in real-world values (Rescale Slope/Intercept applied per slice; see
        :func:`medipy.io.dicom.pixels.output_dtype` for the dtype); slices sorted along the normal
        (fallback: Instance Number); geometry in (z, y, x) order in LPS; metadata with the shared
        attributes, the per-slice values that vary, the geometry warnings (uneven gaps, gantry tilt, missing
        or invalid geometry attributes, which are treated as absent) and ``duplicate_sop_instance_uids`` (SOP
        Instance UIDs claimed by several slices of the stack, e.g. copies from another export).

    Raises
    ------
    SeveralStacksError
        When the datasets form several stacks: call :func:`medipy.io.dicom.stacks` and pass one.
    PixelDecodeError
        When a slice's pixels cannot be decoded.

    Examples
    --------
    >>> import medipy.io.dicom
    >>> datasets = [medipy.io.dicom.read(f) for f in filenames]  # doctest: +SKIP
    >>> image = medipy.io.dicom.image(datasets)  # doctest: +SKIP
    """
    if not datasets:
        raise DicomError("image() needs at least one dataset")
    headers, records = slice_records(datasets)
    stacks = split_stacks(records)
    if len(stacks) > 1:
        raise SeveralStacksError(
            f"the {len(datasets)} datasets form {len(stacks)} stacks (different orientations, sizes, echoes, "
            "time points or diffusion directions): split them with medipy.io.dicom.stacks() and pass one stack",
            getattr(datasets[0], "path", None),
        )
    order = stacks[0]
    headers = [headers[i] for i in order]
    records = [records[i] for i in order]
    geometry = stack_geometry(records)
    values = _read_pixels(headers, records)
    dtype = output_dtype(records, values)
    data = np.stack([rescale(v, r, dtype) for v, r in zip(values, records, strict=True)])
    image_meta = image_metadata(headers, records, geometry)
    for warning in geometry.warnings:
        logger.info("%s: %s", getattr(datasets[0], "path", None) or "stack", warning)
    if image_meta["duplicate_sop_instance_uids"]:
        logger.warning("%s: slices share SOP Instance UID(s) %s (copies of one instance with other content?)",
                       getattr(datasets[0], "path", None) or "stack", image_meta["duplicate_sop_instance_uids"])
    return Image(data, geometry.origin, geometry.spacing, geometry.direction, image_meta)
