"""Reading one DICOM file into a :class:`~medipy.io.dicom.dataset.DataSet`.

The bytes are sniffed first (preamble, first element, or the signature of a common non-DICOM format), so that
a file that is not DICOM is reported as such instead of being force-parsed into garbage. Parsing is pydicom's;
its silent tolerance of truncated files is checked afterwards: every element whose value could fail to decode
is converted and every length compared with the bytes actually present, so that a broken file fails here and
not later.
"""

from __future__ import annotations

import io
import logging
import os
import stat
import string
import struct
import zlib
from collections.abc import MutableMapping
from typing import Any, TypeVar

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileDataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_file_meta_info
from pydicom.misc import size_in_bytes
from pydicom.tag import BaseTag
from pydicom.uid import DeflatedExplicitVRLittleEndian, MediaStorageDirectoryStorage
from pydicom.valuerep import VR

from medipy.errors import BrokenDicomError, MedipyError, NotDicomError
from medipy.io.dicom.dataset import DataSet
from medipy.io.dicom.plain_values import plain_values_enabled, raw_plain_value, transfer_syntax_of

__all__ = ["MAX_INFLATED_BYTES", "parse_file", "read"]

logger = logging.getLogger(__name__)

_SNIFF_SIZE = 512
_UNDEFINED = 0xFFFFFFFF
_PREAMBLE = 128
_MAX_STRAY = 3
_FIRST_GROUPS = (0x0002, 0x0004, 0x0008)  # File Meta, Directory, Identifying: a dataset starts with one
_VRS = frozenset(vr.value.encode("ascii") for vr in VR if len(vr.value) == 2)
_LONG_VRS = frozenset(b"OB OD OF OL OV OW SQ SV UC UN UR UT UV".split())
# Errors of the file system that are about access, not content: they keep their built-in type.
_ACCESS_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)


def read(path: str | os.PathLike[str], *, stop_before_pixels: bool = False,
         defer_size: int | str | None = None, check: str = "values") -> DataSet:
    """Read a DICOM file (a DICOMDIR included).

    Parameters
    ----------
    path
        The file: DICOM Part 10 with or without the 128-byte preamble and File Meta header, in any transfer
        syntax pydicom reads (implicit/explicit VR, little/big endian, deflate, encapsulated pixel data).
    stop_before_pixels
        Stop before Pixel Data (7FE0,0010): a truncated Pixel Data is then not detected.
    defer_size
        Elements longer than this (bytes, or a string like ``"512 KB"``) are read from the file only when
        accessed (see :func:`pydicom.dcmread`).
    check
        ``"values"`` (default): every element is decoded now, so that a corrupt value fails here and not on
        first use (simple ASCII string values that cannot fail, see
        :func:`~medipy.io.dicom.plain_values.plain_value`, are left to pydicom's lazy conversion).
        ``"lengths"``: only the element lengths are checked against the file (truncation), values are decoded
        lazily by pydicom; for callers that decode what they need right away (the engine's scan).

    Returns
    -------
    DataSet
        The dataset, with its file meta and preamble, ``path`` = ``str(path)``. For a DICOMDIR, the items of
        Directory Record Sequence are DataSets that know their ``children``, ``parent`` and ``path`` (see
        :mod:`medipy.io.dicom.dicomdir`), and the DICOMDIR's own ``children`` are its root records.

    Raises
    ------
    FileNotFoundError
        The file does not exist (also IsADirectoryError, PermissionError).
    NotDicomError
        The file is not DICOM (empty, text, JSON, NIfTI, gzip archive, preamble only, ...); the message says
        what it looks like. Also for a FIFO, socket or device, which is never opened.
    BrokenDicomError
        The file starts as DICOM but cannot be parsed: truncated (header or Pixel Data), inconsistent
        lengths, undecodable values. Re-export or re-copy the file.

    Examples
    --------
    >>> ds = read("CT_small.dcm")  # doctest: +SKIP
    >>> ds.Rows, ds.path  # doctest: +SKIP
    (128, 'CT_small.dcm')
    """
    name = os.fspath(path)
    ds = parse_file(name, stop_before_pixels=stop_before_pixels, defer_size=defer_size, check=check)
    out = DataSet.from_pydicom(ds, path=name)
    # Deferred elements are loaded from the file: keep what pydicom's Dataset.__getitem__ needs for that.
    for attribute in ("filename", "fileobj_type", "timestamp", "buffer"):
        out.__dict__[attribute] = getattr(ds, attribute, None)
    if _is_dicomdir(out):
        from medipy.io.dicom.dicomdir import link_records  # dicomdir imports this module

        link_records(out)
    logger.debug("read %s (%d top-level elements)", name, len(out))
    return out


