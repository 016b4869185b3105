"""Assemble: each planned stack becomes a lazy dask array whose chunks read their slices from the files.

A chunk is a run of whole slices of one volume (aligned with the zarr shards of
:mod:`medipy.engine.zarr_sink`). Its task reads native Pixel Data at the recorded byte offset (no header
parse), hands compressed data to pydicom and its plugins (a mosaic decoded once per chunk, not once per
tile; a multi-frame object decoded whole when the chunk holds all its frames, else only the chunk's frames,
not once per chunk), and applies Rescale Slope/Intercept exactly as :func:`medipy.io.dicom.image` does:
computed, the array equals ``image(stack).data``.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from medipy.engine.plan import StackPlan
from medipy.engine.scan import FileIssue, IssueKind
from medipy.errors import PixelDecodeError, ValueRangeError
from medipy.io.dicom.pixels import (
    decode,
    fit_bits_stored,
    fits,
    mosaic_tile,
    read_native_slice,
    record_pixels,
    rescale,
)
from medipy.io.dicom.record import SliceRecord

__all__ = ["block_slices", "read_block", "stack_array"]

logger = logging.getLogger(__name__)

#: Target size of one dask chunk (= one zarr shard) in bytes.
SHARD_BYTES = 32 * 1024 * 1024
#: Target size of one zarr chunk inside a shard, in bytes (at least one slice).
CHUNK_BYTES = 512 * 1024


def block_slices(plan: StackPlan, shard_bytes: int = SHARD_BYTES, chunk_bytes: int = CHUNK_BYTES) -> tuple[int, int]:
    """Slices per zarr chunk and per shard (= per dask chunk) along z for a stack.

    The shard is a whole number of chunks, at most the stack depth rounded up to a chunk.
    """
    first = plan.first
    depth = plan.depth
    slice_bytes = first.rows * first.columns * plan.samples * np.dtype(plan.dtype).itemsize
    chunk = max(1, min(depth, chunk_bytes // max(1, slice_bytes)))
    per_shard = max(1, shard_bytes // max(1, slice_bytes * chunk))
    shard = min(per_shard * chunk, math.ceil(depth / chunk) * chunk)
    return chunk, shard


def _load(path: str) -> Any:
    """The dataset holding a slice's pixels: pydicom's plain parse for a Part 10 file (the header was
    validated by the scan), medipy's tolerant :func:`~medipy.io.dicom.reading.read` for anything else."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    from medipy.io.dicom.reading import read

    try:
        return pydicom.dcmread(path)
    except (InvalidDicomError, OSError, ValueError, EOFError):
        return read(path)


def _stored_values(records: Sequence[SliceRecord]) -> list[np.ndarray]:
    """Stored values of each slice: native data by offset; a compressed multi-frame object decoded whole when
    all its frames are asked for, else only the frames asked for (a large one spans several shards: decoded
    whole by each of their tasks, it would be decoded once per shard); a mosaic decoded once."""
    datasets: dict[str, Any] = {}
    wholes: dict[str, np.ndarray] = {}
    asked = Counter(r.path for r in records if r.number_of_frames > 1)
    out: list[np.ndarray] = []
    for record in records:
        if record.pixel_offset is not None and not record.mosaic_tiles and record.samples_per_pixel == 1:
            out.append(record_pixels(record))
            continue
        if record.path is None:
            raise PixelDecodeError("the slice has no file to read its pixels from")
        if record.path not in datasets:
            datasets[record.path] = _load(record.path)
        ds = datasets[record.path]
        if record.mosaic_tiles:
            if record.path not in wholes:
                wholes[record.path] = decode(ds, path=record.path)
            values = mosaic_tile(wholes[record.path], int(record.frame or 0), record.mosaic_tiles)
        elif record.number_of_frames > 1 and asked[record.path] < record.number_of_frames:
            values = decode(ds, index=int(record.frame or 0), path=record.path)
        elif record.number_of_frames > 1:
            if record.path not in wholes:
                wholes[record.path] = decode(ds, path=record.path)
            values = wholes[record.path][int(record.frame or 0)]
        else:
            values = decode(ds, path=record.path)
        out.append(fit_bits_stored(values, record))
    return out


