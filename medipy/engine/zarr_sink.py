"""Persist: planned stacks written to a zarr v3 store in the OME-Zarr 0.5 layout.

Layout::

    OUT.zarr/                         root group; attribute "medipy": stacks, failures, skipped files
      series-<uid>/stack-<n>/         one OME-Zarr image group per stack (attributes "ome" and "medipy")
        0/                            the full-resolution array: [t,] [c,] z, y, x

Group names come from UIDs only through :func:`medipy.engine.plan.node_name` (a malformed UID is hashed),
so input text never escapes the store. Arrays are sharded (a shard = one dask chunk of whole slices, inner
chunks of one or a few slices) and compressed; each write task writes whole shards. An image group's
``medipy.complete`` is set to true only after every shard of it has been written.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from medipy.engine.arrays import CHUNK_BYTES, SHARD_BYTES, block_slices, read_block
from medipy.engine.plan import Slices, StackPlan
from medipy.engine.scan import FileIssue
from medipy.engine.shards import shard_layout, shard_origin, write_whole_shard
from medipy.engine.zarr_json import array_document, is_local_store, require_groups, write_array, write_group
from medipy.errors import ValueRangeError
from medipy.io.dicom.record import SliceRecord, plain_state

__all__ = ["COMPRESSIONS", "SinkOptions", "StackBatch", "Widen", "WriteJob", "create_image", "finish_image",
           "image_attributes", "medipy_attributes", "shard_count", "stack_bytes", "stack_summary", "write_batch",
           "write_item", "write_jobs", "write_root", "write_shard"]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1


#: The Blosc codecs offered by name, with their level (all bit-shuffled). Measured on 512x512 CT slices, one
#: core: lz4 ~1,040 MB/s for a ratio of 3.1; zstd level 1 ~460 MB/s for 4.3.
COMPRESSIONS = {"lz4": ("lz4", 5), "zstd": ("zstd", 1)}


@dataclass(frozen=True, slots=True)
class SinkOptions:
    """How arrays are stored: compressor (Blosc ``cname``, ``clevel``, ``shuffle``) and chunking.

    The default, lz4 with bit shuffle, compresses about twice as fast as zstd level 1 for stores ~30% larger
    (see :data:`COMPRESSIONS`, and :meth:`named` to choose by name).
    """

    cname: str = "lz4"
    clevel: int = 5
    shuffle: str = "bitshuffle"
    shard_bytes: int = SHARD_BYTES
    chunk_bytes: int = CHUNK_BYTES

    @classmethod
    def named(cls, compression: str) -> SinkOptions:
        """The options of a compression of :data:`COMPRESSIONS` (``"lz4"`` or ``"zstd"``)."""
        cname, clevel = COMPRESSIONS[compression]
        return cls(cname=cname, clevel=clevel)


@dataclass(frozen=True, slots=True)
class WriteJob:
    """One write task: the slices of one shard, where they go, and how to lay them out."""

    array_path: str
    region: tuple[slice, ...]
    records: tuple[SliceRecord, ...]
    dtype: str
    colour: bool
    four_d: bool
    rescale_dtype: str
    volume: int = 0
    check: bool = False


plain_state(WriteJob)


class Widen(NamedTuple):
    """What a write task returns when values of a stack do not fit the narrow dtype they were read in: the
    volumes to read in their wide dtype (:meth:`~medipy.engine.plan.StackPlan.widened`); the task's shards
    were not written, and the stack is written again in the wide dtype."""

    volumes: tuple[int, ...]


def medipy_attributes(node: Any) -> dict[str, Any]:
    """The ``medipy`` attribute of a zarr group or array (a copy), empty when it has none or not a mapping."""
    value = node.attrs.get("medipy")
    return dict(value) if isinstance(value, Mapping) else {}


def _axes(plan: StackPlan) -> list[dict[str, str]]:
    axes: list[dict[str, str]] = []
    if plan.is_4d and plan.volume_axis == "channel":  # diffusion volumes
        axes.append({"name": "c", "type": "channel"})
    elif plan.is_4d:
        axes.append({"name": "t", "type": "time"})
    if plan.samples > 1:
        axes.append({"name": "c", "type": "channel"})
    axes += [{"name": n, "type": "space", "unit": "millimeter"} for n in ("z", "y", "x")]
    return axes


def _relative(path: str | None, root: str | None) -> str | None:
    if path is None or root is None:
        return path
    prefix = os.path.join(root, "")
    rest = path[len(prefix):]
    plain = os.path.normpath(rest) == rest and not (rest.startswith("..") or os.path.isabs(rest))
    if path.startswith(prefix) and plain:
        return rest.replace(os.sep, "/")  # the common case: no relpath (abspath of both, common prefix)
    try:
        return os.path.relpath(path, root).replace(os.sep, "/")
    except ValueError:
        return path


def image_attributes(plan: StackPlan, *, source_root: str | None = None, complete: bool = False,
                     issues: Sequence[FileIssue] = (), slices: Slices | None = None) -> dict[str, Any]:
    """The ``ome`` and ``medipy`` attributes of an image group (JSON-ready); ``slices``: the plan's, when
    already unpacked."""
    lead = [1.0] * (int(plan.is_4d) + int(plan.samples > 1))
    transforms = [
        {"type": "scale", "scale": lead + list(plan.spacing)},
        {"type": "translation", "translation": [0.0] * len(lead) + list(plan.origin)},
    ]
    ome = {
        "version": "0.5",
        "multiscales": [{
            "name": plan.path,
            "axes": _axes(plan),
            "datasets": [{"path": "0", "coordinateTransformations": transforms}],
        }],
    }

    def per_volume(values: list[list[Any]]) -> Any:
        return values if plan.is_4d else values[0]

    slices = slices if slices is not None else plan.unpack()

    medipy = {
        "version": FORMAT_VERSION,
        "complete": complete,
        "affine": [list(row) for row in plan.affine],
        "series_instance_uid": plan.series_instance_uid,
        "study_instance_uid": plan.study_instance_uid,
        "patient_id": plan.patient_id,
        "series_number": plan.series_number,
        "series_description": plan.series_description,
        "modality": plan.modality,
        "stack_index": plan.index,
        "volume_axis": plan.volume_axis or None,
        "shape": list(_stored_shape(plan)),
        "dtype": plan.dtype,
        "origin": list(plan.origin),
        "spacing": list(plan.spacing),
        "direction": [list(row) for row in plan.direction],
        "slice_spacing": plan.slice_spacing,
        "gantry_tilt": plan.gantry_tilt,
        "slice_gaps": list(slices.slice_gaps),
        "geometry_warnings": list(plan.warnings),
        "sop_instance_uids": per_volume([[r.sop_instance_uid for r in v] for v in slices.volumes]),
        "frames": per_volume([[r.frame for r in v] for v in slices.volumes]),
        "files": per_volume([[_relative(r.path, source_root) for r in v] for v in slices.volumes]),
        "dicom": plan.shared,
        "per_slice": slices.per_slice,
        "failed_slices": [i.as_dict() for i in issues],
    }
    return {"ome": ome, "medipy": medipy}


def _stored_shape(plan: StackPlan) -> tuple[int, ...]:
    shape = plan.shape
    if plan.samples > 1:  # OME-Zarr wants channels before space: (z, y, x, c) -> (c, z, y, x)
        shape = (shape[-1], *shape[:-1])
    return shape


def create_image(root: str, plan: StackPlan, options: SinkOptions, *, source_root: str | None = None,
                 describe: bool = True, slices: Slices | None = None) -> dict[str, Any] | None:
    """Create the image group of a stack and its empty array (metadata only; ``complete`` false).

    With ``describe`` false, a new image group gets no attributes yet (they are written whole by
    :func:`finish_image`; until then the group is not an image a reader would take for complete).
    ``slices``: the plan's, when already unpacked.

    Returns
    -------
    dict or None
        The attributes written (:func:`image_attributes`), to be passed to :func:`finish_image`; None when
        not ``describe``.
    """
    import zarr
    from zarr.codecs import BloscCodec

    chunk, shard = block_slices(plan, options.shard_bytes, options.chunk_bytes)
    shape = _stored_shape(plan)
    lead = len(shape) - 3
    inner = (1,) * lead + (chunk, shape[-2], shape[-1])
    outer = (1,) * lead + (shard, shape[-2], shape[-1])
    if plan.samples > 1:
        inner = (shape[0], *inner[1:])
        outer = (shape[0], *outer[1:])
    names = [a["name"] for a in _axes(plan)]
    attributes = image_attributes(plan, source_root=source_root, slices=slices) if describe else None
    document = array_document(shape, np.dtype(plan.dtype), inner, outer, {
        "cname": options.cname, "clevel": options.clevel, "shuffle": options.shuffle}, names)
    if document is not None and is_local_store(root):  # the documents zarr-python writes, without its store
        folder = require_groups(root, plan.path, attributes)
        write_array(os.path.join(folder, "0"), document)
        return attributes
    group = zarr.open_group(store=root, mode="a").require_group(plan.path)
    if attributes is not None:
        group.attrs.put(attributes)
    group.create_array(
        "0", shape=shape, dtype=np.dtype(plan.dtype), chunks=inner, shards=outer,
        compressors=[BloscCodec(cname=options.cname, clevel=options.clevel,  # type: ignore[arg-type]
                                shuffle=options.shuffle)],  # type: ignore[arg-type] # checked by BloscCodec
        fill_value=0, dimension_names=names, overwrite=True,
    )
    return attributes


def shard_count(plan: StackPlan, options: SinkOptions) -> int:
    """The number of :func:`write_jobs` of a stack (its shards), without unpacking its slices."""
    _, shard = block_slices(plan, options.shard_bytes, options.chunk_bytes)
    return plan.count * -(-plan.depth // shard)


def write_jobs(root: str, plan: StackPlan, options: SinkOptions, slices: Slices | None = None) -> list[WriteJob]:
    """One job per shard of a stack's array (``slices``: the plan's, when already unpacked)."""
    _, shard = block_slices(plan, options.shard_bytes, options.chunk_bytes)
    array_path = os.path.join(root, *plan.path.split("/"), "0")
    depth = plan.depth
    colour = plan.samples > 1
    jobs: list[WriteJob] = []
    for t, volume in enumerate((slices if slices is not None else plan.unpack()).volumes):
        for z in range(0, depth, shard):
            region: tuple[slice, ...] = (slice(z, min(z + shard, depth)),)
            if colour:
                region = (slice(None), *region)
            if plan.is_4d:
                region = (slice(t, t + 1), *region)
            jobs.append(WriteJob(array_path, region, volume[z:z + shard], plan.dtype, colour, plan.is_4d,
                                plan.volume_dtypes[t], t, plan.checked(t)))
    return jobs


def write_shard(job: WriteJob) -> list[FileIssue]:
    """Read the slices of one shard and write them (the task run by workers); returns unreadable slices.

    Raises
    ------
    ValueRangeError
        ``job.check`` and values do not fit ``job.rescale_dtype`` (nothing written).
    """
    return _write_shard(job)[1]


def _write_shard(job: WriteJob) -> tuple[np.ndarray, list[FileIssue]]:
    """:func:`write_shard`, also returning the values written, as read: (z, y, x[, samples])."""
    import zarr

    read, issues = read_block(job.records, job.dtype, report=True, rescale_dtype=job.rescale_dtype, check=job.check)
    values = np.moveaxis(read, -1, 0) if job.colour else read
    if job.four_d:
        values = values[np.newaxis]
    layout = shard_layout(job.array_path)
    origin = None if layout is None else shard_origin(layout, job.region)
    if layout is not None and origin is not None and values.shape == tuple(
            min(s, n - o * s) for o, s, n in zip(origin, layout.shard_shape, layout.shape, strict=True)):
        write_whole_shard(layout, origin, values)  # the bytes zarr writes, without its per-chunk loop hops
    else:
        array = zarr.open_array(store=job.array_path, mode="r+")
        array[job.region] = values
    return read, issues


@dataclass(frozen=True)
class StackBatch:
    """Whole stacks written by one task: small stacks cost more in file-system calls and task overhead
    than in pixels, so that one worker creates, writes and finishes several of them in a row."""

    root: str
    plans: tuple[StackPlan, ...]
    options: SinkOptions
    source_root: str | None = None
    thumbnails: bool = False


def write_batch(batch: StackBatch) -> list[tuple[list[FileIssue], bytes | None]]:
    """Write whole stacks (the task run by workers): image group, every shard, then ``complete``.

    Parameters
    ----------
    batch
        The stacks, where and how to store them.

    Returns
    -------
    list of (list of FileIssue, bytes or None)
        For each stack, the slices that could not be read (relative to ``batch.source_root``, sorted) and,
        when ``batch.thumbnails``, its PNG thumbnail made from the values written (None when its first
        volume is not one shard: :func:`medipy.engine.thumbnails.stack_thumbnail` reads it back).
    """
    out: list[tuple[list[FileIssue], bytes | None]] = []
    for plan in batch.plans:
        out.append(_write_whole(batch, plan))
    return out


def _write_whole(batch: StackBatch, plan: StackPlan, slices: Slices | None = None
                 ) -> tuple[list[FileIssue], bytes | None]:
    """One stack of :func:`write_batch`: written again in the wide dtype of the volumes whose values do not
    fit the narrow one (found on the first pass; the other volumes fit, so there is no third). Its slices are
    unpacked once."""
    from medipy.engine.thumbnails import volume_thumbnail

    slices = slices if slices is not None else plan.unpack()
    create_image(batch.root, plan, batch.options, source_root=batch.source_root, describe=False)
    issues: list[FileIssue] = []
    thumbnail = None
    widen: set[int] = set()
    for number, job in enumerate(write_jobs(batch.root, plan, batch.options, slices)):
        try:
            values, found = _write_shard(job)
        except ValueRangeError:
            widen.add(job.volume)
            continue
        issues.extend(i.relative_to(batch.source_root) for i in found)
        if number == 0 and batch.thumbnails and values.shape[0] == plan.depth:  # the whole first volume
            thumbnail = volume_thumbnail(values, plan.spacing)
    if widen:
        logger.info("%s: values do not fit %s, written as %s", plan.path, plan.dtype, plan.widened(widen).dtype)
        return _write_whole(batch, plan.widened(widen), slices)
    issues.sort(key=lambda i: (i.path, i.kind))
    finish_image(batch.root, plan, issues, source_root=batch.source_root, slices=slices)
    return issues, thumbnail


def write_item(item: WriteJob | Sequence[WriteJob] | StackBatch
               ) -> list[FileIssue] | Widen | list[tuple[list[FileIssue], bytes | None]]:
    """The write task of :func:`medipy.engine.conversion.write_stacks`: :func:`write_batch` of a batch of
    whole stacks, :func:`write_shard` of one shard or of each of several.

    Parameters
    ----------
    item
        A batch of stacks, one shard, or consecutive shards of one stack.

    Returns
    -------
    list or Widen
        What :func:`write_batch` returns for a batch; else the unreadable slices of the shards, together, or
        :class:`Widen` when values of some of them do not fit their narrow dtype (each shard is tried).
    """
    if isinstance(item, StackBatch):
        return write_batch(item)
    issues: list[FileIssue] = []
    widen: set[int] = set()
    for job in (item,) if isinstance(item, WriteJob) else item:
        try:
            issues.extend(write_shard(job))
        except ValueRangeError:
            widen.add(job.volume)
    return Widen(tuple(sorted(widen))) if widen else issues


def stack_bytes(plan: StackPlan) -> int:
    """The bytes of a stack's array (its shape times its dtype's size).

    Parameters
    ----------
    plan
        The stack.

    Returns
    -------
    int
    """
    return int(np.prod(plan.shape)) * np.dtype(plan.dtype).itemsize


def finish_image(root: str, plan: StackPlan, issues: Sequence[FileIssue], *, source_root: str | None = None,
                 slices: Slices | None = None, created: dict[str, Any] | None = None) -> None:
    """Mark a stack complete (all shards written); slices that could not be read are listed, not hidden.

    ``created``: the attributes :func:`create_image` wrote for the same plan and ``source_root``, completed here
    instead of made again (``slices`` is then not needed).
    """
    import zarr

    if created is not None:
        attributes = {**created, "medipy": {**created["medipy"], "complete": not issues,
                                            "failed_slices": [i.as_dict() for i in issues]}}
    else:
        attributes = image_attributes(plan, source_root=source_root, complete=not issues, issues=issues,
                                      slices=slices)
    folder = os.path.join(root, *plan.path.split("/"))
    if is_local_store(folder):  # the group create_image made: its document rewritten whole
        write_group(folder, attributes)
        return
    group = zarr.open_group(store=root, mode="a")[plan.path]
    group.attrs.put(attributes)


def stack_summary(plan: StackPlan, issues: Sequence[FileIssue]) -> dict[str, Any]:
    """The root listing entry of one stack."""
    return {
        "path": plan.path,
        "patient_id": plan.patient_id,
        "study_instance_uid": plan.study_instance_uid,
        "series_instance_uid": plan.series_instance_uid,
        "series_number": plan.series_number,
        "series_description": plan.series_description,
        "modality": plan.modality,
        "shape": list(_stored_shape(plan)),
        "complete": not issues,
    }


def write_root(root: str, stacks: Sequence[dict[str, Any]], failures: Sequence[FileIssue],
               skipped: Sequence[FileIssue], *, source: str | None = None) -> None:
    """Write the root listing: every stack, the failures (with their kind) and the skipped files."""
    import zarr

    group = zarr.open_group(store=root, mode="a")
    group.attrs.put({"medipy": {
        "version": FORMAT_VERSION,
        "source": source,
        "stacks": list(stacks),
        "failures": [f.as_dict() for f in failures],
        "skipped": [f.as_dict() for f in skipped],
    }})