def parse_file(path: str | os.PathLike[str], *, stop_before_pixels: bool = False,
               defer_size: int | str | None = None, check: str = "values") -> FileDataset:
    """Parse a DICOM file into pydicom's own :class:`~pydicom.dataset.FileDataset`, checked as :func:`read` does.

    The lower half of :func:`read` (same parameters, same errors), for callers that use the elements only
    and do not need a :class:`DataSet` (the engine's scan, which parses every file of an export once): the
    file is sniffed, parsed and checked, but not wrapped, and a DICOMDIR's records are not linked.

    Returns
    -------
    pydicom.dataset.FileDataset
    """
    name = os.fspath(path)
    status = os.stat(name)
    mode = status.st_mode
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):  # a FIFO would block open() forever
        raise NotDicomError("is not a regular file (a FIFO, socket or device); refusing to read it", name)
    if check not in ("values", "lengths"):
        raise ValueError(f"check must be 'values' or 'lengths', not {check!r}")
    # With a small defer size, pydicom seeks over long values instead of reading them: no huge allocation
    # can happen, and the plain (C-buffered) file is much faster than the bounded reader.
    deferred_above = None if defer_size is None else size_in_bytes(defer_size)
    bounded = deferred_above is None or deferred_above > _BoundedReader._SMALL
    with open(name, "rb") as fp:
        size = os.fstat(fp.fileno()).st_size
        head = fp.read(_SNIFF_SIZE)
        start = _sniff(name, head, size)
        source: str | io.BytesIO = name
        if start not in (0, _PREAMBLE + 4):
            logger.warning("%s: %d stray byte(s) before the first DICOM element, skipped", name, start)
            fp.seek(start)
            source = io.BytesIO(fp.read())
            size, start = size - start, 0
        if isinstance(source, str) and _DEFLATED_UID in head:  # a pre-filter: the meta tells (rare files)
            _check_inflated_size(name, start)
        if isinstance(source, str) and not bounded:
            # parsed from the file already open (pydicom opens it by name for deferred values); a Part 10 file
            # with its preamble, from a window of its first bytes in memory (see _read_windowed)
            windowed = (not stop_before_pixels and start == _PREAMBLE + 4 and deferred_above is not None
                        and _DEFLATED_UID not in head)
            if not windowed:
                fp.seek(0)
            return _parse(fp, name, size, start, defer_size, stop_before_pixels, check,
                          head=head if windowed else None, mtime=status.st_mtime)
    return _parse(source, name, size, start, defer_size, stop_before_pixels, check)


