"""DICOMDIR: the record hierarchy, and the files its records reference.

A DICOMDIR read by :func:`medipy.io.dicom.reading.read` has its directory records turned into
:class:`~medipy.io.dicom.dataset.DataSet` objects that know their ``children`` (lower-level records), their
``parent`` (higher-level record, or None) and their ``path`` (the DICOMDIR). The hierarchy comes from the
record offsets when these are consistent, else from the order of the records and their levels.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import cast

from pydicom.dataset import Dataset

from medipy.errors import DicomError, MissingReferencedFileError, UnsafePathError
from medipy.io.dicom.dataset import DataSet

__all__ = ["link_records", "load_dicomdir_records", "record_study_uid", "resolve_referenced_file",
           "series_records"]

logger = logging.getLogger(__name__)

# Record levels for the fallback hierarchy; every other type (IMAGE, RT DOSE, SR DOCUMENT, ...) is a leaf.
_LEVELS = {"PATIENT": 0, "STUDY": 1, "SERIES": 2}
_LEAF_LEVEL = 3
# pydicom's per-item attributes kept when an item is wrapped into a DataSet
_ITEM_ATTRIBUTES = ("_parent_encoding", "seq_item_tell", "file_tell", "is_undefined_length_sequence_item")


def link_records(dicomdir: Dataset) -> list[DataSet]:
    """Turn the Directory Record Sequence items of ``dicomdir`` into linked DataSets, in place.

    Parameters
    ----------
    dicomdir
        A DICOMDIR: a DataSet (its ``path`` is given to the records) or a pydicom dataset (its ``filename``).

    Returns
    -------
    list of DataSet
        The root records (also stored as ``dicomdir.children``). Each record has ``path`` (the DICOMDIR),
        ``children`` (its lower-level records) and ``parent`` (its higher-level record or None).

    Examples
    --------
    >>> roots = link_records(dicomdir)  # doctest: +SKIP
    >>> [root.DirectoryRecordType for root in roots]  # doctest: +SKIP
    ['PATIENT', 'PATIENT', 'PATIENT']
    """
    sequence = dicomdir.get("DirectoryRecordSequence") or []
    path = getattr(dicomdir, "path", None) or getattr(dicomdir, "filename", None)
    path = path if isinstance(path, str) else None
    records = []
    for index, item in enumerate(sequence):
        record = item if isinstance(item, DataSet) else DataSet(item)
        for attribute in _ITEM_ATTRIBUTES:
            if attribute in item.__dict__:
                record.__dict__[attribute] = item.__dict__[attribute]
        record.path = path
        record.children = []
        record.parent = None
        records.append(record)
        if record is not item:
            sequence[index] = record
    roots = _link_by_offsets(dicomdir, records)
    if roots is None:
        logger.info("%s: record offsets absent or inconsistent, hierarchy built from record order and levels",
                    path)
        roots = _link_by_order(records)
    dicomdir.children = roots
    return roots


def _link_by_offsets(dicomdir: Dataset, records: list[DataSet]) -> list[DataSet] | None:
    """Link by Offset of the Next/Lower-Level records; None if the offsets do not form one tree of all."""
    by_offset = {}
    for record in records:
        offset = record.__dict__.get("seq_item_tell")
        if offset is None:
            return None
        by_offset[offset] = record

    declared = dicomdir.get("OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity") or 0
    keywords = ("OffsetOfTheNextDirectoryRecord", "OffsetOfReferencedLowerLevelDirectoryEntity")
    referenced = {record.get(keyword) or 0 for record in records for keyword in keywords}
    unreferenced = [offset for offset in by_offset if offset not in referenced]
    # The declared root offset first; then the only record no offset points to (some writers forget to
    # update the root offset when they reorder the records).
    candidates = [declared] + (unreferenced if len(unreferenced) == 1 and unreferenced[0] != declared else [])
    for first in candidates:
        roots = _link_tree(first, by_offset)
        if roots is not None and sum(1 for _ in _walk(roots)) == len(records):
            return roots
        for record in records:
            record.children, record.parent = [], None
    return None


def _link_tree(first: int, by_offset: dict[int, DataSet]) -> list[DataSet] | None:
    """The tree whose root chain starts at offset ``first``; None on a dangling or repeated offset."""
    linked: set[int] = set()

    def chain(offset: int) -> list[DataSet] | None:
        out = []
        while offset:
            record = by_offset.get(offset)
            if record is None or offset in linked:
                return None
            linked.add(offset)
            out.append(record)
            offset = record.get("OffsetOfTheNextDirectoryRecord") or 0
        return out

    roots = chain(first)
    pending = list(roots or [])
    while roots is not None and pending:
        parent = pending.pop()
        children = chain(parent.get("OffsetOfReferencedLowerLevelDirectoryEntity") or 0)
        if children is None:
            return None
        parent.children = children
        for child in children:
            child.parent = parent
        pending.extend(children)
    return roots


def _link_by_order(records: list[DataSet]) -> list[DataSet]:
    """Link by sequence order: a record's parent is the closest preceding record of a higher level."""
    roots: list[DataSet] = []
    stack: list[tuple[int, DataSet]] = []
    for record in records:
        level = _LEVELS.get(str(record.get("DirectoryRecordType", "")).strip().upper(), _LEAF_LEVEL)
        while stack and stack[-1][0] >= level:
            stack.pop()
        if stack:
            record.parent = stack[-1][1]
            record.parent.children.append(record)
        else:
            roots.append(record)
        stack.append((level, record))
    return roots


