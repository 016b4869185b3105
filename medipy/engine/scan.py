"""Scan: a dask bag of small header records, one header parse per file, pixels left in the files.

Each file of an export becomes either a :class:`ScannedFile` (its slice records, from
:func:`medipy.io.dicom.record.dataset_records`, and the public attributes of each slice as compact DICOM
JSON entries) or a :class:`FileIssue` (path, kind, reason): a file that is not DICOM, broken, unreadable or
without pixels never raises out of the bag. Files are scanned in batches (one task per partition, not per
file): dask costs ~0.3 ms per task with threads and several ms with distributed, far more than pydicom's
~1 ms per header.

Within a batch, an element whose raw bytes (tag, VR, value, encoding) were already seen is converted by
pydicom once (:class:`ElementMemo`): most elements of a series are equal in every file, so that the
conversion of values and their DICOM JSON costs about one file per series and batch, and the JSON entries
of a batch are shared objects (pickled once per batch, compared by identity in the plan).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from medipy.errors import BrokenDicomError, DicomError, MedipyError, NotDicomError
from medipy.io.dicom.keys import series_key
from medipy.io.dicom.plain_values import plain_values_enabled, public_vr, raw_plain_value
from medipy.io.dicom.record import SliceRecord, plain_state

__all__ = [
    "ElementMemo",
    "FileIssue",
    "IssueKind",
    "ScanOptions",
    "ScannedFile",
    "header_entries",
    "header_json",
    "list_files",
    "scan_bag",
    "scan_chunks",
    "scan_file",
    "scan_files",
]

logger = logging.getLogger(__name__)


class IssueKind:
    """The kinds of :class:`FileIssue`: the first five are failures, the others files skipped on purpose."""

    NOT_DICOM = "not-dicom"  #: not a DICOM file at all (text, NIfTI, gzip, empty...)
    BROKEN = "broken"  #: starts as DICOM but cannot be parsed or decoded (truncated, corrupt)
    UNREADABLE = "unreadable"  #: the file system refused to read it
    UNSUPPORTED = "unsupported"  #: valid DICOM whose pixels medipy cannot assemble (e.g. 1-bit SEG)
    UNDECODABLE = "undecodable"  #: a header that parses, with Pixel Data no decoder can read
    NON_IMAGE = "non-image"  #: valid DICOM without Pixel Data (SR, RT plan, presentation state...)
    DICOMDIR = "dicomdir"  #: a DICOMDIR: an index of the export, not an image
    DUPLICATE = "duplicate"  #: same SOP Instance UID as a file kept elsewhere

    FAILURES = frozenset({NOT_DICOM, BROKEN, UNREADABLE, UNSUPPORTED, UNDECODABLE})


@dataclass(frozen=True, slots=True)
class FileIssue:
    """A file that yields no slice: where, what kind (see :class:`IssueKind`) and why."""

    path: str
    kind: str
    reason: str

    @property
    def is_failure(self) -> bool:
        """True for not-DICOM, broken, unreadable and unsupported files; False for skipped ones."""
        return self.kind in IssueKind.FAILURES

    def as_dict(self) -> dict[str, str]:
        """Plain dict (for JSON attributes and reports)."""
        return {"path": self.path, "kind": self.kind, "reason": self.reason}

    def relative_to(self, root: str | None) -> FileIssue:
        """The same issue with its path (and the folder in its reason) relative to ``root``, ``/``-separated.

        ``root`` and the path are as the scan saw them (both absolute, or both relative to the working
        folder); without ``root`` or a path, the issue is returned as is.
        """
        if root is None or not self.path:
            return self
        reason = self.reason
        for prefix in sorted({os.path.join(os.path.abspath(root), ""), os.path.join(root, "")}, key=len,
                             reverse=True):  # the absolute form first: the given one may be a part of it
            reason = reason.replace(prefix, "")
        return FileIssue(os.path.relpath(self.path, root).replace(os.sep, "/"), self.kind, reason)


plain_state(FileIssue)


@dataclass(frozen=True, slots=True)
class ScannedFile:
    """The slices of one image file: records and, per slice, its public attributes as DICOM JSON entries.

    ``headers[i]`` holds ``(tag, entry)`` pairs of slice ``i`` in tag order: ``tag`` as 8 hex digits, ``entry``
    the compact DICOM JSON text of the element (PS3.18 F), e.g. ``("00080060", '{"vr":"CS","Value":["MR"]}')``
    (see :func:`header_entries`). Equal entries of one batch are the same objects.
    """

    path: str
    series: str
    records: tuple[SliceRecord, ...]
    headers: tuple[tuple[tuple[str, str], ...], ...]


plain_state(ScannedFile)


@dataclass(frozen=True, slots=True)
class ScanOptions:
    """How files are scanned.

    Attributes
    ----------
    defer_size
        Elements longer than this many bytes are not loaded during the scan (Pixel Data in particular:
        its offset and length are recorded instead).
    files_per_partition
        Upper bound of files per bag partition (one task scans a whole partition).
    partitions_per_worker
        Lower bound of partitions per worker, for load balance on small exports.
    """

    defer_size: int = 1024
    files_per_partition: int = 512
    partitions_per_worker: int = 4


_SKIPPED_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN", "SQ"})
_SKIPPED_TAGS = frozenset({0x00280008})  # Number of Frames: a property of the file, not of a slice
# Specific Character Set; Image Type and Number of Frames, read from the dataset to find its frame layout
# (medipy.io.dicom.frames): converted by pydicom (once per batch), never given as plain values
_CONVERTED_TAGS = frozenset({0x00080005, 0x00080008, 0x00280008})
_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)  # compact DICOM JSON, made once
_MAX_ENTRY = 4096  # characters: longer text values are not metadata worth repeating per slice
_MEMO_LIMIT = 65536  # elements remembered per batch (a batch of unusual files never grows without bound)


#: What a memo knows of a raw value: the element to share (pydicom's, or the raw one for a plain value), its
#: DICOM JSON entry (None: not metadata) and its plain value (None: converted by pydicom).
_Known = tuple[Any, tuple[str, str] | None, Any]


class ElementMemo:
    """Converted elements and their DICOM JSON entries, remembered for one batch of files.

    pydicom converts an element's raw bytes to its value on first access (~40 us each); most elements of a
    series hold the same bytes in every file. :meth:`prime` replaces the raw elements of a freshly read
    dataset by the element pydicom made from equal raw bytes (same tag, VR, value, VR encoding, byte order
    and character set) in an earlier file of the batch, so that each distinct value is converted once; its
    JSON entry (:meth:`entry`) is then made once as well. Only public, loaded, non-sequence elements whose
    VR does not depend on other elements (no ``US or SS`` resolved from Pixel Representation) are shared.
    Simple string elements are not converted at all when the caller takes their plain values (see
    :meth:`prime`).
    """

    def __init__(self) -> None:
        # per encoding (implicit VR, little endian, character set): (tag, VR, value) -> what is known of it
        self._tables: dict[tuple, dict[tuple, _Known]] = {}
        self._size = 0
        self._entries: dict[int, tuple[Any, tuple[str, str] | None]] = {}
        self._unshared: set[int] = set()  # tags never shared: private, meta and pixel elements
        self._plain_values = plain_values_enabled()  # pydicom's configuration, read once per batch

    def prime(self, ds, entries: bool = False, values: dict[int, Any] | None = None
              ) -> tuple[tuple[str, str], ...] | None:
        """Swap raw elements of ``ds`` for the same values already converted in this batch (else convert).

        Parameters
        ----------
        ds
            A dataset just read, its elements still raw.
        entries
            Also return the DICOM JSON entries of ``ds`` itself (as :func:`header_entries`), made in the same
            pass over its elements.
        values
            With ``entries``: a dict that receives, by tag, the plain values
            (:func:`medipy.io.dicom.plain_values.plain_value`) of the simple string elements whose bytes no
            earlier file of the batch held. Those elements stay raw in ``ds`` (pydicom converts them if they
            are read) and their entries are made without pydicom: the values that differ from file to file
            (SOP Instance UID, Image Position...) cost ~5 us instead of ~50, and the record reads them from
            ``values``. Without ``entries``, all elements are converted by pydicom as before.

        Returns
        -------
        tuple of (str, str) or None
            The entries when asked for, else None.
        """
        from pydicom.dataelem import RawDataElement

        implicit, little = getattr(ds, "_read_implicit", None), getattr(ds, "_read_little", None)
        try:
            charset = ds.original_character_set or ds._character_set
        except Exception:  # noqa: BLE001 - an unreadable character set: no sharing, pydicom reports it later
            charset = implicit = None
        if implicit is None or little is None:  # not read from a file: nothing raw to share
            return header_entries(ds, self) if entries else None
        context = (implicit, little, charset if isinstance(charset, str) else tuple(charset))
        table = self._tables.setdefault(context, {})
        unshared = self._unshared
        out: list[tuple[str, str]] | None = [] if entries else None
        elements = ds._dict
        for tag, raw in list(elements.items()):
            # raw = (tag, VR, length, value, value_tell, is_implicit_VR, is_little_endian, ...)
            if type(raw) is RawDataElement and raw[5] is implicit and raw[6] is little:
                itag = int(tag)
                if itag not in unshared:
                    key = (itag, raw[1], raw[3])
                    known = table.get(key)
                    if known is not None:
                        if type(known[0]) is RawDataElement:  # a plain value: left raw, given as is
                            if values is not None:
                                values[itag] = known[2]
                        else:
                            elements[tag] = known[0]
                        if out is not None and known[1] is not None:
                            out.append(known[1])
                        continue
                    known = (self._plain(itag, raw, values) if out is not None and self._plain_values
                             else None) or self._convert(ds, itag, raw, charset)
                    if known is not None:
                        if self._size < _MEMO_LIMIT:
                            table[itag, raw[1], raw[3]] = known
                            self._size += 1
                        if out is not None and known[1] is not None:
                            out.append(known[1])
                        continue
            if out is not None and _is_metadata_tag(int(tag)):
                pair = self.entry(ds, raw)
                if pair is not None:
                    out.append(pair)
        return None if out is None else tuple(out)

    def _convert(self, ds, tag: int, raw, charset) -> _Known | None:
        """The converted element and entry of a raw element worth sharing, else None (left to the caller)."""
        group = tag >> 16
        if group & 1 or group in (0x0002, 0x7FE0):
            self._unshared.add(tag)
            return None
        if (tag == 0x00080005 or raw.value is None or raw.VR == "SQ" or raw.length == 0xFFFFFFFF
                or not _stable_vr(tag, raw.VR)):
            return None
        element = _pydicom_element(ds, raw, charset)
        if element is None:
            return None
        ds._dict[raw.tag] = element
        return element, (_entry(ds, element) if _is_metadata_tag(tag) else None), None

    def _plain(self, tag: int, raw, values: dict[int, Any] | None) -> _Known | None:
        """The raw element and its entry made from its plain value (see :meth:`prime`), else None."""
        group = tag >> 16
        if group & 1 or group in (0x0002, 0x7FE0) or tag in _CONVERTED_TAGS or raw.value is None:
            return None
        value = raw_plain_value(tag, raw)
        if value is None:
            return None
        if values is not None:
            values[tag] = value
        if not _is_metadata_tag(tag):
            return raw, None, value
        listed = value if type(value) is list else [value]
        if len(str(listed)) > _MAX_ENTRY:
            return raw, None, value
        text = f'{{"vr":"{public_vr(tag, raw.VR)}","Value":{_JSON.encode(listed)}}}'  # as _entry writes it
        return raw, (f"{tag:08X}", text), value

    def entry(self, header, element) -> tuple[str, str] | None:
        """``(tag, DICOM JSON text)`` of one element of ``header``, or None when it is not metadata."""
        key = id(element)
        known = self._entries.get(key)
        if known is not None and known[0] is element:
            return known[1]
        pair = _entry(header, element)
        if len(self._entries) < _MEMO_LIMIT:
            self._entries[key] = (element, pair)  # the element is kept alive: its id is not reused
        return pair


def _pydicom_element(ds, raw, charset):
    """pydicom's conversion of a raw element of ``ds`` (what ``ds[tag]`` does for a public, loaded element of a
    stable VR), or None when it fails (left raw: whoever reads it gets pydicom's error)."""
    from pydicom.dataelem import convert_raw_data_element

    try:
        return convert_raw_data_element(raw, encoding=charset, ds=ds)
    except Exception:  # noqa: BLE001
        return None


def _stable_vr(tag, vr: str | None) -> bool:
    """True when an element's VR does not depend on other elements of its dataset."""
    if vr is not None and vr != "UN":
        return True
    from pydicom.datadict import dictionary_VR

    try:
        return " or " not in dictionary_VR(tag)
    except KeyError:
        return vr == "UN"


def _is_metadata_tag(tag: int) -> bool:
    group = tag >> 16
    return not (group & 1 or group in (0x0002, 0x7FE0) or tag in _SKIPPED_TAGS)


def header_entries(header, memo: ElementMemo | None = None) -> tuple[tuple[str, str], ...]:
    """Public, non-binary, non-sequence attributes of one slice header as compact DICOM JSON entries.

    Parameters
    ----------
    header
        A (frame) header as made by :func:`medipy.io.dicom.record.dataset_records`.
    memo
        Entries already made in this batch (frame headers of one file, and files of one series, share
        their elements).

    Returns
    -------
    tuple of (str, str)
        ``(("0020000E", '{"vr":"UI","Value":["1.2.3"]}'), ...)`` in tag order (see :func:`header_json`).
    """
    memo = memo or ElementMemo()
    out = []
    for tag, element in header._dict.items():  # raw or converted, as Dataset.get_item returns them
        if _is_metadata_tag(tag):
            pair = memo.entry(header, element)
            if pair is not None:
                out.append(pair)
    return tuple(out)


def header_json(header, memo: ElementMemo | None = None) -> str:
    """Public, non-binary, non-sequence attributes of one slice header as compact DICOM JSON (PS3.18 F).

    Parameters
    ----------
    header
        A (frame) header as made by :func:`medipy.io.dicom.record.dataset_records`.
    memo
        Entries already made (see :func:`header_entries`).

    Returns
    -------
    str
        ``{"0020000E": {"vr": "UI", "Value": [...]}, ...}`` without whitespace.
    """
    return "{" + ",".join(f'"{tag}":{text}' for tag, text in header_entries(header, memo)) + "}"


def _entry(header, element) -> tuple[str, str] | None:
    """``(tag, DICOM JSON text)`` of an element of ``header`` (converted by pydicom if still raw), or None for
    binary, sequence, private, undecodable or overlong values."""
    from pydicom.dataelem import RawDataElement

    try:
        if type(element) is RawDataElement:
            if _raw_vr(element) in _SKIPPED_VRS:  # not metadata: not even converted
                return None
            element = header[element.tag]
        if element.VR in _SKIPPED_VRS or not element.keyword:
            return None
        entry = element.to_json_dict(None, 0)
    except Exception:  # noqa: BLE001 - an undecodable value is not metadata; the record holds what matters
        return None
    if len(str(entry.get("Value", ""))) > _MAX_ENTRY:
        return None
    return f"{int(element.tag):08X}", _JSON.encode(entry)


def _raw_vr(raw) -> str | None:
    """The VR pydicom gives a raw element: its own (explicit VR), else (implicit VR, or UN that pydicom
    replaces with the known VR) the first of the dictionary's."""
    if raw.VR is not None and raw.VR != "UN":
        return raw.VR
    from pydicom.datadict import dictionary_VR

    try:
        return dictionary_VR(raw.tag).split(" or ")[0]
    except KeyError:
        return raw.VR


_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)  # Pixel Data, Float and Double Float Pixel Data
_DIRECTORY_RECORDS = 0x00041220  # Directory Record Sequence: a DICOMDIR
_NUMBER_OF_FRAMES = 0x00280008


