"""Frame normalisation: one header per slice, whatever the object stores.

* Enhanced multi-frame objects (MR, CT, PET, Legacy Converted, ...): the Shared and Per-frame Functional
  Groups (PS3.3 C.7.6.16) are merged into one flat header per frame (pixel measures, plane position and
  orientation, pixel value transformation, frame content, MR echo, MR diffusion, frame type, ...).
* Siemens mosaics: one header per tile, with the tile's size and its true position (the mosaic's Image
  Position refers to the top-left corner of the whole mosaic).
* NM multi-frame (PS3.3 C.8.4.8, C.8.4.16) and RT Dose (Grid Frame Offset Vector): per-frame positions.
* Other multi-frame objects (cine): one header per frame, sharing the object's geometry.

A frame header is a :class:`~medipy.io.dicom.dataset.DataSet` without Pixel Data whose ``frame`` is the frame
or tile index and whose ``source`` is the dataset it came from; its ``pixel_array`` decodes that frame only.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from dataclasses import dataclass

import numpy as np
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from medipy.errors import PixelDecodeError
from medipy.io.dicom.dataset import DataSet

__all__ = ["FrameLayout", "frame_layout", "frame_headers", "mosaic_tile_count"]

logger = logging.getLogger(__name__)

_PIXEL_TAGS = {0x7FE00008, 0x7FE00009, 0x7FE00010}
_SHARED, _PER_FRAME, _NUMBER_OF_FRAMES, _IMAGE_TYPE = 0x52009229, 0x52009230, 0x00280008, 0x00080008
_DROPPED = {_SHARED, _PER_FRAME, _NUMBER_OF_FRAMES} | _PIXEL_TAGS  # functional groups, Number of Frames


@dataclass(frozen=True, slots=True)
class FrameLayout:
    """How a dataset stores its slices: ``kind`` is single, enhanced, mosaic, nm, rtdose or cine."""

    kind: str
    count: int
    mosaic_tiles: int | None = None


def _csareader():
    """nibabel's Siemens CSA header reader (nibabel.nicom warns when imported: silenced here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        from nibabel.nicom import csareader
    return csareader


def mosaic_tile_count(ds: Dataset) -> int | None:
    """Number of images in a Siemens mosaic, or None when the dataset is not a mosaic.

    From the CSA image header (NumberOfImagesInMosaic), else the private element
    ``SIEMENS MR HEADER`` (0019,xx0A).
    """
    if _IMAGE_TYPE not in ds._dict:
        return None
    image_type = [str(v).upper() for v in (ds.get("ImageType") or [])]
    if "MOSAIC" not in image_type:
        return None
    count: int | None = None
    try:
        count = int(ds.get_private_item(0x0019, 0x0A, "SIEMENS MR HEADER").value)
    except (KeyError, TypeError, ValueError):
        count = None
    if not count:
        try:
            csa = _csareader().get_csa_header(ds, "image")
            count = _csareader().get_n_mosaic(csa) if csa else None
        except Exception as exc:  # noqa: BLE001 - a malformed CSA blob means "unknown", not a crash
            logger.debug("CSA header unreadable: %s", exc)
            count = None
    return int(count) if count else None


def _number_of_frames(ds: Dataset) -> int:
    if _NUMBER_OF_FRAMES not in ds._dict:
        return 1
    try:
        return max(int(ds.get("NumberOfFrames") or 1), 1)
    except (TypeError, ValueError):
        return 1


def _pixel_bytes(ds: Dataset) -> tuple[int | None, str]:
    """An upper bound of the bytes of a dataset's pixels: its Pixel Data length, else its file size."""
    for tag in sorted(_PIXEL_TAGS):
        if tag in ds:
            element = ds.get_item(tag, keep_deferred=True)  # a deferred Pixel Data stays unread
            value = element.value
            if isinstance(value, bytes | bytearray):
                return len(value), "its Pixel Data holds"
            length = getattr(element, "length", None)
            if isinstance(length, int) and length != 0xFFFFFFFF:
                return length, "its Pixel Data holds"
    path = getattr(ds, "path", None) or getattr(ds, "filename", None)
    if isinstance(path, str):
        try:
            return os.path.getsize(path), "its file holds"
        except OSError:
            return None, ""
    return None, ""


def _check_count(ds: Dataset, layout: FrameLayout) -> FrameLayout:
    """Refuse a frame or tile count that the pixels cannot hold (each slice needs at least one byte)."""
    if layout.count <= 1:
        return layout
    available, holder = _pixel_bytes(ds)
    if available is not None and layout.count > available:
        what = "Siemens mosaic tile count" if layout.kind == "mosaic" else "Number of Frames (0028,0008)"
        raise PixelDecodeError(
            f"{what} is {layout.count} but {holder} only {available} bytes: the header is corrupt; "
            "re-export the file",
            getattr(ds, "path", None) or getattr(ds, "filename", None),
        )
    return layout