def _parse(fp: str | io.BytesIO | io.BufferedReader, name: str, size: int, start: int,
           defer_size: int | str | None, stop_before_pixels: bool, check: str,
           head: bytes | None = None, mtime: float | None = None) -> FileDataset:
    """:func:`parse_file` once the file is sniffed: pydicom reads ``fp``, an open file (from a window of its
    bytes when its ``head`` is given, see :func:`_read_windowed`; ``mtime``: the file's modification time), the
    bytes of a file that started with stray bytes, or (a file name) the file through a bounded reader."""
    source = fp if isinstance(fp, io.BytesIO) else name  # what the checks read again
    try:
        if head is not None and isinstance(fp, io.BufferedReader):
            ds = _read_windowed(fp, head, size, int(size_in_bytes(defer_size) or 0), mtime)
        elif not isinstance(fp, str):
            ds = pydicom.dcmread(fp, defer_size=defer_size, stop_before_pixels=stop_before_pixels, force=True)
        else:
            with _BoundedReader(fp) as bounded_fp:
                ds = pydicom.dcmread(bounded_fp, defer_size=defer_size, stop_before_pixels=stop_before_pixels,
                                     force=True)
        _check(ds, name, source, size, start, stop_before_pixels, convert=check == "values")
    except MedipyError:
        raise
    except _ACCESS_ERRORS:
        raise
    except (InvalidDicomError, zlib.error) as exc:
        raise BrokenDicomError(f"cannot be parsed as DICOM ({exc}); the file is corrupt, re-export it",
                               name) from exc
    except Exception as exc:  # pydicom, struct, EOF, Key... errors of a corrupt file: never escape bare
        raise BrokenDicomError(
            f"is truncated or corrupt ({type(exc).__name__}: {exc}); re-copy or re-export the file", name,
        ) from exc
    return ds


#: Most bytes of a file read into memory for pydicom to parse its header from (see :func:`_read_windowed`).
WINDOW_BYTES = 65536
#: The window's first step: enough for most headers, little more than the sniff's buffered read holds.
FIRST_WINDOW_BYTES = 8192
_PIXEL_DATA_LE = b"\xe0\x7f\x10\x00"  # (7FE0,0010) in little endian


def _native_pixels_at(data: bytes, size: int) -> int | None:
    """Where the value of a little-endian Pixel Data element of defined length that ends exactly at the end of
    the file (``size`` bytes) starts, if its element header lies in ``data`` (the file's first bytes); else
    None. Explicit VR (``OB``/``OW``, 2 reserved bytes, 4-byte length) or implicit VR (4-byte length)."""
    found = data.find(_PIXEL_DATA_LE)
    while found >= 0:
        vr = data[found + 4:found + 6]
        if vr in (b"OB", b"OW") and data[found + 6:found + 8] == b"\0\0" and found + 12 <= len(data):
            if found + 12 + int.from_bytes(data[found + 8:found + 12], "little") == size:
                return found + 12
        elif found + 8 <= len(data) and found + 8 + int.from_bytes(data[found + 4:found + 8], "little") == size:
            return found + 8
        found = data.find(_PIXEL_DATA_LE, found + 1)
    return None