def _has_pixels(ds) -> bool:
    return any(tag in ds._dict for tag in _PIXEL_TAGS)


def scan_file(path: str, options: ScanOptions | None = None, memo: ElementMemo | None = None
              ) -> ScannedFile | FileIssue:
    """Parse one file's header (once) into a :class:`ScannedFile`, or describe why it yields no slice.

    Parameters
    ----------
    path
        The file.
    options
        Scan options (defer size).
    memo
        Elements converted in earlier files of the batch (see :class:`ElementMemo`).

    Returns
    -------
    ScannedFile or FileIssue
        Never raises for a bad file: not-DICOM, broken and unreadable files, DICOMDIRs and non-image DICOM
        become a :class:`FileIssue`.
    """
    from medipy.io.dicom.reading import parse_file
    from medipy.io.dicom.record import dataset_records

    options = options or ScanOptions()
    memo = memo or ElementMemo()
    try:
        # lengths only: the public elements are converted right after (memo.prime), a corrupt value fails there
        ds = parse_file(path, defer_size=options.defer_size, check="lengths")
    except NotDicomError as exc:
        return FileIssue(path, IssueKind.NOT_DICOM, exc.reason)
    except BrokenDicomError as exc:
        return FileIssue(path, IssueKind.BROKEN, exc.reason)
    except OSError as exc:
        return FileIssue(path, IssueKind.UNREADABLE, f"{type(exc).__name__}: {exc.strerror or exc}")
    except MedipyError as exc:  # any other medipy error of one file is that file's failure
        return FileIssue(path, IssueKind.BROKEN, str(exc))
    if _DIRECTORY_RECORDS in ds._dict:
        return FileIssue(path, IssueKind.DICOMDIR, "DICOMDIR: an index of the export, not an image")
    if not _has_pixels(ds):
        sop_class = ds.get("SOPClassUID")
        name = getattr(sop_class, "name", None) or str(sop_class or "unknown SOP Class")
        return FileIssue(path, IssueKind.NON_IMAGE, f"no Pixel Data ({name})")
    try:
        values: dict[int, Any] = {}
        own = memo.prime(ds, entries=_NUMBER_OF_FRAMES not in ds._dict, values=values)  # single-frame: entries
        headers, records = dataset_records(ds, path=path, values=values)
        if len(headers) == 1 and headers[0] is ds and own is not None:  # a single-frame slice: entries made
            entries: tuple[tuple[tuple[str, str], ...], ...] = (own,)
        else:
            entries = tuple(header_entries(h, memo) for h in headers)
    except DicomError as exc:
        return FileIssue(path, IssueKind.BROKEN, exc.reason)
    except Exception as exc:  # noqa: BLE001 - rule: one bad file never stops the bag
        logger.debug("%s: cannot make slice records", path, exc_info=True)
        return FileIssue(path, IssueKind.BROKEN, f"cannot read its slices ({type(exc).__name__}: {exc})")
    if not records:
        return FileIssue(path, IssueKind.NON_IMAGE, "no slice in the Pixel Data")
    return ScannedFile(path, series_key(records[0]), tuple(records), entries)