def frame_layout(ds: Dataset) -> FrameLayout:
    """Classify how a dataset stores its slices (see module docstring).

    Raises
    ------
    PixelDecodeError
        The frame (or mosaic tile) count is larger than the bytes of Pixel Data (or of the file, when the
        dataset was read without pixels): a corrupt header, refused before one header per frame is made.
    """
    return _check_count(ds, _layout(ds))


def _layout(ds: Dataset) -> FrameLayout:
    frames = _number_of_frames(ds)
    if _PER_FRAME in ds._dict or _SHARED in ds._dict:
        return FrameLayout("enhanced", frames)
    if frames == 1:
        tiles = mosaic_tile_count(ds)
        if tiles and tiles > 1:
            return FrameLayout("mosaic", tiles, math.ceil(math.sqrt(tiles)))
        return FrameLayout("single", 1)
    if str(ds.get("Modality", "")).upper() == "NM" and ds.get("DetectorInformationSequence"):
        return FrameLayout("nm", frames)
    if "GridFrameOffsetVector" in ds:
        return FrameLayout("rtdose", frames)
    return FrameLayout("cine", frames)


def _base_elements(ds: Dataset) -> dict:
    """The top-level elements, without pixels and functional groups (raw elements stay raw: lazy)."""
    return {tag: ds.get_item(tag) for tag in ds.keys() if tag not in _DROPPED}


def _merge(target: Dataset, groups: Dataset | None) -> None:
    """Copy the attributes of each functional group macro (one item sequences) to the top level."""
    if groups is None:
        return
    for group in groups:
        if group.VR != "SQ" or not group.value or group.tag.is_private:
            continue
        for element in group.value[0]:
            if not element.tag.is_private:
                target[element.tag] = element


def _set(target: Dataset, keyword: str, value: object) -> None:
    """Set an element with a NEW DataElement: frame headers share element objects with their source,
    which must never be modified through them."""
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise KeyError(keyword)
    target[tag] = DataElement(tag, dictionary_VR(tag), value)


def _normal(orientation: list[float]) -> np.ndarray:
    return np.cross(np.asarray(orientation[:3], float), np.asarray(orientation[3:], float))


def _set_positions(frames: list[DataSet], first: list[float], step: np.ndarray, offsets: list[float]) -> None:
    origin = np.asarray(first, dtype=float)
    for frame, offset in zip(frames, offsets, strict=True):
        _set(frame, "ImagePositionPatient", [float(f"{v:.6f}") for v in origin + offset * step])


def frame_headers(ds: Dataset, layout: FrameLayout | None = None) -> list[DataSet]:
    """One header per slice of ``ds`` (see module docstring).

    Parameters
    ----------
    ds
        Any image dataset (full or read without pixels).
    layout
        Its :func:`frame_layout`, when already known.

    Returns
    -------
    list of DataSet
        ``[ds]`` itself for a plain single-frame image; otherwise one new DataSet per frame or tile, with
        ``frame`` set to its index and ``source`` to ``ds``.
    """
    layout = frame_layout(ds) if layout is None else layout
    if layout.kind == "single":
        return [ds if isinstance(ds, DataSet) else DataSet.from_pydicom(ds)]
    base = _base_elements(ds)
    frames: list[DataSet] = []
    for index in range(layout.count):
        frame = DataSet(dict(base))  # its own element dict, sharing the element objects
        if "file_meta" in ds.__dict__:
            frame.file_meta = ds.file_meta
        frame.path = getattr(ds, "path", None) or getattr(ds, "filename", None)
        frame.frame = index
        frame.source = ds
        frames.append(frame)

    if layout.kind == "enhanced":
        shared_seq = ds.get("SharedFunctionalGroupsSequence")
        shared = shared_seq[0] if shared_seq else None
        per_frame = ds.get("PerFrameFunctionalGroupsSequence") or DicomSequence()
        for index, frame in enumerate(frames):
            _merge(frame, shared)
            _merge(frame, per_frame[index] if index < len(per_frame) else None)
            if "DiffusionGradientDirectionSequence" in frame and "DiffusionGradientOrientation" not in frame:
                items = frame.DiffusionGradientDirectionSequence
                if items and "DiffusionGradientOrientation" in items[0]:
                    _set(frame, "DiffusionGradientOrientation", items[0].DiffusionGradientOrientation)
    else:
        try:
            _frame_geometry(ds, frames, layout)
        except (TypeError, ValueError, ArithmeticError, IndexError) as exc:
            # geometry values that are not numbers (a corrupt file): per-frame positions treated as missing,
            # which the stack geometry then reports
            logger.warning("%s: per-frame geometry unreadable (%s), frame positions left unset",
                           getattr(ds, "path", None) or getattr(ds, "filename", None), exc)
    for frame in frames:
        _set(frame, "NumberOfFrames", 1)
    return frames