def _read_windowed(fp: io.BufferedReader, head: bytes, size: int, defer_size: int,
                   mtime: float | None = None) -> FileDataset:
    """pydicom's parse of the file open in ``fp`` (positioned after ``head``, its first bytes), with values
    longer than ``defer_size`` deferred, from its first :data:`WINDOW_BYTES` bytes in memory when they hold it
    (``mtime``: the file's modification time, for the dataset's ``timestamp``, else asked for again).

    The same dataset as ``pydicom.dcmread(fp, defer_size=defer_size, force=True)`` (File Meta elements may be
    left for pydicom to convert on first use), ~20% faster for the headers of the benchmark export (~30% for
    small files): pydicom asks the file for its position ~50 times per header, a system call each time on a
    buffered file (~0.75 us), a field on bytes in memory (~0.04 us); and the usual Part 10 file is read without
    looking for what it does not hold (see :func:`_read_native_part10`). Bytes in memory are used when they
    hold the whole file, or every element before a Pixel Data of defined length (native pixels, deferred) that
    ends the file: pydicom then reads the same bytes in the same order, and skips the same Pixel Data by a seek
    (checked: its Pixel Data must be where it was found). Otherwise (a longer header, compressed pixels of
    undefined length, elements after the Pixel Data) the file is parsed as pydicom parses it, from the file.
    Deferred values are read from the file by name later, as for a file pydicom opened. The window is read in
    two steps, :data:`FIRST_WINDOW_BYTES` (most headers), then :data:`WINDOW_BYTES`: reading 64 KiB at once
    costs ~5% of the parse of a short header.
    """
    from pydicom.filereader import read_partial

    data = head
    for limit in (FIRST_WINDOW_BYTES, WINDOW_BYTES):  # most headers end within the first step
        data += fp.read(max(0, limit - len(data)))
        pixels = None if len(data) >= size else _native_pixels_at(data, size)
        held = len(data) >= size or (pixels is not None and defer_size < size - pixels)
        if held:
            break
    if held:
        window = io.BytesIO(data)
        window.name = fp.name  # type: ignore[attr-defined]  # FileDataset takes its filename from it
        ds = _read_native_part10(window, data, defer_size, mtime)
        if ds is None:
            window.seek(0)
            ds = read_partial(window, None, defer_size=defer_size, force=True)
        element = ds._dict.get(BaseTag(0x7FE00010))
        if pixels is None or (type(element) is RawDataElement and element.value is None
                              and element.value_tell == pixels):
            ds.buffer = None  # deferred values: from the file by name, as for a file pydicom opened
            ds.fileobj_type = open
            return ds
        logger.debug("%s: Pixel Data not where its bytes were found; parsed from the file", fp.name)
    fp.seek(0)
    return pydicom.dcmread(fp, defer_size=defer_size, force=True)


_NATIVE_LE = {b"1.2.840.10008.1.2": True, b"1.2.840.10008.1.2.1": False}  # Transfer Syntax UID: implicit VR
_STR_VRS = frozenset(vr.value for vr in VR)


def _meta_ends(tag: int, vr: str | None, length: int) -> bool:  # noqa: ARG001 - pydicom's stop_when signature
    return tag >> 16 != 0x0002


def _read_native_part10(window: io.BytesIO, data: bytes, defer_size: int,
                        mtime: float | None = None) -> FileDataset | None:
    """What ``pydicom.filereader.read_partial(window, defer_size=defer_size, force=True)`` returns for the
    usual Part 10 file (preamble, explicit VR File Meta with a native little-endian Transfer Syntax, no Command
    Set), its elements read by pydicom's own ``read_dataset``; None for any other file (then parsed by
    ``read_partial``). ``mtime`` (the file's modification time, when known) is the dataset's ``timestamp``.

    ``read_partial`` also handles files without preamble, File Meta written in implicit VR, a Command Set,
    deflated, big-endian and private Transfer Syntaxes; looking for them converts File Meta elements (a UID,
    lengths) and reads an empty Command Set into a dataset of its own: ~40% of its time for these headers.
    The ``FileMetaDataset`` and ``FileDataset`` are made as unpickling makes them (see :func:`_new_dataset`).
    """
    from pydicom.charset import default_encoding
    from pydicom.dataset import FileMetaDataset
    from pydicom.filereader import read_dataset

    window.seek(_PREAMBLE + 4)
    meta = read_dataset(window, False, True, stop_when=_meta_ends)
    syntax = meta._dict.get(BaseTag(0x00020010))
    if (type(syntax) is not RawDataElement or not isinstance(syntax.value, bytes)
            or any(type(e) is not RawDataElement or e.VR not in _STR_VRS for e in meta._dict.values())):
        return None  # no Transfer Syntax, or File Meta not in explicit VR (pydicom then retries in implicit VR)
    implicit = _NATIVE_LE.get(syntax.value.rstrip(b"\0 "))
    start = window.tell()
    if implicit is None or data[start:start + 2] in (b"\0\0", b""):  # another syntax; a Command Set; nothing
        return None
    file_meta = _new_dataset(FileMetaDataset, meta._dict, {})  # group 2 only, as FileMetaDataset checks
    file_meta.set_original_encoding(False, True, default_encoding)
    dataset = read_dataset(window, implicit, True, defer_size=defer_size)
    name = getattr(window, "name", None)
    if mtime is None and name:
        mtime = os.stat(name).st_mtime
    ds = _new_dataset(FileDataset, dataset._dict, {
        "preamble": data[:_PREAMBLE], "file_meta": file_meta, "_read_implicit": implicit, "_read_little": True,
        "_is_implicit_VR": implicit, "_is_little_endian": True,  # kept only where pydicom's constructor sets them
        "fileobj_type": type(window), "filename": name, "buffer": window, "timestamp": mtime})
    ds.set_original_encoding(implicit, True, dataset._character_set)
    return ds