def scan_files(paths: Sequence[str], options: ScanOptions | None = None) -> list[ScannedFile | FileIssue]:
    """:func:`scan_file` over a batch of files (the function each bag partition runs), with one memo."""
    memo = ElementMemo()
    return [scan_file(p, options, memo) for p in paths]


def _dicomdir_files(dicomdir: str) -> list[str]:
    """The files a DICOMDIR references (directory records with a Referenced File ID)."""
    from medipy.io.dicom.dicomdir import resolve_referenced_file
    from medipy.io.dicom.reading import parse_file

    # lengths checked, values converted when used: the records' File IDs only (every element of a
    # 20,000-record DICOMDIR converted took ~12 s, against ~1 s)
    ds = parse_file(dicomdir, check="lengths")
    try:
        records = ds.get("DirectoryRecordSequence") or []
    except Exception as exc:  # noqa: BLE001 - pydicom's error parsing the records: not a usable DICOMDIR
        raise BrokenDicomError(f"its Directory Record Sequence cannot be read ({exc})", dicomdir) from exc
    out: list[str] = []
    for record in records:
        try:
            file_id = record.get("ReferencedFileID")
        except Exception as exc:  # noqa: BLE001 - one corrupt record: its file is not listed
            logger.warning("%s: a directory record's Referenced File ID cannot be read (%s)", dicomdir, exc)
            continue
        if file_id:
            try:
                out.append(str(resolve_referenced_file(dicomdir, file_id)))
            except (DicomError, OSError) as exc:
                logger.warning("%s: %s", dicomdir, exc)
    return out