def _frame_geometry(ds: Dataset, frames: list[DataSet], layout: FrameLayout) -> None:
    """Per-frame (or per-tile) geometry of mosaics, NM tomograms and RT Dose grids."""
    if layout.kind == "mosaic":
        _mosaic_geometry(ds, frames, layout)
    elif layout.kind == "nm":
        _nm_geometry(ds, frames)
    elif layout.kind == "rtdose":
        orientation = ds.get("ImageOrientationPatient")
        position = ds.get("ImagePositionPatient")
        offsets = [float(v) for v in ds.GridFrameOffsetVector]
        if orientation is not None and position is not None and len(offsets) == len(frames):
            relative = offsets if offsets[0] == 0 else [v - offsets[0] for v in offsets]
            _set_positions(frames, list(position), _normal(list(orientation)), relative)


def _mosaic_geometry(ds: Dataset, frames: list[DataSet], layout: FrameLayout) -> None:
    """Tile size and true position of each mosaic tile.

    The mosaic's Image Position (Patient) is that of the top-left voxel of the whole mosaic seen as one
    Rows x Columns image; the first tile's centre is shifted by half the size difference along each in-plane
    axis. Tiles follow the slice normal of the CSA header (else the cross product of the orientation) at the
    Spacing Between Slices (else the Slice Thickness).
    """
    tiles = layout.mosaic_tiles or 1
    rows, columns = int(ds.Rows) // tiles, int(ds.Columns) // tiles
    orientation = ds.get("ImageOrientationPatient")
    position = ds.get("ImagePositionPatient")
    spacing = ds.get("PixelSpacing")
    for frame in frames:
        _set(frame, "Rows", rows)
        _set(frame, "Columns", columns)
    if orientation is None or position is None or spacing is None:
        return
    row_dir = np.asarray(orientation[:3], float)
    col_dir = np.asarray(orientation[3:], float)
    normal = _normal(list(orientation))
    try:
        csa = _csareader().get_csa_header(ds, "image")
        csa_normal = _csareader().get_slice_normal(csa) if csa else None
        if csa_normal is not None and np.all(np.isfinite(csa_normal)) and np.linalg.norm(csa_normal) > 0.5:
            normal = np.asarray(csa_normal, float) / np.linalg.norm(csa_normal)
    except Exception as exc:  # noqa: BLE001 - malformed CSA: fall back to the orientation's normal
        logger.debug("CSA slice normal unreadable: %s", exc)
    first = (
        np.asarray(position, float)
        + row_dir * float(spacing[1]) * (int(ds.Columns) - columns) / 2.0
        + col_dir * float(spacing[0]) * (int(ds.Rows) - rows) / 2.0
    )
    gap = ds.get("SpacingBetweenSlices") or ds.get("SliceThickness") or 1.0
    _set_positions(frames, list(first), normal * float(gap), list(range(len(frames))))


def _nm_geometry(ds: Dataset, frames: list[DataSet]) -> None:
    """Per-frame positions of a reconstructed NM tomogram (PS3.3 C.8.4.8, C.8.4.16)."""
    detector = ds.DetectorInformationSequence[0]
    orientation = detector.get("ImageOrientationPatient") or ds.get("ImageOrientationPatient")
    position = detector.get("ImagePositionPatient") or ds.get("ImagePositionPatient")
    if orientation is None or position is None:
        return
    for frame in frames:
        _set(frame, "ImageOrientationPatient", list(orientation))
    image_type = [str(v).upper() for v in (ds.get("ImageType") or [])]
    if "RECON TOMO" not in " ".join(image_type) and "RECON GATED TOMO" not in " ".join(image_type):
        return  # planar frames (static, dynamic, whole body): no 3D positions
    gap = float(ds.get("SpacingBetweenSlices") or ds.get("SliceThickness") or 1.0)
    slice_vector = ds.get("SliceVector")
    indices = (
        [int(v) - 1 for v in slice_vector]
        if slice_vector is not None and len(slice_vector) == len(frames)
        else list(range(len(frames)))
    )
    _set_positions(frames, list(position), _normal(list(orientation)) * gap, [float(i) for i in indices])
