"""A series' UID and a human-readable description, for listing series to a user."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from pydicom.dataset import Dataset

from medipy.errors import DicomError
from medipy.io.dicom.dataset import DataSet
from medipy.io.dicom.dicomdir import resolve_referenced_file
from medipy.io.dicom.reading import read

__all__ = ["uid_and_description"]

logger = logging.getLogger(__name__)


def uid_and_description(serie: Iterable[Dataset], base_directory: str | os.PathLike[str] | None = None,
                        default_description: str = "(no description)") -> tuple[str, str]:
    """The Series Instance UID and a description of a series.

    Parameters
    ----------
    serie
        The datasets of one series (files, or DICOMDIR directory records, as grouped by
        :func:`medipy.io.dicom.series`).
    base_directory
        The folder holding the DICOMDIR, against which the Referenced File IDs of records are resolved;
        default: the folder of each record's DICOMDIR (its ``path``).
    default_description
        The description when none is found.

    Returns
    -------
    tuple of (str, str)
        Plain strings: the Series Instance UID of the first dataset that has one (``""`` if none has), and
        the description: the first non-empty Series Description (0008,103E) of the datasets; else, for
        DICOMDIR records without one, the Series Description of the first file referenced by a record or its
        lower-level records (read without pixels); else the first Protocol Name (0018,1030) of these; else
        ``default_description``.

    Notes
    -----
    A referenced file that cannot be read (missing, not DICOM, outside the DICOMDIR's folder) does not fail
    the call: it is logged as a warning and the next fallback is used.

    Examples
    --------
    >>> uid, description = uid_and_description(series[0])  # doctest: +SKIP
    >>> description  # doctest: +SKIP
    'T1 SE'
    """
    datasets = list(serie)
    uid = next((str(ds.SeriesInstanceUID) for ds in datasets if ds.get("SeriesInstanceUID")), "")
    candidates = list(datasets)
    description = _first_text(candidates, "SeriesDescription")
    if description is None:
        referenced = _first_referenced(datasets, base_directory)
        if referenced is not None:
            candidates.append(referenced)
            description = _first_text([referenced], "SeriesDescription")
    if description is None:
        description = _first_text(candidates, "ProtocolName")
    return uid, default_description if description is None else description


def _first_text(datasets: Iterable[Dataset], keyword: str) -> str | None:
    for ds in datasets:
        value = ds.get(keyword)
        if value is not None and str(value).strip():
            return str(value).strip()
    return None


def _records(datasets: Iterable[Dataset]) -> Iterator[Dataset]:
    """The directory records among ``datasets`` and their lower-level records, depth first."""
    for ds in datasets:
        if "DirectoryRecordType" in ds:
            yield ds
            yield from _records(getattr(ds, "children", None) or [])


def _first_referenced(datasets: list[Dataset],
                      base_directory: str | os.PathLike[str] | None) -> Dataset | None:
    """The first file referenced by the records (or their children), read without pixels; None if none."""
    for record in _records(datasets):
        file_id = record.get("ReferencedFileID")
        if not file_id:
            continue
        if base_directory is not None:
            folder: Path | None = Path(base_directory)
        else:
            path = getattr(record, "path", None) if isinstance(record, DataSet) else None
            folder = None if path is None else Path(path).parent
        if folder is None:
            logger.warning("a %s record does not know its DICOMDIR and no base_directory was given: its "
                           "referenced file is not read", record.get("DirectoryRecordType"))
            return None
        try:
            return read(resolve_referenced_file(folder, file_id), stop_before_pixels=True)
        except (DicomError, OSError) as exc:
            logger.warning("cannot read the file referenced by a DICOMDIR record for its description: %s",
                           exc)
            return None
    return None