def list_files(source: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], *,
               follow_links: bool = False) -> list[str]:
    """The files to scan: a folder tree (walked in sorted order), a DICOMDIR, or a list of paths.

    Folders are walked by :func:`medipy.engine.walk.walk_folder`: links leaving the input, link loops, unreadable
    folders and FIFOs are left out (:func:`medipy.engine.walk.collect_files` also returns them as issues).

    Parameters
    ----------
    source
        A folder, a DICOMDIR file, one file, or an iterable of files and folders.
    follow_links
        Also follow symbolic links that leave the input (see :func:`medipy.engine.walk.walk_folder`).

    Returns
    -------
    list of str
        Unique paths in a deterministic order.

    Raises
    ------
    FileNotFoundError
        A given path does not exist.
    """
    from medipy.engine.walk import collect_files

    return collect_files(source, follow_links=follow_links).paths


def partition_count(n_files: int, workers: int, options: ScanOptions | None = None) -> int:
    """Partitions for ``n_files``: few enough to amortise task costs, enough to keep workers busy."""
    options = options or ScanOptions()
    if n_files == 0:
        return 1
    by_size = math.ceil(n_files / options.files_per_partition)
    by_workers = max(1, workers) * options.partitions_per_worker
    return max(1, min(n_files, max(by_size, by_workers)))


