"""Write a DICOMDIR for files already in place, in time linear in their number.

pydicom's :class:`~pydicom.fileset.FileSet` stages a copy of every instance it is given and looks for each
new one among all those added before: ~20 ms per instance at 500 instances, ~55 ms at 4,000 (measured), hours
for an archive. Here the directory records are made by pydicom's own record creators
(:data:`pydicom.fileset.DIRECTORY_RECORDERS`, the record type chosen as FileSet chooses it), gathered in a
Patient/Study/Series tree with dictionaries, each encoded by pydicom as soon as it is made (a few hundred bytes
kept per instance, not a Dataset), their offsets computed from those lengths and written into the encoded
records, which are then framed as the items of the Directory Record Sequence (PS3.10 8.2 and 8.5, PS3.3 F.3
and F.5, PS3.5 7.5).
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.fileset import DIRECTORY_RECORDERS
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import UID, ExplicitVRLittleEndian, MediaStorageDirectoryStorage, generate_uid

__all__ = ["record_type", "write_dicomdir"]

logger = logging.getLogger(__name__)

# Explicit VR Little Endian: an element (0004,xxxx) UL is tag, "UL", length 4, value; (0004,1410) US takes 10
_NEXT_HEADER = struct.pack("<HH2sH", 0x0004, 0x1400, b"UL", 4)  # Offset of the Next Directory Record
_LOWER_HEADER = struct.pack("<HH2sH", 0x0004, 0x1420, b"UL", 4)  # Offset of Referenced Lower-Level Entity
_NEXT_AT, _LOWER_AT = 8, 12 + 10 + 8  # where their values are in an encoded record
_SEQUENCE = 0x00041220  # Directory Record Sequence, the last element of a DICOMDIR
_SEQUENCE_HEADER_SIZE = 12  # tag, "SQ", 2 reserved bytes, length (defined, as pydicom writes it)
_ITEM = struct.pack("<HH", 0xFFFE, 0xE000)  # then the item's length (defined)
_ITEM_HEADER = 8  # item tag and length
_LEVELS = (("PATIENT", "PatientID"), ("STUDY", "StudyInstanceUID"), ("SERIES", "SeriesInstanceUID"))


def record_type(ds: Dataset) -> tuple[str, bool]:
    """The Directory Record Type of an instance's leaf record, and whether it sits at the root (single-level
    SOP Classes: hanging protocols, palettes, implant templates) rather than under Patient/Study/Series.

    The choice is pydicom's (the one :meth:`pydicom.fileset.FileSet.add` makes); ``IMAGE`` when pydicom no
    longer offers it.
    """
    try:
        from pydicom.fileset import _four_level_record_type, _single_level_record_type
    except ImportError:  # pragma: no cover - a future pydicom: images are the common case
        return "IMAGE", False
    single = _single_level_record_type(ds)
    if single != "PATIENT":
        return single, True
    return _four_level_record_type(ds), False


@dataclass(slots=True)
class _Node:
    encoded: bytearray  # the record, encoded with both offsets 0 (see _encode)
    children: dict[str, _Node] = field(default_factory=dict)
    leaves: list[_Node] = field(default_factory=list)
    offset: int = 0

    def below(self) -> list[_Node]:
        return [*self.children.values(), *self.leaves]


def _encode(record: Dataset) -> bytearray:
    """A record in Explicit VR Little Endian, checked to begin with its two UL offsets at known places: a
    record's lowest tags are (0004,1400) Offset of the Next..., (0004,1410) Record In-use Flag and (0004,1420)
    Offset of Referenced Lower-Level..., so that the offsets are written into these bytes once known."""
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, False
    write_dataset(buffer, record)
    encoded = bytearray(buffer.getvalue())
    if encoded[:8] != _NEXT_HEADER or encoded[_LOWER_AT - 8:_LOWER_AT] != _LOWER_HEADER:
        raise ValueError("a directory record does not begin with its offsets")  # pragma: no cover
    return encoded


def _record(kind: str, ds: Dataset) -> Dataset:
    record = DIRECTORY_RECORDERS[kind](ds)
    record.OffsetOfTheNextDirectoryRecord = 0
    record.RecordInUseFlag = 0xFFFF
    record.OffsetOfReferencedLowerLevelDirectoryEntity = 0
    record.DirectoryRecordType = kind
    if "SpecificCharacterSet" in ds:
        record.SpecificCharacterSet = ds.SpecificCharacterSet
    return record


def _leaf(ds: Dataset, kind: str, components: Sequence[str]) -> Dataset:
    record = _record(kind, ds)
    record.ReferencedFileID = list(components) if len(components) > 1 else components[0]
    record.ReferencedSOPClassUIDInFile = ds.SOPClassUID
    record.ReferencedSOPInstanceUIDInFile = ds.SOPInstanceUID
    record.ReferencedTransferSyntaxUIDInFile = ds.file_meta.TransferSyntaxUID
    return record


def _add(root: _Node, ds: Dataset, components: Sequence[str]) -> None:
    """Put the records of one instance in the tree (raises ValueError/KeyError/AttributeError when a Type 1
    attribute a record needs is missing, or a UID it is filed under is not one value)."""
    for keyword in ("SOPInstanceUID", "SOPClassUID", "StudyInstanceUID", "SeriesInstanceUID"):
        if keyword in ds and ds[keyword].VM != 1:
            raise ValueError(f"{keyword} {ds[keyword].value!r} is not one UID")
    kind, single = record_type(ds)
    leaf = _Node(_encode(_leaf(ds, kind, components)))
    if single:
        root.leaves.append(leaf)
        return
    # every level's record is made, used or not: an instance lacking what its study record needs is refused
    # even when its study is already indexed (as FileSet does)
    levels = [(_record(level, ds), str(ds[key].value)) for level, key in _LEVELS]
    node = root
    for record, value in levels:
        child = node.children.get(value)
        if child is None:
            child = node.children[value] = _Node(_encode(record))
        node = child
    node.leaves.append(leaf)


def _preorder(node: _Node) -> Iterable[_Node]:
    for child in node.below():
        yield child
        yield from _preorder(child)


def _link(root: _Node, first: int) -> list[_Node]:
    """Give every record its offset (from the start of the file), then write its next and lower-level
    offsets into its bytes; the records in file order (depth first)."""
    nodes = list(_preorder(root))
    offset = first
    for node in nodes:
        node.offset = offset
        offset += _ITEM_HEADER + len(node.encoded)
    for parent in (root, *nodes):
        below = parent.below()
        if below and parent is not root:
            struct.pack_into("<I", parent.encoded, _LOWER_AT, below[0].offset)
        for node, after in zip(below, below[1:], strict=False):
            struct.pack_into("<I", node.encoded, _NEXT_AT, after.offset)
    return nodes


def _head(directory: Dataset) -> bytes:
    """Preamble, prefix, File Meta and the elements before the Directory Record Sequence, encoded by pydicom."""
    head = DicomBytesIO()
    head.is_little_endian, head.is_implicit_VR = True, False
    head.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(head, directory.file_meta, enforce_standard=True)
    write_dataset(head, directory[:_SEQUENCE])
    return head.getvalue()


def write_dicomdir(path: str | os.PathLike[str], instances: Iterable[tuple[Sequence[str], Dataset]], *,
                   fileset_id: str = "", uid: str | None = None) -> list[tuple[Sequence[str], str]]:
    """Write a DICOMDIR indexing files that are already in place.

    Parameters
    ----------
    path
        The DICOMDIR to write (written whole, then renamed over ``path``).
    instances
        ``(components, header)``: the Referenced File ID of each file (its path relative to the DICOMDIR's
        folder, one component per folder, each a conformant File ID) and its header (with File Meta). Records
        follow the order given.
    fileset_id
        File-set ID (0004,1130).
    uid
        Media Storage SOP Instance UID of the DICOMDIR (default: derived from the instances indexed, so that
        the same files at the same places give the same DICOMDIR, byte for byte).

    Returns
    -------
    list of (components, reason)
        The files left out of the DICOMDIR: a Type 1 attribute their records need is missing or empty, or
        their SOP Instance UID is that of a file indexed before.
    """
    root = _Node(bytearray())  # the DICOMDIR itself: its records are the root directory entity
    excluded: list[tuple[Sequence[str], str]] = []
    indexed: dict[str, str] = {}  # SOP Instance UID -> File ID
    for components, ds in instances:
        file_id = "/".join(components)
        try:
            sop_instance_uid = str(ds.SOPInstanceUID)
            if sop_instance_uid in indexed:  # as FileSet: an instance is indexed once
                raise ValueError(f"same SOP Instance UID as {indexed[sop_instance_uid]}")
            _add(root, ds, components)
        except (ValueError, KeyError, AttributeError) as exc:
            excluded.append((components, f"{type(exc).__name__}: {exc}"))
            continue
        indexed[sop_instance_uid] = file_id
    directory = Dataset()
    directory.file_meta = FileMetaDataset()
    directory.file_meta.MediaStorageSOPClassUID = MediaStorageDirectoryStorage
    directory.file_meta.MediaStorageSOPInstanceUID = UID(uid) if uid else generate_uid(
        entropy_srcs=["medipy DICOMDIR", fileset_id, *(f"{u}={f}" for u, f in indexed.items())])
    directory.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    directory.FileSetID = fileset_id
    directory.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity = 0
    directory.OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity = 0
    directory.FileSetConsistencyFlag = 0
    head = _head(directory)
    nodes = _link(root, len(head) + _SEQUENCE_HEADER_SIZE)
    top = root.below()
    if top:
        directory.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity = top[0].offset
        directory.OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity = top[-1].offset
        head = _head(directory)  # the same length: the offsets are UL
    target = Path(path)
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(partial, "wb") as handle:
            handle.write(head)
            length = sum(_ITEM_HEADER + len(node.encoded) for node in nodes)
            handle.write(struct.pack("<HH2s2xI", 0x0004, 0x1220, b"SQ", length))
            for node in nodes:
                handle.write(_ITEM + struct.pack("<I", len(node.encoded)))
                handle.write(node.encoded)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    logger.info("wrote %s: %d record(s), %d file(s) left out", target, len(nodes), len(excluded))
    return excluded