_BLANK: dict[type, tuple[dict[str, Any], tuple[str, ...]]] = {}
_Made = TypeVar("_Made", bound=Dataset)


def _new_dataset(kind: type[_Made], elements: MutableMapping, fields: dict[str, Any]) -> _Made:
    """A new pydicom dataset of class ``kind`` (``FileMetaDataset`` or ``FileDataset``) holding ``elements``
    with the instance attributes pydicom's constructor gives it, then ``fields`` (those it sets from its
    arguments; a field the constructor does not set in this pydicom version is left out).

    Made as unpickling or ``copy.deepcopy`` makes a dataset (``__new__``, then its attributes), from those
    of one dataset made by pydicom's constructor in this process (mutable values copied): ~2 us instead of
    ~10 (``FileMetaDataset``) and ~3 us instead of ~23 (``FileDataset``, whose constructor also asks the file
    system for the file's timestamp): the constructors' ~20 attribute assignments each go through
    ``Dataset.__setattr__``.
    """
    blank = _BLANK.get(kind)
    if blank is None:
        from pydicom.dataset import FileMetaDataset

        made = FileMetaDataset() if kind is FileMetaDataset else FileDataset(io.BytesIO(), Dataset())
        state = dict(vars(made))
        blank = _BLANK[kind] = (state, tuple(k for k, v in state.items() if type(v) in (dict, list, set)))
    state, mutable = blank
    state = state.copy()
    for key in mutable:
        state[key] = state[key].copy()
    state.update((key, value) for key, value in fields.items() if key in blank[0])
    state["_dict"] = elements
    out = kind.__new__(kind)
    out.__dict__.update(state)
    return out


#: The most a Deflated Explicit VR Little Endian dataset may inflate to. pydicom inflates the whole dataset
#: in memory before parsing: a few MB of deflated zeros would otherwise take GBs (a decompression bomb).
MAX_INFLATED_BYTES = 2 * 1024**3
_DEFLATED_UID = DeflatedExplicitVRLittleEndian.encode("ascii")
_INFLATE_STEP = 1 << 24


def _check_inflated_size(name: str, start: int) -> None:
    """Refuse a deflated dataset that inflates beyond :data:`MAX_INFLATED_BYTES`, counted by inflating it in
    bounded steps before pydicom inflates it whole. Anything unusual (no group length, not deflate data) is
    left to pydicom, which reports it."""
    try:
        meta = read_file_meta_info(name)
    except Exception:  # noqa: BLE001 - a broken meta is reported by the parse that follows
        return
    length = meta.get("FileMetaInformationGroupLength")
    if meta.get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian or not isinstance(length, int):
        return
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    total = 0
    with open(name, "rb") as fp:
        fp.seek(start + 12 + length)  # (0002,0000) is 12 bytes, then the group it counts
        while block := fp.read(1 << 20):
            while block:
                try:
                    total += len(inflater.decompress(block, _INFLATE_STEP))
                except zlib.error:
                    return
                if total > MAX_INFLATED_BYTES:
                    raise BrokenDicomError(
                        f"its deflated dataset inflates to more than {MAX_INFLATED_BYTES} bytes (from "
                        f"{os.path.getsize(name)} in the file): a decompression bomb, or an object too large "
                        "for the Deflated transfer syntax; refusing to inflate it", name)
                block = inflater.unconsumed_tail
            if inflater.eof:
                return


