"""The slice record: the few header attributes of one slice (or frame) that grouping and geometry need.

A :class:`SliceRecord` holds plain Python values only (str, int, float, tuples): it is small, hashable and
cheap to pickle, so that a dask engine can parse headers in its workers and group the records elsewhere
with exactly the functions that serve the serial API (:mod:`medipy.io.dicom.keys`,
:mod:`medipy.io.dicom.geometry`).
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Mapping, Sequence
from typing import Any

from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from medipy.errors import BrokenDicomError
from medipy.io.dicom.diffusion import DiffusionEncoding, diffusion_of
from medipy.io.dicom.frames import frame_headers, frame_layout
from medipy.io.dicom.plain_values import transfer_syntax_of

__all__ = ["SliceRecord", "dataset_records", "record_from_frame"]

_NATIVE = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"}


@dataclasses.dataclass(frozen=True, slots=True)
class SliceRecord:
    """Header attributes of one slice: one single-frame image, one frame, or one mosaic tile.

    Attributes are those of PS3.3 with the same names in snake case; ``None`` where absent or invalid.
    ``frame`` is the index of the frame (multi-frame objects) or tile (mosaics) in the file, ``None`` for a
    single-frame image. ``pixel_offset``/``pixel_length`` locate native (uncompressed, not deflated) Pixel
    Data in the file, so that pixels can be read without parsing the header again. ``gradient`` is a unit
    diffusion direction in patient coordinates (LPS); ``gradient_logical`` one in GE's (frequency, phase,
    slice) frame, which DICOM does not relate to the patient (see :mod:`medipy.io.dicom.diffusion`).
    """

    path: str | None = None
    frame: int | None = None
    number_of_frames: int = 1
    mosaic_tiles: int | None = None  # tiles per side of a Siemens mosaic
    sop_instance_uid: str = ""
    series_instance_uid: str = ""
    study_instance_uid: str = ""
    patient_id: str = ""
    modality: str = ""
    series_number: int | None = None
    series_description: str = ""
    protocol_name: str = ""
    instance_number: int | None = None
    acquisition_number: int | None = None
    rows: int = 0
    columns: int = 0
    samples_per_pixel: int = 1
    photometric_interpretation: str = ""
    bits_allocated: int = 0
    bits_stored: int = 0
    pixel_representation: int = 0
    pixel_spacing: tuple[float, float] | None = None
    orientation: tuple[float, float, float, float, float, float] | None = None
    position: tuple[float, float, float] | None = None
    slice_thickness: float | None = None
    spacing_between_slices: float | None = None
    gantry_tilt: float | None = None
    echo_number: int | None = None
    echo_time: float | None = None
    temporal_position: int | None = None
    trigger_time: float | None = None
    acquisition_time: str = ""
    frame_type: str = ""
    b_value: float | None = None
    gradient: tuple[float, float, float] | None = None
    gradient_logical: tuple[float, float, float] | None = None
    rescale_slope: float = 1.0
    rescale_intercept: float = 0.0
    transfer_syntax: str = ""
    pixel_offset: int | None = None
    pixel_length: int | None = None

    def replace(self, **changes: Any) -> SliceRecord:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


def plain_state(cls: type) -> type:
    """Give a frozen, slotted dataclass a fast pickle form: its class and the tuple of its field values.

    (Python's own state for such classes calls :func:`dataclasses.fields` on every instance, ~20 us per record,
    and restores it attribute by attribute; unpickling through the generated ``__init__`` is ~40% faster than
    a ``__setstate__`` loop. A dask client and its workers move thousands of records.)
    """
    if any(f.init is False for f in dataclasses.fields(cls)) or hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__}: every field must be an __init__ argument and nothing checked after")
    names = tuple(f.name for f in dataclasses.fields(cls))
    getter = operator.attrgetter(*names)
    if len(names) == 1:
        def __reduce__(self: Any) -> tuple[type, tuple]:
            return cls, (getter(self),)
    else:
        def __reduce__(self: Any) -> tuple[type, tuple]:
            return cls, getter(self)

    setattr(cls, "__reduce__", __reduce__)  # noqa: B010 - mypy refuses assigning to a method
    return cls


plain_state(SliceRecord)


def _tags(*keywords: str) -> dict[str, int]:
    return {k: int(tag_for_keyword(k)) for k in keywords}  # type: ignore[arg-type]


# Tags of the attributes a record reads.
_TAG = _tags(
    "SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID", "PatientID", "Modality", "SeriesNumber",
    "SeriesDescription", "ProtocolName", "InstanceNumber", "AcquisitionNumber", "Rows", "Columns",
    "SamplesPerPixel", "PhotometricInterpretation", "BitsAllocated", "BitsStored", "PixelRepresentation",
    "PixelSpacing", "ImagerPixelSpacing", "ImageOrientationPatient", "ImagePositionPatient", "SliceThickness",
    "SpacingBetweenSlices", "GantryDetectorTilt", "EchoNumbers", "EchoTime", "EffectiveEchoTime",
    "TemporalPositionIdentifier", "TemporalPositionIndex", "TriggerTime", "AcquisitionTime",
    "FrameAcquisitionDateTime", "FrameType", "ImageType", "RescaleSlope", "RescaleIntercept", "DoseGridScaling",
    "DiffusionBValue",
)
_DIFFUSION_GROUPS = frozenset({0x0019, 0x0043, 0x2001})  # private groups read by diffusion_of


class _Header:
    """The elements of one header keyed by plain ``int`` tags, read once per record.

    A pydicom dataset keys its elements by :class:`~pydicom.tag.BaseTag`, whose ``__eq__`` is Python code run
    on every dictionary hit (and ``ds.get(keyword)`` resolves the keyword each time): a record reads ~40
    attributes of every file of an export, so that the lookups are made here in a dict of plain ints.
    """

    __slots__ = ("ds", "elements", "values")

    def __init__(self, ds: Dataset, values: Mapping[int, Any] | None = None) -> None:
        self.ds = ds
        elements = ds._dict
        self.elements: dict[int, Any] = dict(zip(map(int, elements), elements.values(), strict=True))
        self.values = values or None

    def __contains__(self, keyword: str) -> bool:
        return _TAG[keyword] in self.elements

    def get(self, keyword: str) -> Any:
        """The value of an attribute, or None when absent (as ``ds.get(keyword)``)."""
        tag = _TAG[keyword]
        element = self.elements.get(tag)
        if element is None:
            return None
        if self.values is not None:
            value = self.values.get(tag)
            if value is not None:
                return value
        if type(element) is DataElement or isinstance(element, DataElement):  # converted: no __getitem__
            return element.value
        try:
            return self.ds[tag].value  # pydicom converts the raw element (and keeps it converted)
        except KeyError:
            return None


def _is_many(value: Any) -> bool:
    """True for a multi-valued element value (checked against concrete types first: ABC checks are slow)."""
    if isinstance(value, str | bytes | int | float):
        return False
    return isinstance(value, list | tuple | MultiValue | Sequence)  # the concrete types are tried first


def _text(ds: _Header, keyword: str) -> str:
    value = ds.get(keyword)
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if _is_many(value):
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _int(ds: _Header, keyword: str) -> int | None:
    value = ds.get(keyword)
    if type(value) is int:  # US, UL... and plain IS values
        return value
    if _is_many(value):
        value = value[0] if len(value) else None
    if value is None or isinstance(value, str) and not value:
        return None
    try:
        return int(float(value))
    except (TypeError, ValueError, OverflowError):
        return None


def _float(ds: _Header, keyword: str) -> float | None:
    value = ds.get(keyword)
    if type(value) is float:  # FL, FD and plain DS values
        return value if math.isfinite(value) else None
    if _is_many(value):
        value = value[0] if len(value) else None
    if value is None or isinstance(value, str) and not value:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _length(ds: _Header, keyword: str) -> float | None:
    """A length in mm (Slice Thickness, Spacing Between Slices): None unless finite, non-zero and < 1e7."""
    value = _float(ds, keyword)
    return value if value is not None and 0 < abs(value) < 1e7 else None


def _floats(ds: _Header, keyword: str, n: int) -> tuple[float, ...] | None:
    """n finite floats, else None (absent, wrong count, NaN or absurd values are treated as missing)."""
    value = ds.get(keyword)
    if value is None or isinstance(value, str | bytes):
        return None
    try:
        out = tuple([float(v) for v in value])
    except (TypeError, ValueError):
        return None
    if len(out) != n:
        return None
    for v in out:
        if not abs(v) < 1e7:  # also false for NaN
            return None
    return out


_RESCALE_LIMIT = 1e20  # far beyond any real slope or intercept; values x slope stay finite in float32
_RESCALE_TAGS = {"RescaleSlope": "(0028,1053)", "RescaleIntercept": "(0028,1052)", "DoseGridScaling": "(3004,000E)"}


def _rescale_value(ds: _Header, keyword: str, path: str | None) -> float | None:
    """Rescale Slope, Intercept or Dose Grid Scaling: None when absent or empty; a value that is not a
    finite, sensible number is refused (applied to the pixels it would give NaN, inf or garbage silently)."""
    value = ds.get(keyword)
    if value is None or isinstance(value, str | bytes) and not value.strip():
        return None
    out = _float(ds, keyword)
    if out is None or abs(out) > _RESCALE_LIMIT:
        value = ds.ds[_TAG[keyword]].value  # as written in the file (a plain value is a float)
        shown = "\\".join(map(str, value)) if _is_many(value) else str(value)
        raise BrokenDicomError(
            f"{keyword} {_RESCALE_TAGS[keyword]} is {shown!r}, not a finite number of sensible size: its pixels "
            "cannot be given real-world values; fix or re-export the file", path)
    return out


_NO_DIFFUSION = DiffusionEncoding(None, None, None)


def _diffusion(ds: _Header) -> DiffusionEncoding:
    """:func:`diffusion_of`, skipped for headers without any element it reads."""
    if "DiffusionBValue" in ds or any(tag >> 16 in _DIFFUSION_GROUPS for tag in ds.elements):
        return diffusion_of(ds.ds)
    return _NO_DIFFUSION


def _orientation(ds: _Header) -> tuple[float, float, float, float, float, float] | None:
    values = _floats(ds, "ImageOrientationPatient", 6)
    if values is None:
        return None
    row, col = values[:3], values[3:]
    norm_r = math.sqrt(sum(v * v for v in row))
    norm_c = math.sqrt(sum(v * v for v in col))
    if not (0.9 < norm_r < 1.1 and 0.9 < norm_c < 1.1):
        return None
    if abs(sum(a * b for a, b in zip(row, col, strict=True))) > 0.05:  # not orthogonal
        return None
    return tuple(v / norm_r for v in row) + tuple(v / norm_c for v in col)  # type: ignore[return-value]


def record_from_frame(
    ds: Dataset,
    *,
    path: str | None = None,
    frame: int | None = None,
    number_of_frames: int = 1,
    mosaic_tiles: int | None = None,
    transfer_syntax: str = "",
    pixel_offset: int | None = None,
    pixel_length: int | None = None,
    values: Mapping[int, Any] | None = None,
) -> SliceRecord:
    """Build the record of one slice from its (frame-normalised) header.

    Parameters
    ----------
    ds
        The header of one slice: a single-frame dataset, or one frame of a multi-frame object or one tile
        of a mosaic as made by :func:`medipy.io.dicom.frames.frame_headers` (functional groups merged).
    path, frame, number_of_frames, mosaic_tiles
        Where the slice is: its file, the frame or tile index in that file, the frame count of the file
        and the tiles per side of a mosaic.
    transfer_syntax, pixel_offset, pixel_length
        How its pixels are stored in the file.
    values
        Values of some of its elements by tag, already decoded as pydicom would (see
        :func:`medipy.io.dicom.plain_values.plain_value`), read instead of converting those elements.

    Returns
    -------
    SliceRecord
    """
    header = _Header(ds, values)
    spacing = _floats(header, "PixelSpacing", 2) or _floats(header, "ImagerPixelSpacing", 2)
    if spacing is not None and not all(v > 0 for v in spacing):
        spacing = None
    slope = _rescale_value(header, "RescaleSlope", path)
    if slope is None and "DoseGridScaling" in header:  # RT Dose: stored value x Dose Grid Scaling = dose (Gy)
        slope = _rescale_value(header, "DoseGridScaling", path)
    intercept = _rescale_value(header, "RescaleIntercept", path)
    b_value, gradient, gradient_logical = _diffusion(header)
    frame_type = _text(header, "FrameType") or _text(header, "ImageType")
    return SliceRecord(
        path=path,
        frame=frame,
        number_of_frames=number_of_frames,
        mosaic_tiles=mosaic_tiles,
        sop_instance_uid=_text(header, "SOPInstanceUID"),
        series_instance_uid=_text(header, "SeriesInstanceUID"),
        study_instance_uid=_text(header, "StudyInstanceUID"),
        patient_id=_text(header, "PatientID"),
        modality=_text(header, "Modality"),
        series_number=_int(header, "SeriesNumber"),
        series_description=_text(header, "SeriesDescription"),
        protocol_name=_text(header, "ProtocolName"),
        instance_number=_int(header, "InstanceNumber"),
        acquisition_number=_int(header, "AcquisitionNumber"),
        rows=_int(header, "Rows") or 0,
        columns=_int(header, "Columns") or 0,
        samples_per_pixel=_int(header, "SamplesPerPixel") or 1,
        photometric_interpretation=_text(header, "PhotometricInterpretation"),
        bits_allocated=_int(header, "BitsAllocated") or 0,
        bits_stored=_int(header, "BitsStored") or _int(header, "BitsAllocated") or 0,
        pixel_representation=_int(header, "PixelRepresentation") or 0,
        pixel_spacing=spacing,  # type: ignore[arg-type]
        orientation=_orientation(header),
        position=_floats(header, "ImagePositionPatient", 3),  # type: ignore[arg-type]
        slice_thickness=_length(header, "SliceThickness"),
        spacing_between_slices=_length(header, "SpacingBetweenSlices"),
        gantry_tilt=_float(header, "GantryDetectorTilt"),
        echo_number=_int(header, "EchoNumbers"),
        echo_time=_float(header, "EchoTime") if "EchoTime" in header else _float(header, "EffectiveEchoTime"),
        temporal_position=(
            _int(header, "TemporalPositionIdentifier")
            if "TemporalPositionIdentifier" in header
            else _int(header, "TemporalPositionIndex")
        ),
        trigger_time=_float(header, "TriggerTime"),
        acquisition_time=_text(header, "AcquisitionTime") or _text(header, "FrameAcquisitionDateTime"),
        frame_type=frame_type,
        b_value=b_value,
        gradient=gradient,
        gradient_logical=gradient_logical,
        rescale_slope=1.0 if slope is None or slope == 0 else slope,
        rescale_intercept=0.0 if intercept is None else intercept,
        transfer_syntax=transfer_syntax,
        pixel_offset=pixel_offset,
        pixel_length=pixel_length,
    )


def _pixel_location(ds: Dataset, transfer_syntax: str) -> tuple[int | None, int | None]:
    """Byte offset and length of native Pixel Data in the file it was read from, when known."""
    if transfer_syntax not in _NATIVE or 0x7FE00010 not in ds:
        return None, None
    element = ds.get_item(0x7FE00010, keep_deferred=True)  # a deferred value is located, not read
    tell = getattr(element, "value_tell", None)
    length = getattr(element, "length", None)
    if tell is None or length is None or length == 0xFFFFFFFF:
        return None, None
    return int(tell), int(length)


def dataset_records(ds: Dataset, *, path: str | None = None, values: Mapping[int, Any] | None = None
                    ) -> tuple[list[Dataset], list[SliceRecord]]:
    """The frame headers of a dataset and the record of each (see :mod:`medipy.io.dicom.frames`).

    Parameters
    ----------
    ds
        An image dataset, full or read without (or with deferred) Pixel Data.
    path
        Its file (defaults to the dataset's ``path`` or ``filename``).
    values
        Plain values of some elements of ``ds`` (see :func:`record_from_frame`), used when ``ds`` is a single
        slice (the frames of a multi-frame object or mosaic have headers of their own).

    Returns
    -------
    (headers, records)
        One header and one record per slice, in the same order.
    """
    if path is None:
        path = getattr(ds, "path", None) or (ds.filename if isinstance(getattr(ds, "filename", None), str) else None)
    source = getattr(ds, "source", None)
    holder = ds if source is None else source  # the dataset that holds the pixels
    syntax = transfer_syntax_of(holder) or ""
    if not syntax and getattr(holder, "_read_implicit", None) is not None:
        # no meta: the encoding pydicom read it with stands for the transfer syntax
        syntax = "1.2.840.10008.1.2" if holder._read_implicit else (
            "1.2.840.10008.1.2.1" if holder._read_little else "1.2.840.10008.1.2.2")
    layout = frame_layout(holder)
    if source is not None or layout.kind == "single":  # frames split already, or a plain slice: ds itself
        headers: list[Dataset] = [ds]
    else:
        headers = list(frame_headers(ds, layout))
    offset, length = _pixel_location(holder, syntax)
    frames = layout.count if layout.kind not in ("single", "mosaic") else 1
    records = [
        record_from_frame(
            header,
            path=path,
            frame=getattr(header, "frame", None),
            number_of_frames=frames,
            mosaic_tiles=layout.mosaic_tiles,
            transfer_syntax=syntax,
            pixel_offset=offset,
            pixel_length=length,
            values=values if header is ds else None,
        )
        for header in headers
    ]
    return headers, records
