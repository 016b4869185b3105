"""Pixel decoding: through pydicom and its plugins, with errors that say which plugin would help.

Two entry points share the frame and tile logic: :func:`frame_pixels` for datasets in memory (the serial
API) and :func:`record_pixels` for slice records (the dask engine), which reads native Pixel Data straight
from its recorded byte offset and hands compressed data to pydicom.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any, NamedTuple, cast

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import UID

from medipy.errors import PixelDecodeError, ValueRangeError
from medipy.io.dicom.plain_values import transfer_syntax_of
from medipy.io.dicom.record import SliceRecord

__all__ = [
    "OutputDtypes",
    "decode",
    "fit_bits_stored",
    "frame_pixels",
    "fits",
    "mosaic_tile",
    "output_dtype",
    "output_dtypes",
    "read_native_slice",
    "record_pixels",
    "rescale",
    "stored_dtype",
]

logger = logging.getLogger(__name__)

_BIG_ENDIAN = "1.2.840.10008.1.2.2"
_DEFLATED = "1.2.840.10008.1.2.1.99"
_NATIVE = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", _BIG_ENDIAN}


def _plugin_for(transfer_syntax: str) -> str:
    uid = UID(transfer_syntax) if transfer_syntax else None
    if uid is not None and not uid.is_transfer_syntax:
        return "none: this is not a known transfer syntax (corrupt File Meta header?); re-export the file"
    if uid is None or not uid.is_compressed:
        return "none needed (native data: the Pixel Data is probably truncated or inconsistent with Rows, "\
            "Columns, Bits Allocated and Number of Frames)"
    name = uid.name.lower()
    if "rle" in name:
        return "pylibjpeg-rle (or pydicom's own RLE decoder)"
    if "2000" in name or "htj2k" in name or "high-throughput" in name:
        return "pylibjpeg-openjpeg"
    if "jpeg-ls" in name:
        return "pylibjpeg-libjpeg or pyjpegls"
    if "jpeg" in name:
        return "pylibjpeg-libjpeg (or python-gdcm)"
    return "python-gdcm"


def decode(ds: Dataset, index: int | None = None, *, path: str | None = None) -> np.ndarray:
    """Decode the stored values of a dataset's Pixel Data (all frames, or frame ``index``).

    Parameters
    ----------
    ds
        A dataset with Pixel Data.
    index
        The frame to decode, or None for all (a multi-frame array is (frames, rows, columns[, samples])).
    path
        The file, for error messages (defaults to the dataset's ``path``/``filename``).

    Returns
    -------
    numpy.ndarray
        Stored values (no rescale), colour converted to RGB as pydicom does.

    Raises
    ------
    PixelDecodeError
        When there is no Pixel Data, or it cannot be decoded: the message names the file, the transfer
        syntax and the plugin that decodes it.
    """
    where = path or getattr(ds, "path", None) or getattr(ds, "filename", None)
    syntax = transfer_syntax_of(ds) or ""
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise PixelDecodeError("the dataset has no Pixel Data (7FE0,0010)", where)
    if syntax in _NATIVE or syntax == _DEFLATED or not syntax:
        _check_native_length(ds, where)
    try:
        from pydicom.pixels import pixel_array

        return pixel_array(ds, index=index)
    except BaseException as exc:
        # Rust decoders (pylibjpeg-rle) panic on some corrupt data: pyo3's PanicException is a BaseException
        if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
            raise
        name = UID(syntax).name if syntax else "unknown transfer syntax"
        frame = "" if index is None else f", frame {index}"
        raise PixelDecodeError(
            f"cannot decode Pixel Data{frame} stored as {name} ({syntax or '?'}): {exc}. "
            f"Decoder plugin for this transfer syntax: {_plugin_for(syntax)}",
            where,
        ) from exc


def _check_native_length(ds: Dataset, where: Any) -> None:
    """Refuse native Pixel Data longer than its header says (pydicom would silently drop the excess).

    A shorter one is reported by pydicom's decoder; one padding byte to an even length is allowed.
    """
    if "PixelData" not in ds:
        return
    try:
        from pydicom.pixels.utils import get_expected_length

        expected = get_expected_length(ds, "bytes")
        actual = len(ds.PixelData)
    except Exception:  # noqa: BLE001 - incomplete pixel module: left to the decoder, which reports it
        return
    if not isinstance(expected, int):  # e.g. Rows read as text (a corrupt VR): left to the decoder
        return
    if actual > expected + expected % 2:
        raise PixelDecodeError(
            f"Pixel Data (7FE0,0010) holds {actual} bytes but Rows x Columns x Samples per Pixel x Bits "
            f"Allocated x Number of Frames make {expected}: the header does not describe the pixels (wrong "
            "Rows, Columns or Number of Frames?); refusing to guess, re-export the file",
            where,
        )


def mosaic_tile(mosaic: np.ndarray, tile: int, tiles_per_side: int) -> np.ndarray:
    """Tile ``tile`` of a Siemens mosaic (tiles stored row by row, top-left first)."""
    rows, columns = mosaic.shape[0] // tiles_per_side, mosaic.shape[1] // tiles_per_side
    r, c = divmod(tile, tiles_per_side)
    return mosaic[r * rows:(r + 1) * rows, c * columns:(c + 1) * columns]


def frame_pixels(frame: Any) -> np.ndarray:
    """Stored values of one slice given as a frame header (see :mod:`medipy.io.dicom.frames`)."""
    source = getattr(frame, "source", None)
    if source is None:
        return decode(frame)
    from medipy.io.dicom.frames import frame_layout

    layout = frame_layout(source)
    if layout.kind == "mosaic":
        return mosaic_tile(decode(source), int(frame.frame), layout.mosaic_tiles or 1)
    return decode(source, index=int(frame.frame))


def stored_dtype(record: SliceRecord) -> np.dtype:
    """The numpy dtype of a record's stored values (as pydicom returns them)."""
    bits = record.bits_allocated
    if bits not in (8, 16, 32, 64):
        raise PixelDecodeError(f"unsupported Bits Allocated {bits}", record.path)
    kind = "i" if record.pixel_representation == 1 else "u"
    return np.dtype(f"{kind}{bits // 8}")


def _native_location(record: SliceRecord) -> tuple[np.dtype, int] | None:
    """Stored dtype (file byte order) and byte offset of one native frame, or None when reading it at its
    recorded offset does not apply; refuses a Pixel Data length that does not match the header."""
    if (
        record.path is None
        or record.pixel_offset is None
        or record.transfer_syntax not in _NATIVE
        or record.samples_per_pixel != 1
        or record.bits_allocated not in (8, 16, 32)
        or record.mosaic_tiles
    ):
        return None
    dtype = stored_dtype(record).newbyteorder(">" if record.transfer_syntax == _BIG_ENDIAN else "<")
    count = record.rows * record.columns
    frame = record.frame or 0
    offset = record.pixel_offset + frame * count * dtype.itemsize
    if record.pixel_length is not None and (frame + 1) * count * dtype.itemsize > record.pixel_length:
        raise PixelDecodeError(
            f"Pixel Data holds {record.pixel_length} bytes, fewer than frame {frame} of "
            f"{record.rows}x{record.columns}x{dtype.itemsize} bytes needs",
            record.path,
        )
    total = max(record.number_of_frames, 1) * count * dtype.itemsize
    if record.pixel_length is not None and record.pixel_length > total + total % 2:
        raise PixelDecodeError(  # the same refusal as decode(): the header does not describe the pixels
            f"Pixel Data (7FE0,0010) holds {record.pixel_length} bytes but Rows x Columns x Samples per Pixel x "
            f"Bits Allocated x Number of Frames make {total}: the header does not describe the pixels (wrong "
            "Rows, Columns or Number of Frames?); refusing to guess, re-export the file",
            record.path,
        )
    return dtype, offset


def _read_at(record: SliceRecord, offset: int, target: np.ndarray) -> None:
    """Fill the contiguous array ``target`` with the file's bytes at ``offset``."""
    try:
        with open(cast(str, record.path), "rb") as handle:
            handle.seek(offset)
            got = handle.readinto(memoryview(target.reshape(-1).view(np.uint8)))  # type: ignore[arg-type]
    except OSError as exc:
        raise PixelDecodeError(f"cannot read Pixel Data: {exc}", record.path) from exc
    if got != target.nbytes:
        raise PixelDecodeError(
            f"file ends inside Pixel Data (frame {record.frame or 0}: {got} of {target.nbytes} bytes)", record.path)


def _native_offset_read(record: SliceRecord) -> np.ndarray | None:
    """Read one native frame at its recorded byte offset, or None when that fast path does not apply."""
    location = _native_location(record)
    if location is None:
        return None
    dtype, offset = location
    values = np.empty((record.rows, record.columns), dtype=dtype)
    _read_at(record, offset, values)  # straight into the array
    return values if dtype.isnative else values.astype(dtype.newbyteorder("="))


def read_native_slice(record: SliceRecord, out: np.ndarray, *, check: bool = False) -> bool:
    """Real-world values of one native slice read at its recorded offset into ``out``, in one pass or two.

    The fast path of :func:`record_pixels` followed by :func:`rescale` for integer output (slope 1, whole
    intercept): the stored values are read straight into ``out`` when it has their dtype (else into a
    scratch array), fitted to Bits Stored and shifted by the intercept in place. Same values as
    ``rescale(record_pixels(record), record, out.dtype)``.

    Parameters
    ----------
    record
        The slice.
    out
        A C-contiguous (rows, columns) array of the stack's integer output dtype.
    check
        Check that the values fit in ``out``'s dtype (see :func:`fits`) before writing them.

    Returns
    -------
    bool
        False (``out`` untouched) when this path does not apply: compressed, big endian, colour, mosaic,
        float output or no recorded offset. Then use :func:`record_pixels` and :func:`rescale`.

    Raises
    ------
    PixelDecodeError
        The file is shorter than its Pixel Data, or Pixel Data does not match the header.
    ValueRangeError
        ``check`` and a value does not fit (``out`` then holds the slice's stored values, not its own).
    """
    if out.dtype.kind not in "iu" or not out.flags.c_contiguous or out.shape != (record.rows, record.columns):
        return False
    location = _native_location(record)
    if location is None or not location[0].isnative:
        return False
    dtype, offset = location
    target = out if dtype == out.dtype else np.empty(out.shape, dtype)
    _read_at(record, offset, target)
    bits = dtype.itemsize * 8
    if 0 < record.bits_stored < bits:  # fit_bits_stored, in place
        if record.pixel_representation == 1:
            shift = bits - record.bits_stored
            np.left_shift(target, shift, out=target)
            np.right_shift(target, shift, out=target)
        else:
            np.bitwise_and(target, np.asarray((1 << record.bits_stored) - 1, dtype=dtype), out=target)
    if check and not fits(target, record, out.dtype):
        raise ValueRangeError(f"real-world values out of the range of {out.dtype}", record.path)
    intercept = int(record.rescale_intercept)
    if target is out:
        if intercept:
            out += out.dtype.type(intercept)
    elif intercept:  # cast and shift in one pass, in the output dtype (as rescale does in two)
        np.add(target, out.dtype.type(intercept), out=out, dtype=out.dtype, casting="unsafe")
    else:
        np.copyto(out, target, casting="unsafe")
    return True


def fit_bits_stored(values: np.ndarray, record: SliceRecord) -> np.ndarray:
    """Sign-extend (signed) or mask (unsigned) stored values to Bits Stored, as PS3.5 8.1.1 defines them."""
    if values.dtype.kind not in "iu" or not 0 < record.bits_stored < values.dtype.itemsize * 8:
        return values
    shift = values.dtype.itemsize * 8 - record.bits_stored
    if record.pixel_representation == 1:
        return (values << shift) >> shift
    return values & np.asarray((1 << record.bits_stored) - 1, dtype=values.dtype)


def record_pixels(record: SliceRecord) -> np.ndarray:
    """Stored values of the slice a record describes, read from its file.

    Native data is read at its recorded offset (no header parse); anything else is decoded by pydicom,
    one frame only for multi-frame objects.

    Raises
    ------
    PixelDecodeError
        The file's pixels cannot be read or decoded (naming file, transfer syntax and plugin).
    """
    values = _native_offset_read(record)
    if values is not None:
        return fit_bits_stored(values, record)
    if record.path is None or not os.path.exists(record.path):
        raise PixelDecodeError("the slice's file is not available to read its pixels", record.path)
    from pydicom import dcmread

    try:
        ds = dcmread(record.path, force=True)
    except Exception as exc:
        raise PixelDecodeError(f"cannot re-read the file for its pixels: {exc}", record.path) from exc
    if record.mosaic_tiles:
        values = mosaic_tile(decode(ds, path=record.path), int(record.frame or 0), record.mosaic_tiles)
    elif record.number_of_frames > 1:
        values = decode(ds, index=int(record.frame or 0), path=record.path)
    else:
        values = decode(ds, path=record.path)
    return fit_bits_stored(values, record)


def _stored_range(record: SliceRecord) -> tuple[int, int]:
    bits = record.bits_stored or record.bits_allocated
    if record.pixel_representation == 1:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


class OutputDtypes(NamedTuple):
    """The dtypes a stack's real-world values can have (see :func:`output_dtypes`)."""

    #: The dtype kept when every value fits in it.
    narrow: np.dtype
    #: The dtype holding every value Bits Stored allows (known before any pixel is read).
    wide: np.dtype

    @property
    def checked(self) -> bool:
        """True when the values decide between the two (else both are the same dtype)."""
        return self.narrow != self.wide


def _first_holding(stored: np.dtype, low: int, high: int) -> np.dtype | None:
    for candidate in (stored, np.dtype(np.int16), np.dtype(np.int32), np.dtype(np.int64)):
        info = np.iinfo(candidate)
        if info.min <= low and high <= info.max and candidate.itemsize >= stored.itemsize:
            return candidate
    return None


def output_dtypes(records: Sequence[SliceRecord]) -> OutputDtypes:
    """The two dtypes a stack's real-world values (Rescale Slope/Intercept applied per slice) can have.

    With every slope 1 and every intercept integral, ``narrow`` is the stored integer dtype, or the first of
    int16, int32, int64 at least as wide that holds every intercept (the value of a stored 0: signed when an
    intercept is negative), and ``wide`` the first of those that holds the whole range Bits Stored and Pixel
    Representation allow after rescale. Both are float32 when a slope is not 1 or an intercept not integral,
    the stored dtype for colour data. The stack's dtype is ``narrow`` when every value fits in it, else
    ``wide`` (:func:`output_dtype`): a CT stored as 16-bit signed with intercept -1024 stays int16 (the
    range of 16 bits after rescale would need int32, its values do not), as API.md asks ("integer dtype kept
    when ... the values fit"). When ``narrow == wide`` no value needs to be looked at.

    Parameters
    ----------
    records
        The slices of one stack.

    Returns
    -------
    OutputDtypes
    """
    first = records[0]
    stored = stored_dtype(first)
    if first.samples_per_pixel > 1:
        return OutputDtypes(stored, stored)
    slopes = {r.rescale_slope for r in records}
    intercepts = [r.rescale_intercept for r in records]
    if slopes != {1.0} or any(not float(i).is_integer() for i in intercepts):
        return OutputDtypes(np.dtype(np.float32), np.dtype(np.float32))
    shifts = int(min(intercepts)), int(max(intercepts))
    low, high = _stored_range(first)
    wide = _first_holding(stored, low + shifts[0], high + shifts[1]) or np.dtype(np.float32)
    narrow = _first_holding(stored, min(shifts[0], 0), max(shifts[1], 0)) or wide
    if wide.kind == "f" or wide.itemsize < narrow.itemsize:
        narrow = wide
    return OutputDtypes(narrow, wide)


def fits(values: np.ndarray, record: SliceRecord, dtype: np.dtype) -> bool:
    """Whether the real-world values of a slice fit in an integer dtype.

    Parameters
    ----------
    values
        The slice's stored values, fitted to Bits Stored (:func:`fit_bits_stored`).
    record
        The slice (its intercept; an integer ``dtype`` means slope 1 and a whole intercept).
    dtype
        The dtype to hold ``values + intercept``.

    Returns
    -------
    bool
        True when every value fits (or ``dtype`` is not an integer dtype).
    """
    if dtype.kind not in "iu" or values.dtype.kind not in "iu" or not values.size:
        return True
    info, held = np.iinfo(dtype), np.iinfo(values.dtype)
    intercept = int(record.rescale_intercept)
    low, high = info.min - intercept, info.max - intercept
    # a bound the stored dtype cannot cross is not looked at (e.g. the top, for int16 values shifted down)
    return (held.min >= low or int(values.min()) >= low) and (held.max <= high or int(values.max()) <= high)


def output_dtype(records: Sequence[SliceRecord], values: Sequence[np.ndarray] | None = None) -> np.dtype:
    """The dtype of a stack's real-world values (Rescale Slope/Intercept applied per slice).

    Parameters
    ----------
    records
        The slices of one stack.
    values
        Their stored values (fitted to Bits Stored), in the same order. Without them, the wide dtype.

    Returns
    -------
    numpy.dtype
        ``narrow`` of :func:`output_dtypes` when every value fits in it, else ``wide``.
    """
    dtypes = output_dtypes(records)
    if values is None:
        return dtypes.wide
    if dtypes.checked and all(fits(v, r, dtypes.narrow) for v, r in zip(values, records, strict=True)):
        return dtypes.narrow
    return dtypes.wide


def rescale(values: np.ndarray, record: SliceRecord, dtype: np.dtype, out: np.ndarray | None = None) -> np.ndarray:
    """Real-world values of one slice: ``values * slope + intercept`` in ``dtype`` (see output_dtype).

    With ``out`` (an array of ``dtype`` and the slice's shape), the values are written there and ``out`` is
    returned.
    """
    if record.samples_per_pixel == 1 and dtype.kind != "f":  # integer output: slope 1, whole intercept
        if out is None:
            out = values.astype(dtype)
        else:
            np.copyto(out, values, casting="unsafe")
        if record.rescale_intercept:
            out += dtype.type(int(record.rescale_intercept))
        return out
    if record.samples_per_pixel > 1:
        result = values.astype(dtype, copy=False)
    else:
        result = (values.astype(np.float64) * record.rescale_slope + record.rescale_intercept).astype(dtype)
    if out is None:
        return result
    out[...] = result
    return out