class _BoundedReader(io.BufferedReader):
    """A binary file whose ``read(n)`` never asks for more than the bytes left in the file.

    pydicom reads an element value with ``fp.read(length)`` and a buffered file allocates ``length`` bytes
    before reading: a declared length of 0xFFFFFFF0 in a 1 KB file would allocate 4 GB. Here the request is
    cut to what the file holds; the truncation is then reported by :func:`_check`.
    """

    _SMALL = 1 << 16  # reads below this size are never large allocations: no bound computed

    def __init__(self, name: str) -> None:
        super().__init__(io.FileIO(name, "rb"))
        self._size = os.fstat(self.fileno()).st_size

    def read(self, size: int | None = -1, /) -> bytes:
        if size is not None and size > self._SMALL:
            size = min(size, max(self._size - self.tell(), 0))
        return super().read(size)


def _is_dicomdir(ds: Dataset) -> bool:
    file_meta = getattr(ds, "file_meta", None)
    sop_class = None if file_meta is None else file_meta.get("MediaStorageSOPClassUID")
    return sop_class == MediaStorageDirectoryStorage or "DirectoryRecordSequence" in ds


# --- sniffing ------------------------------------------------------------------------------------------

def _sniff(name: str, head: bytes, size: int) -> int:
    """Return the offset where DICOM elements start (0 or 132), or raise NotDicomError/BrokenDicomError."""
    if size == 0:
        raise NotDicomError("is empty (0 bytes), not a DICOM file", name)
    if head[_PREAMBLE:_PREAMBLE + 4] == b"DICM":
        start = _PREAMBLE + 4
        if size == start:
            raise NotDicomError(
                "holds only the 128-byte preamble and 'DICM' prefix and no dataset; it is not a usable "
                "DICOM file", name)
        if not _looks_like_element(head[start:], size - start):
            raise BrokenDicomError(
                "has the DICOM preamble and 'DICM' prefix but no parsable element after it (truncated or "
                "corrupt); re-copy or re-export the file", name)
        return start
    if _looks_like_element(head, size):
        return 0
    for stray in range(1, _MAX_STRAY + 1):  # a few junk bytes before an intact dataset (seen in the wild)
        if _looks_like_element(head[stray:], size - stray, strict=True):
            return stray
    raise NotDicomError(
        f"is not a DICOM file: it looks like {_describe(head, size)} (no 'DICM' prefix at byte 128 and no "
        "DICOM element at byte 0)", name)


def _looks_like_element(data: bytes, available: int, *, strict: bool = False) -> bool:
    """True if ``data`` starts with a plausible first element of a dataset or File Meta group.

    ``strict``: only explicit VR little endian, and the next element must be plausible too.
    """
    if len(data) < 8:
        return False
    if strict:
        group, vr, length = struct.unpack("<H2x2sH", data[:8])
        if group not in _FIRST_GROUPS or vr not in _VRS or vr in _LONG_VRS:
            return False
        following = data[8 + length:]
        return (len(following) >= 8 and struct.unpack("<H", following[:2])[0] in _FIRST_GROUPS
                and following[4:6] in _VRS)
    for endian in "<>":
        group = struct.unpack(f"{endian}H", data[:2])[0]
        if group not in _FIRST_GROUPS or (endian == ">" and group == 0x0002):
            continue  # the File Meta group is always little endian
        vr = data[4:6]
        if vr in _VRS:
            if vr in _LONG_VRS:
                length = struct.unpack(f"{endian}L", data[8:12])[0] if len(data) >= 12 else 0
                if data[6:8] == b"\x00\x00" and (length == _UNDEFINED or length <= available - 12):
                    return True
            elif struct.unpack(f"{endian}H", data[6:8])[0] <= available - 8:
                return True
        if endian == "<":  # implicit VR is little endian only
            length = struct.unpack("<L", data[4:8])[0]
            if length == _UNDEFINED or length <= available - 8:
                return True
    return False