def read_block(records: Sequence[SliceRecord], dtype: str | np.dtype, *, report: bool = False,
               rescale_dtype: str | np.dtype | None = None, check: bool = False
               ) -> np.ndarray | tuple[np.ndarray, list[FileIssue]]:
    """Real-world values of consecutive slices, as one (slices, rows, columns[, samples]) array.

    Parameters
    ----------
    records
        The slices, in order.
    dtype
        The stack's output dtype (:func:`medipy.io.dicom.pixels.output_dtype` of the whole stack).
    report
        When True, a slice that cannot be read is left at 0 and reported instead of raising: returns
        ``(values, issues)``.
    rescale_dtype
        The dtype to rescale in (a volume's own dtype in a 4D image), when it differs from ``dtype``.
    check
        Check that every value fits the dtype it is rescaled in (a narrow dtype, see
        :meth:`~medipy.engine.plan.StackPlan.checked`).

    Returns
    -------
    numpy.ndarray, or (numpy.ndarray, list of FileIssue) when ``report``

    Raises
    ------
    PixelDecodeError
        A slice cannot be read or decoded (only when not ``report``).
    ValueRangeError
        ``check`` and a slice's values do not fit (also when ``report``: the stack must be read in its wide
        dtype, see :meth:`~medipy.engine.plan.StackPlan.widened`).
    """
    dtype = np.dtype(dtype)
    inner = dtype if rescale_dtype is None else np.dtype(rescale_dtype)
    first = records[0]
    shape: tuple[int, ...] = (len(records), first.rows, first.columns)
    if first.samples_per_pixel > 1:
        shape = (*shape, first.samples_per_pixel)
    out = np.zeros(shape, dtype)
    issues: list[FileIssue] = []
    rest: list[int] = []  # slices not read by offset straight into ``out``
    for i, record in enumerate(records):
        try:
            if inner != dtype or not read_native_slice(record, out[i], check=check):
                rest.append(i)
        except PixelDecodeError as exc:
            if not report:
                raise
            out[i] = 0
            issues.append(FileIssue(record.path or "", IssueKind.UNDECODABLE, exc.reason))
    if not rest:
        return (out, issues) if report else out
    others = [records[i] for i in rest]
    try:
        values = _stored_values(others)
    except Exception as exc:  # report mode: one bad file never aborts a run (rule 8)
        if not report:
            raise
        values = []  # retry slice by slice to find which ones fail
        for record in others:
            try:
                values.extend(_stored_values([record]))
            except Exception as slice_exc:  # noqa: BLE001 - reported as this slice's failure
                reason = getattr(slice_exc, "reason", f"{type(slice_exc).__name__}: {slice_exc}")
                issues.append(FileIssue(record.path or "", IssueKind.UNDECODABLE, reason))
                values.append(None)  # type: ignore[arg-type]
        logger.debug("block of %d slices: %s", len(others), exc)
    for i, value, record in zip(rest, values, others, strict=True):
        if value is None:
            continue
        if value.shape != shape[1:]:
            issue = FileIssue(record.path or "", IssueKind.UNDECODABLE,
                              f"pixels have shape {value.shape}, expected {shape[1:]}")
            if not report:
                raise PixelDecodeError(issue.reason, record.path)
            issues.append(issue)
            continue
        if check and not fits(value, record, inner):
            raise ValueRangeError(f"real-world values out of the range of {inner}", record.path)
        if inner == dtype:
            rescale(value, record, inner, out=out[i])
        else:
            out[i] = rescale(value, record, inner)
    return (out, issues) if report else out


def _graph_name(plan: StackPlan) -> str:
    from dask.base import tokenize

    return "medipy-stack-" + tokenize(plan.path, [(r.path, r.frame, r.sop_instance_uid) for r in plan.records],
                                      plan.dtype)


def stack_array(plan: StackPlan, *, shard_bytes: int = SHARD_BYTES, chunk_bytes: int = CHUNK_BYTES):
    """The lazy image of a planned stack: shape (z, y, x), or (t, z, y, x) for volumes of one geometry.

    Parameters
    ----------
    plan
        A stack plan (see :func:`medipy.engine.plan.plan_series`).
    shard_bytes, chunk_bytes
        Chunking (see :func:`block_slices`): a dask chunk is one zarr shard of whole slices.

    Returns
    -------
    dask.array.Array
        Same layout, values and dtype as :func:`medipy.io.dicom.image` (colour samples on a trailing axis),
        in ``plan.dtype``. A stack whose values the plan cannot know to fit its narrow dtype
        (:meth:`~medipy.engine.plan.StackPlan.checked`) has them checked as they are read: a chunk that does
        not fit raises :class:`~medipy.errors.ValueRangeError` (never wrapped values); assemble
        ``plan.widened()`` (every volume in its wide dtype, which :func:`~medipy.io.dicom.image` then takes).

    Examples
    --------
    >>> array = stack_array(plan)  # doctest: +SKIP
    >>> array.compute().shape  # doctest: +SKIP
    (35, 64, 64)
    """
    import dask.array as da
    from dask.highlevelgraph import HighLevelGraph

    _, shard = block_slices(plan, shard_bytes, chunk_bytes)
    volumes = plan.volumes
    depth = plan.depth
    z_chunks = tuple(min(shard, depth - z) for z in range(0, depth, shard))
    name = _graph_name(plan)
    tail = (0, 0, 0) if plan.samples > 1 else (0, 0)
    dsk: dict[tuple, Any] = {}
    for t, volume in enumerate(volumes):
        for b, z in enumerate(range(0, depth, shard)):
            key = (name, t, b, *tail) if plan.is_4d else (name, b, *tail)
            dsk[key] = (_read, volume[z:z + shard], plan.dtype, plan.volume_dtypes[t], plan.checked(t))
    chunks: tuple[tuple[int, ...], ...] = (z_chunks, (plan.first.rows,), (plan.first.columns,))
    if plan.samples > 1:
        chunks = (*chunks, (plan.samples,))
    if plan.is_4d:
        chunks = ((1,) * plan.count, *chunks)
        dsk = {k: (_expand, v) for k, v in dsk.items()}
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=())  # type: ignore[arg-type]
    return da.Array(graph, name, chunks, dtype=np.dtype(plan.dtype))


def _read(records: Sequence[SliceRecord], dtype: str, rescale_dtype: str, check: bool) -> np.ndarray:
    try:
        return read_block(records, dtype, rescale_dtype=rescale_dtype, check=check)  # type: ignore[return-value]
    except ValueRangeError as exc:
        raise ValueRangeError(f"{exc.reason}: this stack's values do not fit its narrow dtype; assemble "
                              "stack_array(plan.widened()), as image() does", exc.path) from exc


def _expand(task_values: np.ndarray) -> np.ndarray:
    return task_values[np.newaxis]
