"""Grouping of datasets into series, and of a series into stacks (the public ``series`` and ``stacks``)."""

from __future__ import annotations

from collections.abc import Sequence

from pydicom.dataset import Dataset

from medipy.io.dicom.keys import series_key, series_order, split_stacks
from medipy.io.dicom.record import SliceRecord

__all__ = ["series", "stacks"]

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value is None else str(value).strip()


def _series_record(ds: Dataset, study_uid: str | None = None) -> SliceRecord:
    """The few attributes the series keys use, as a record."""
    try:
        number = int(ds.get("SeriesNumber")) if ds.get("SeriesNumber") not in (None, "") else None
    except (TypeError, ValueError):
        number = None
    return SliceRecord(
        series_instance_uid=_text(ds, "SeriesInstanceUID"),
        study_instance_uid=study_uid if study_uid is not None else _text(ds, "StudyInstanceUID"),
        series_number=number,
    )


def _has_image_child(record: Dataset) -> bool:
    for child in getattr(record, "children", None) or []:
        if "ReferencedFileID" in child or _has_image_child(child):
            return True
    return False


def series(datasets: Sequence[Dataset], keep_only_images: bool = True) -> list[list[Dataset]]:
    """Group datasets by Series Instance UID.

    Parameters
    ----------
    datasets
        Datasets read with :func:`medipy.io.dicom.read`: image files, DICOMDIRs (their SERIES records join
        the group of their UID), or directory records.
    keep_only_images
        Drop datasets without Pixel Data, and DICOMDIR SERIES records without a lower-level record that
        references a file.

    Returns
    -------
    list of list of DataSet
        One list per series, in a deterministic order: by Study Instance UID, then Series Number, then
        Series Instance UID; within a series, the input order.

    Examples
    --------
    >>> datasets = [medipy.io.dicom.read(f) for f in filenames]  # doctest: +SKIP
    >>> for serie in medipy.io.dicom.series(datasets):  # doctest: +SKIP
    ...     print(medipy.io.dicom.uid_and_description(serie))
    """
    groups: dict[str, list[Dataset]] = {}
    order: dict[str, tuple] = {}

    def add(ds: Dataset, record: SliceRecord) -> None:
        key = series_key(record)
        groups.setdefault(key, []).append(ds)
        order[key] = min(order.get(key, series_order(record)), series_order(record))

    for ds in datasets:
        if "DirectoryRecordSequence" in ds:
            from medipy.io.dicom.dicomdir import record_study_uid, series_records

            for record in series_records(ds):
                if keep_only_images and not _has_image_child(record):
                    continue
                add(record, _series_record(record, record_study_uid(record) or ""))
        elif "DirectoryRecordType" in ds:
            if str(ds.DirectoryRecordType).upper() == "SERIES" and (
                not keep_only_images or _has_image_child(ds)
            ):
                from medipy.io.dicom.dicomdir import record_study_uid

                add(ds, _series_record(ds, record_study_uid(ds) or ""))
        elif not keep_only_images or any(k in ds for k in _PIXEL_KEYWORDS):
            add(ds, _series_record(ds))
    return [groups[key] for key in sorted(groups, key=lambda k: order[k])]


def stacks(serie: Sequence[Dataset]) -> list[list[Dataset]]:
    """Split a series into stacks: slices that share one orientation and can form one 3D volume.

    Enhanced multi-frame objects, Siemens mosaics and NM multi-frame are first normalised into one dataset
    per frame (see :mod:`medipy.io.dicom.frames`). Two slices share a stack only if they share orientation
    (within a tolerance), Rows/Columns, Pixel Spacing, echo, temporal position, frame type, diffusion
    b-value and gradient direction; slices repeating positions are split into one stack per volume (see
    :mod:`medipy.io.dicom.keys`).

    Parameters
    ----------
    serie
        The image datasets of one series (DICOMDIR records must be loaded first with
        :func:`medipy.io.dicom.load_dicomdir_records`).

    Returns
    -------
    list of list of DataSet
        One list per stack, each sorted along the slice normal; stacks in acquisition order.

    Examples
    --------
    >>> stack = medipy.io.dicom.stacks(serie)[0]  # doctest: +SKIP
    >>> image = medipy.io.dicom.image(stack)  # doctest: +SKIP
    """
    from medipy.io.dicom.assembly import slice_records

    headers, records = slice_records(serie)
    return [[headers[i] for i in stack] for stack in split_stacks(records)]