def _describe(head: bytes, size: int) -> str:
    """A short human description of a non-DICOM file from its first bytes."""
    if head[:2] == b"\x1f\x8b":
        return "a gzip-compressed file (decompress it first, e.g. with gunzip, then read the result)"
    nifti = [struct.unpack(f"{endian}i", head[:4])[0] for endian in "<>"] if len(head) >= 4 else []
    if 348 in nifti and head[344:348] in (b"n+1\x00", b"ni1\x00"):
        return "a NIfTI-1 image (read it with nibabel)"
    if 540 in nifti and head[4:8] in (b"n+2\x00", b"ni2\x00"):
        return "a NIfTI-2 image (read it with nibabel)"
    signatures = {b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"PK\x03\x04": "a zip archive",
                  b"%PDF": "a PDF document", b"BZh": "a bzip2-compressed file",
                  b"\xfd7zXZ": "an xz-compressed file"}
    for signature, label in signatures.items():
        if head.startswith(signature):
            return label
    if head[36:40] == b"acsp":
        return "an ICC colour profile"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError:  # may be cut inside a multi-byte character at the end of the sniff window
        decoded = text[:-4].decode("utf-8", errors="replace")
    if decoded[:1] in ("{", "["):
        return "JSON text"
    if decoded and all(char in string.printable or not char.isascii() for char in decoded):
        return "a text file"
    return f"unrecognised binary data ({size} bytes, starting with {head[:8].hex(' ')})"


# --- structural checks --------------------------------------------------------------------------------

def _check(ds: FileDataset, name: str, source: str | io.BytesIO, size: int, start: int,
           stop_before_pixels: bool, convert: bool = True) -> None:
    """Check that no element was cut short by the end of the file (and convert the elements if asked)."""
    deflated = transfer_syntax_of(ds) == DeflatedExplicitVRLittleEndian
    if len(ds) == 0:
        _raise_empty(ds, name, source, size, start, stop_before_pixels)
    _check_dataset(ds.file_meta, name, None, convert)  # converted now (values), not on first use
    last_end = _check_dataset(ds, name, None if deflated else size, convert)
    if deflated or last_end is None:
        return
    leftover = size - last_end
    if leftover > 0 and not (stop_before_pixels and _pixel_tag_at(source, last_end, ds)):
        raise BrokenDicomError(
            f"ends with {leftover} byte(s) that are not a whole element (the file is truncated inside an "
            "element header); re-copy or re-export the file", name)


def _pixel_tag_at(source: str | io.BytesIO, offset: int, ds: FileDataset) -> bool:
    """True if a Pixel Data tag (where ``stop_before_pixels`` stops) starts at ``offset`` of ``source``."""
    if isinstance(source, str):
        with open(source, "rb") as fp:
            fp.seek(offset)
            head = fp.read(4)
    else:
        head = source.getvalue()[offset:offset + 4]
    if len(head) < 4:
        return False
    group, element = struct.unpack("<HH" if getattr(ds, "_read_little", True) is not False else ">HH", head)
    return (group << 16 | element) in (0x7FE00008, 0x7FE00009, 0x7FE00010)