def scan_bag(paths: Sequence[str], *, workers: int = 1, options: ScanOptions | None = None):
    """A dask bag of :class:`ScannedFile` and :class:`FileIssue`, one per path, scanned in batches.

    Parameters
    ----------
    paths
        The files (see :func:`list_files`).
    workers
        Number of parallel workers (sets the partition count, see :func:`partition_count`).
    options
        Scan options.

    Returns
    -------
    dask.bag.Bag
    """
    import dask.bag as db

    options = options or ScanOptions()
    chunks = scan_chunks(paths, workers, options)
    return db.from_sequence(chunks, npartitions=len(chunks)).map_partitions(_scan_partition, options)


#: The last round of scan batches (one per worker) is cut into this many smaller ones: batches are taken in
#: order, so that the workers run out of files together instead of one waiting for the other's last whole batch.
TAIL_SPLIT = 4


def scan_chunks(paths: Sequence[str], workers: int = 1, options: ScanOptions | None = None) -> list[list[str]]:
    """The batches of files the scan tasks take, in order (see :func:`partition_count`), the last ``workers`` of
    them cut into :data:`TAIL_SPLIT` smaller ones; at least one, maybe empty."""
    n = partition_count(len(paths), workers, options)
    size = max(1, math.ceil(len(paths) / n))
    chunks = [list(paths[i:i + size]) for i in range(0, len(paths), size)] or [[]]
    if workers <= 1 or len(chunks) <= workers:
        return chunks
    tail = [p for chunk in chunks[-workers:] for p in chunk]
    step = max(1, math.ceil(len(tail) / (workers * TAIL_SPLIT)))
    return chunks[:-workers] + [tail[i:i + step] for i in range(0, len(tail), step)]


def _scan_partition(chunks: list[list[str]], options: ScanOptions) -> list[ScannedFile | FileIssue]:
    out: list[ScannedFile | FileIssue] = []
    for chunk in chunks:
        out.extend(scan_files(chunk, options))
    return out