def _walk(records: Iterable[Dataset]) -> Iterator[Dataset]:
    """The records and their descendants, depth first, in record order."""
    for record in records:
        yield record
        yield from _walk(getattr(record, "children", None) or [])


def series_records(dicomdir: Dataset) -> list[DataSet]:
    """The SERIES records of a DICOMDIR, in hierarchy order (patient, study, series).

    Parameters
    ----------
    dicomdir
        A DICOMDIR DataSet returned by :func:`medipy.io.dicom.reading.read` (a pydicom dataset is linked
        first, see :func:`link_records`).

    Returns
    -------
    list of DataSet
        The SERIES records; their ``children`` are their IMAGE (or other leaf) records.

    Examples
    --------
    >>> [len(s.children) for s in series_records(read("DICOMDIR"))]  # doctest: +SKIP
    [1, 1, 1, 3, ...]
    """
    roots = getattr(dicomdir, "children", None) or link_records(dicomdir)
    return [cast(DataSet, record) for record in _walk(roots)
            if str(record.get("DirectoryRecordType", "")).strip().upper() == "SERIES"]


def record_study_uid(record: Dataset) -> str | None:
    """The Study Instance UID of a record's STUDY (the record itself or an ancestor), or None.

    Parameters
    ----------
    record
        A directory record linked by :func:`link_records` (it knows its ``parent``).

    Returns
    -------
    str or None
        The Study Instance UID (0020,000D) of the first STUDY record up the hierarchy.

    Examples
    --------
    >>> record_study_uid(series_records(read("DICOMDIR"))[0])  # doctest: +SKIP
    '1.3.6.1.4.1.5962.1.1.0.0.0.1196527414.5534.0.1'
    """
    current: Dataset | None = record
    while current is not None:
        if str(current.get("DirectoryRecordType", "")).strip().upper() == "STUDY":
            uid = current.get("StudyInstanceUID")
            return None if not uid else str(uid)
        current = getattr(current, "parent", None)
    return None


def _components(file_id: str | Sequence[str], label: str) -> list[str]:
    parts = file_id.split("\\") if isinstance(file_id, str) else [str(part) for part in file_id]
    parts = [part.strip() for part in parts]
    if not parts or any(not part for part in parts):
        raise UnsafePathError(f"Referenced File ID {file_id!r} has an empty component", label)
    for part in parts:
        if any(ord(char) < 0x20 or char == "\x7f" for char in part):
            raise UnsafePathError(
                f"Referenced File ID {file_id!r} has a control character (NUL, newline, ...) in component "
                f"{part!r}; the DICOMDIR is corrupt or malicious, its records cannot be loaded", label)
        if part in (".", "..") or "/" in part or "\\" in part or ":" in part or os.path.isabs(part):
            raise UnsafePathError(
                f"Referenced File ID {file_id!r} would leave the DICOMDIR's folder (component {part!r}); "
                "the DICOMDIR is corrupt or malicious, its records cannot be loaded", label)
    return parts


def _normalised(name: str) -> str:
    """Name as compared case-insensitively: ISO 9660 version (``;1``) and a trailing dot ignored."""
    stem, _, version = name.partition(";")
    return (stem if version.isdigit() else name).rstrip(".").casefold()


def _resolve_existing(path: Path) -> Path:
    """``path`` resolved strictly (a symbolic link loop raises, which a lenient resolve hides from Python
    3.13 on); a path that does not exist is resolved leniently, to be reported as missing."""
    try:
        return path.resolve(strict=True)
    except FileNotFoundError:
        return path.resolve()