def _raise_empty(ds: FileDataset, name: str, source: str | io.BytesIO, size: int, start: int,
                 stop_before_pixels: bool) -> None:
    meta_length = ds.file_meta.get("FileMetaInformationGroupLength")
    meta_end = start + 12 + meta_length if meta_length is not None else start
    if meta_end >= size:
        raise BrokenDicomError("holds a File Meta header but no dataset after it (truncated?)", name)
    # pydicom drops the whole dataset when the end of file is reached inside an undefined-length value:
    # find out whether the header alone parses, to say where the file is cut.
    if not stop_before_pixels:
        if isinstance(source, io.BytesIO):
            source.seek(0)
        header = pydicom.dcmread(source, stop_before_pixels=True, force=True)
        if len(header) > 0:
            raise BrokenDicomError(
                "Pixel Data (7FE0,0010) is truncated: the end of the file comes before its sequence "
                "delimiter; re-copy or re-export the file (or read with stop_before_pixels=True)", name)
    raise BrokenDicomError(
        "no element of the dataset can be parsed (truncated inside an undefined-length element, or corrupt); "
        "re-copy or re-export the file", name)


def _check_dataset(ds: Dataset, name: str, size: int | None, convert: bool = True) -> int | None:
    """Check the lengths of the elements of ``ds`` and convert them (recursively) when ``convert``, except the
    values :func:`_decodes_plainly` knows to decode; return where the last one read ends.

    pydicom keeps the elements in the order it read them, except Command Set elements (group 0000, before the
    dataset in a file that holds them), which it adds after the others: they are the last only when alone.
    """
    end: int | None = None
    if not convert:  # lengths only: the raw elements as parsed (deferred ones are checked, not read)
        # pydicom reads elements one after the other: a value cut short by the end of the file (or a deferred
        # one reaching past it) ends the parse, so that only the last element can be truncated.
        last = None
        for element in ds._dict.values():
            if last is None or element.tag >> 16 or not last.tag >> 16:
                last = element
            if not isinstance(element, RawDataElement) and element.VR == VR.SQ:
                for item in element.value or ():  # parsed during the read (undefined length)
                    _check_dataset(item, name, size, convert)
        return _check_raw(last, name, size) if isinstance(last, RawDataElement) else None
    plain = plain_values_enabled()
    last_tag = None
    for tag in list(ds.keys()):
        raw = ds.get_item(tag, keep_deferred=True)  # a deferred element is checked, not read
        if last_tag is None or tag >> 16 or not last_tag >> 16:
            last_tag, end = tag, None
        if isinstance(raw, RawDataElement):
            checked = _check_raw(raw, name, size)
            if last_tag == tag:
                end = checked
            if raw.value is None and raw.length not in (0, _UNDEFINED):
                continue  # deferred: read from the file when accessed
            if not convert or plain and _decodes_plainly(raw):
                continue  # a simple value pydicom cannot fail to convert: converted when used (~20 us saved)
        elem = ds[tag]  # converts a raw element (pydicom decodes lazily): corrupt values fail now
        if elem.VR == VR.SQ:
            for item in elem.value or ():
                _check_dataset(item, name, size, convert)
    return end


def _decodes_plainly(raw: RawDataElement) -> bool:
    """True for a public element whose value :func:`~medipy.io.dicom.plain_values.plain_value` decodes (as
    pydicom would, without any possible error); Specific Character Set excepted (checked at once)."""
    tag = int(raw.tag)
    return tag != 0x00080005 and raw_plain_value(tag, raw) is not None


def _check_raw(raw: RawDataElement, name: str, size: int | None) -> int | None:
    tag = f"({raw.tag.group:04X},{raw.tag.element:04X})"
    if raw.length != _UNDEFINED:
        if raw.value is not None and len(raw.value) < raw.length:
            raise BrokenDicomError(
                f"element {tag} is truncated: {len(raw.value)} of its {raw.length} bytes are in the file; "
                "re-copy or re-export the file", name)
        end = raw.value_tell + raw.length
    elif raw.value is not None:
        end = raw.value_tell + len(raw.value) + 8  # the value, then the Sequence Delimitation Item
    else:
        return None
    if size is not None and end > size:
        raise BrokenDicomError(
            f"element {tag} is truncated: it ends at byte {end}, after the end of the file ({size} bytes); "
            "re-copy or re-export the file", name)
    return end
