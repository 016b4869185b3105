"""Writing a dataset as a normalised DICOM file: UTF-8, public elements only, valid File Meta, atomic.

The dataset is never modified: a cleaned copy is built (text decoded with the dataset's own Specific Character
Set, the way pydicom decodes it, sequence items with their own character set included), then written to a
temporary file in the destination folder, flushed to disk and renamed over the final name, so that the file
appears whole or not at all.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import secrets
import sys
from pathlib import Path
from typing import Any

import numpy as np
from pydicom import dcmwrite
from pydicom.charset import convert_encodings, decode_bytes
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian
from pydicom.valuerep import TEXT_VR_DELIMS, VR, PersonName

import medipy
from medipy.errors import DicomError

__all__ = ["IMPLEMENTATION_CLASS_UID", "IMPLEMENTATION_VERSION_NAME", "UTF8_CHARSET", "write"]

logger = logging.getLogger(__name__)

#: Implementation Class UID (0002,0012) of the files medipy writes (generated once, by
#: ``pydicom.uid.generate_uid(prefix=None)``).
IMPLEMENTATION_CLASS_UID = UID("2.25.217857334225220115891321640475166116433")
#: Implementation Version Name (0002,0013) of the files medipy writes (SH: 16 characters at most).
IMPLEMENTATION_VERSION_NAME = f"MEDIPY_{medipy.__version__}"[:16]
#: Specific Character Set (0008,0005) of the files medipy writes.
UTF8_CHARSET = "ISO_IR 192"

_TEXT_VRS = frozenset({VR.SH, VR.LO, VR.ST, VR.LT, VR.UC, VR.UT})
_SWAP_WIDTH: dict[str, int] = {VR.OW: 2, VR.OF: 4, VR.OL: 4, VR.OD: 8, VR.OV: 8}
_CHARSET_TAG = 0x00080005
_PIXEL_DATA_TAG = 0x7FE00010


def write(dataset: Dataset, path: str | os.PathLike[str]) -> None:
    """Write ``dataset`` to ``path`` as UTF-8, public-only DICOM with a valid File Meta header.

    Parameters
    ----------
    dataset
        The dataset (a :class:`~medipy.io.dicom.dataset.DataSet` or any pydicom Dataset); never modified.
        It needs SOP Class UID (0008,0016) and SOP Instance UID (0008,0018) (or a file meta that has them).
    path
        The destination file; its folder must exist. An existing file is replaced.

    Raises
    ------
    DicomError
        The dataset cannot be encoded (e.g. no SOP Class UID: set ``dataset.SOPClassUID``) or the file
        cannot be written (folder missing, no space, no permission); the message names the path. Nothing
        is left under ``path`` nor as a temporary file.

    Notes
    -----
    Every text element (SH, LO, ST, LT, UC, UT, PN, in sequences too) is decoded with the Specific Character
    Set that applies to it and stored as UTF-8, with Specific Character Set "ISO_IR 192". Private elements
    (odd groups, their creators included, in sequences too), group lengths and command elements are dropped.
    The Transfer Syntax is kept when the Pixel Data is encapsulated (compressed), else it is Explicit VR
    Little Endian (values of big endian datasets are byte-swapped).

    Examples
    --------
    >>> ds = read("chrFren.dcm")  # doctest: +SKIP
    >>> write(ds, "out/chrFren_utf8.dcm")  # doctest: +SKIP
    """
    target = Path(path)
    try:
        cleaned = _clean_file(dataset)
    except DicomError as exc:
        raise DicomError(exc.reason, target) from exc
    except Exception as exc:
        raise DicomError(f"the dataset cannot be converted for writing ({type(exc).__name__}: {exc})",
                         target) from exc
    _write_atomically(cleaned, target)
    logger.debug("wrote %s (%s)", target, cleaned.file_meta.TransferSyntaxUID.name)


def _clean_file(dataset: Dataset) -> Dataset:
    source_meta: Any = getattr(dataset, "file_meta", None) or FileMetaDataset()
    source_syntax = source_meta.get("TransferSyntaxUID")
    little = dataset.original_encoding[1] is not False
    cleaned = _clean(dataset, _charset_value(dataset, None), swap=not little)
    cleaned[_CHARSET_TAG] = DataElement(_CHARSET_TAG, VR.CS, UTF8_CHARSET)

    encapsulated = source_syntax is not None and UID(source_syntax).is_compressed and "PixelData" in cleaned
    file_meta = FileMetaDataset()
    for keyword, meta_keyword in (("SOPClassUID", "MediaStorageSOPClassUID"),
                                  ("SOPInstanceUID", "MediaStorageSOPInstanceUID")):
        value = cleaned.get(keyword) or source_meta.get(meta_keyword)
        if not value:
            raise DicomError(f"the dataset has no {keyword} and its file meta no {meta_keyword}: set "
                             f"dataset.{keyword} before writing")
        setattr(file_meta, meta_keyword, value)
    file_meta.TransferSyntaxUID = UID(source_syntax) if encapsulated else ExplicitVRLittleEndian
    file_meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    file_meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    cleaned.file_meta = file_meta
    return cleaned


def _charset_value(dataset: Dataset, inherited: str | list[str] | None) -> str | list[str] | None:
    """The (0008,0005) value that applies to ``dataset``: its own, else the inherited one."""
    if _CHARSET_TAG not in dataset:
        return inherited
    elem = dataset.get_item(_CHARSET_TAG)
    if isinstance(elem, RawDataElement):
        elem = convert_raw_data_element(elem, encoding="iso8859", ds=dataset)
    value = elem.value
    if isinstance(value, MultiValue | list):
        return [str(part) for part in value]
    return str(value) if value else inherited


def _element(dataset: Dataset, tag: int, encodings: list[str]) -> DataElement:
    """The decoded element of ``dataset`` at ``tag``, without converting it in place."""
    elem = dataset.get_item(tag)
    if isinstance(elem, RawDataElement):
        if elem.value is None and elem.length != 0:
            return dataset[tag]  # deferred: pydicom loads it from the file
        return convert_raw_data_element(elem, encoding=encodings, ds=dataset)
    return elem


def _clean(dataset: Dataset, charset: str | list[str] | None, *, swap: bool) -> Dataset:
    """A public-only copy of ``dataset`` with every text value decoded to str."""
    encodings = convert_encodings(charset or "ISO_IR 6")
    out = Dataset()
    for tag in sorted(dataset.keys()):
        if tag.group % 2 or tag.group in (0x0000, 0x0002) or tag.element == 0 or tag == _CHARSET_TAG:
            continue  # private, command, file meta, group length; the character set is set at the end
        elem = _element(dataset, tag, encodings)
        if elem.VR == VR.SQ:
            items = []
            for item in elem.value or ():
                item_charset = _charset_value(item, charset)
                clean_item = _clean(item, item_charset, swap=swap)
                if _CHARSET_TAG in item:
                    clean_item[_CHARSET_TAG] = DataElement(_CHARSET_TAG, VR.CS, UTF8_CHARSET)
                items.append(clean_item)
            out[tag] = DataElement(tag, VR.SQ, Sequence(items))
            continue
        new = copy.deepcopy(elem)
        if not new.is_empty:
            if new.VR == VR.PN:
                new.value = _decoded_names(new.value, encodings)
            elif new.VR in _TEXT_VRS:
                new.value = _decoded_texts(new.value, encodings)
            elif swap and new.VR in _SWAP_WIDTH and isinstance(new.value, bytes):
                # Pixel Data holds values of Bits Allocated (pydicom reads it so), whatever its VR says
                width = _pixel_width(dataset) if tag == _PIXEL_DATA_TAG else _SWAP_WIDTH[new.VR]
                if width > 1 and len(new.value) % width == 0:
                    new.value = np.frombuffer(new.value, dtype=f">u{width}").astype(f"<u{width}").tobytes()
        out[tag] = new
    return out


def _pixel_width(dataset: Dataset) -> int:
    """Bytes per stored value of native Pixel Data: Bits Allocated / 8 (1 when 1 or 8 bits, or unknown)."""
    try:
        bits = int(dataset.get("BitsAllocated") or 8)
    except (TypeError, ValueError):
        return 1
    return bits // 8 if bits in (16, 32, 64) else 1


def _decoded_names(value: Any, encodings: list[str]) -> Any:
    def one(name: Any) -> PersonName:
        if isinstance(name, bytes):
            name = PersonName(name, encodings)
        return PersonName(str(name))  # str() decodes with the element's encodings; no original bytes kept

    if isinstance(value, MultiValue | list):
        return [one(name) for name in value]
    return one(value)


def _decoded_texts(value: Any, encodings: list[str]) -> Any:
    def one(text: Any) -> str:
        return decode_bytes(text, encodings, TEXT_VR_DELIMS) if isinstance(text, bytes) else str(text)

    if isinstance(value, MultiValue | list):
        return [one(text) for text in value]
    return one(value)


def _write_atomically(dataset: Dataset, target: Path) -> None:
    """Write to a temporary file beside ``target``, fsync, then rename it over ``target``."""
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                             0o666)
    except OSError as exc:
        raise DicomError(f"cannot create a file in {target.parent} ({exc}); check that the folder exists "
                         "and is writable", target) from exc
    try:
        with os.fdopen(descriptor, "wb") as fp:
            dcmwrite(fp, dataset, enforce_file_format=True)
            fp.flush()
            os.fsync(fp.fileno())
        os.replace(temporary, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)
        if not isinstance(exc, Exception):
            raise
        raise DicomError(f"cannot be written ({type(exc).__name__}: {exc}); nothing was written",
                         target) from exc
    _fsync_folder(target.parent)


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable (POSIX); best effort elsewhere."""
    if sys.platform.startswith("win"):
        return
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        logger.debug("cannot fsync folder %s", folder)
    finally:
        os.close(descriptor)