def resolve_referenced_file(dicomdir_path: str | os.PathLike[str], file_id: str | Sequence[str]) -> Path:
    """The file a Referenced File ID (0004,1500) designates, under the DICOMDIR's folder.

    Parameters
    ----------
    dicomdir_path
        The DICOMDIR file (or the folder holding it).
    file_id
        The Referenced File ID: its components (a list) or one string with backslash separators.

    Returns
    -------
    pathlib.Path
        The file. A component that does not exist with this exact case is matched case-insensitively (ignoring
        an ISO 9660 ``;1`` version), as CD exports often change the case of names.

    Raises
    ------
    UnsafePathError
        The ID is absolute, has ``..`` or separators, or resolves (symbolic links included) outside the
        folder.
    MissingReferencedFileError
        No such file under the folder; the message names the DICOMDIR and the file.

    Examples
    --------
    >>> resolve_referenced_file("export/DICOMDIR", ["IMAGES", "IM0001"])  # doctest: +SKIP
    PosixPath('export/images/im0001')
    """
    dicomdir_path = Path(dicomdir_path)
    folder = dicomdir_path if dicomdir_path.is_dir() else dicomdir_path.parent
    label = os.fspath(dicomdir_path)
    current = folder
    for part in _components(file_id, label):
        candidate = current / part
        if not os.path.lexists(candidate):
            try:
                names = sorted(os.listdir(current))
            except OSError:
                names = []
            matches = [name for name in names if _normalised(name) == _normalised(part)]
            if not matches:
                raise MissingReferencedFileError(
                    f"Referenced File ID {'/'.join(_components(file_id, label))!r} designates {candidate}, "
                    "which does not exist (not even with another letter case); copy the missing file back or "
                    "drop the record", label)
            candidate = current / matches[0]
        current = candidate
    try:
        root = folder.resolve()
        target = _resolve_existing(current)
    except (OSError, RuntimeError) as exc:  # a symbolic link loop: OSError (ELOOP), RuntimeError before 3.13
        raise UnsafePathError(
            f"Referenced File ID {file_id!r} designates {current}, which cannot be resolved ({exc}; a symbolic "
            "link loop?); refusing to read it", label) from exc
    if not target.is_relative_to(root):
        raise UnsafePathError(
            f"Referenced File ID {file_id!r} resolves to {target}, outside the DICOMDIR's folder {root} "
            "(symbolic link?); refusing to read it", label)
    if not target.is_file():
        raise MissingReferencedFileError(
            f"Referenced File ID {file_id!r} designates {current}, which is not a file; copy the missing "
            "file back or drop the record", label)
    return current


def _describe_record(record: Dataset) -> str:
    kind = str(record.get("DirectoryRecordType", "?")).strip()
    offset = record.__dict__.get("seq_item_tell")
    return f"{kind} record" + ("" if offset is None else f" at offset {offset}")


def load_dicomdir_records(datasets: Iterable[DataSet]) -> list[DataSet]:
    """Replace DICOMDIR records by the files they reference.

    Parameters
    ----------
    datasets
        Datasets, some of them DICOMDIR directory records (e.g. a series of :func:`medipy.io.dicom.series`).

    Returns
    -------
    list of DataSet
        First the datasets that are not directory records, unchanged and in order; then the files referenced
        by the records and (recursively) their lower-level records, read with
        :func:`medipy.io.dicom.reading.read`, each file once, in record order.

    Raises
    ------
    MissingReferencedFileError
        A referenced file does not exist; the message names the DICOMDIR, the record and the file.
    UnsafePathError
        A Referenced File ID would leave the DICOMDIR's folder.
    DicomError
        A record does not know its DICOMDIR (``path`` is None); read the DICOMDIR with medipy.
    NotDicomError, BrokenDicomError
        A referenced file is not DICOM or is broken.

    Examples
    --------
    >>> serie = load_dicomdir_records(series[0])  # doctest: +SKIP
    """
    from medipy.io.dicom.reading import read  # reading imports this module

    datasets = list(datasets)
    out = [dataset for dataset in datasets if not _is_record(dataset)]
    seen: set[Path] = set()
    for record in _walk(dataset for dataset in datasets if _is_record(dataset)):
        file_id = record.get("ReferencedFileID")
        if not file_id:
            continue
        dicomdir_path = getattr(record, "path", None)
        if dicomdir_path is None:
            raise DicomError(f"the {_describe_record(record)} does not know its DICOMDIR (path is None); "
                             "read the DICOMDIR with medipy.io.dicom.read")
        try:
            file = resolve_referenced_file(dicomdir_path, file_id)
        except (MissingReferencedFileError, UnsafePathError) as exc:
            raise type(exc)(f"{_describe_record(record)}: {exc.reason}", dicomdir_path) from exc
        key = file.resolve()
        if key in seen:
            continue
        seen.add(key)
        out.append(read(file))
    return out


def _is_record(dataset: Dataset) -> bool:
    return "DirectoryRecordType" in dataset
