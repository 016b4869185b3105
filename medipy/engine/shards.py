"""Whole shards of a zarr v3 array encoded and written in one pass, without zarr's async codec pipeline.

The engine writes every shard of a stack exactly once and whole, so that the general machinery of
zarr-python (partial writes, an event loop thread, one thread hop per inner chunk) is pure overhead: it ran
at ~250 MB/s per core here, where Blosc alone compresses CT slices at ~1.3 GB/s. This module encodes a shard
as the zarr v3 ``sharding_indexed`` codec specifies it (https://zarr-specs.readthedocs.io, "Sharding codec"):

* the inner chunks, each encoded by the inner codecs (``bytes`` little endian, then ``blosc``), are stored one
  after the other in Morton order of their coordinates in the shard; a chunk equal to the fill value
  everywhere is not stored (zarr's default ``write_empty_chunks=False``);
* then the index: ``(offset, nbytes)`` as little-endian uint64 for every inner chunk in C order,
  ``2**64 - 1`` twice for a missing chunk, followed by its CRC32C (``crc32c`` index codec, 4 bytes LE).

Only the layout :func:`medipy.engine.zarr_sink.create_image` creates is handled (:func:`shard_layout` reads
the array's ``zarr.json`` and returns None for anything else, so that callers fall back to zarr). The bytes
written are the bytes zarr-python writes for the same data (tested), and a shard file appears complete or
not at all (written to ``<name>.<uuid hex>.partial``, then renamed, as zarr's LocalStore does).
"""

from __future__ import annotations

import functools
import json
import os
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ShardLayout", "shard_layout", "shard_origin", "write_whole_shard"]

_EMPTY = np.uint64(2**64 - 1)
_SHUFFLES = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}
# A chunk of 64 KiB or more holding one value everywhere compresses (clevel >= 1) below 1/16 of its size,
# whatever the codec and shuffle (checked for 1 to 8-byte types): a larger encoding is not looked at for
# emptiness. Smaller chunks are always looked at (Blosc's header alone can be 1/16 of them).
_EMPTY_RATIO = 16
_ALWAYS_SCANNED = 65536


@dataclass(frozen=True)
class ShardLayout:
    """What is needed to encode a shard of one array (read from its ``zarr.json``)."""

    path: str
    shape: tuple[int, ...]
    dtype: np.dtype
    fill_value: Any
    shard_shape: tuple[int, ...]
    chunk_shape: tuple[int, ...]
    blosc: dict[str, Any]

    @property
    def chunks_per_shard(self) -> tuple[int, ...]:
        """Inner chunks along each axis of a shard."""
        return tuple(s // c for s, c in zip(self.shard_shape, self.chunk_shape, strict=True))


def _named(entry: Any, name: str) -> dict[str, Any] | None:
    if isinstance(entry, dict) and entry.get("name") == name:
        return entry.get("configuration") or {}
    return None


def shard_layout(array_path: str) -> ShardLayout | None:
    """The layout of the array at ``array_path`` if it is one this module writes, else None.

    Read from the array's ``zarr.json`` at every call (not cached: an array may be re-created with other
    codecs at the same path, and the file is tiny next to a shard).

    Handled: a zarr v3 array with a regular chunk grid, default chunk keys (``c/…``, ``/`` separator), one
    ``sharding_indexed`` codec whose inner codecs are ``bytes`` (little endian) and ``blosc``, whose index
    codecs are ``bytes`` (little endian) and ``crc32c``, with the index at the end, a numeric fill value, and
    at most one axis with several inner chunks per shard (Morton order is then plain order).
    """
    try:
        with open(os.path.join(array_path, "zarr.json"), encoding="utf-8") as fp:
            meta = json.load(fp)
    except (OSError, ValueError):
        return None
    try:
        if meta.get("zarr_format") != 3 or meta.get("node_type") != "array" or meta.get("storage_transformers"):
            return None
        grid = _named(meta["chunk_grid"], "regular")
        keys = _named(meta["chunk_key_encoding"], "default")
        codecs = meta["codecs"]
        sharding = _named(codecs[0], "sharding_indexed") if len(codecs) == 1 else None
        if grid is None or keys is None or keys.get("separator", "/") != "/" or sharding is None:
            return None
        inner, index = sharding["codecs"], sharding["index_codecs"]
        if (len(inner) != 2 or _named(inner[0], "bytes") is None or _named(inner[1], "blosc") is None
                or len(index) != 2 or _named(index[1], "crc32c") is None
                or sharding.get("index_location", "end") != "end"):
            return None
        for entry in (inner[0], index[0]):
            config = _named(entry, "bytes")
            if config is None or config.get("endian", "little") != "little":
                return None
        blosc = _named(inner[1], "blosc") or {}
        dtype = np.dtype(meta["data_type"])
        fill = meta.get("fill_value", 0)
        if not isinstance(fill, int | float) or isinstance(fill, bool):
            return None
        layout = ShardLayout(
            path=array_path, shape=tuple(meta["shape"]), dtype=dtype, fill_value=fill,
            shard_shape=tuple(grid["chunk_shape"]), chunk_shape=tuple(sharding["chunk_shape"]),
            blosc={"cname": blosc["cname"], "clevel": int(blosc["clevel"]), "shuffle": _SHUFFLES[blosc["shuffle"]],
                   "blocksize": int(blosc.get("blocksize", 0)), "typesize": int(blosc.get("typesize", dtype.itemsize))},
        )
    except (KeyError, TypeError, IndexError, ValueError):
        return None
    if any(s % c for s, c in zip(layout.shard_shape, layout.chunk_shape, strict=True)):
        return None
    if sum(n > 1 for n in layout.chunks_per_shard) > 1:
        return None
    return layout


@functools.lru_cache(maxsize=16)
def _compressor(cname: str, clevel: int, shuffle: int, blocksize: int, typesize: int):
    from numcodecs import Blosc

    return Blosc.from_config({"cname": cname, "clevel": clevel, "shuffle": shuffle, "blocksize": blocksize,
                              "typesize": typesize})


def shard_origin(layout: ShardLayout, region: tuple[slice, ...]) -> tuple[int, ...] | None:
    """The coordinates of the shard that ``region`` covers exactly (clipped at the array's edge), or None.

    ``region`` is a tuple of slices as in ``array[region]``; missing trailing axes are whole.
    """
    if len(region) > len(layout.shape):
        return None
    region = (*region, *(slice(None),) * (len(layout.shape) - len(region)))
    origin = []
    for part, size, shard in zip(region, layout.shape, layout.shard_shape, strict=True):
        start, stop, step = part.indices(size)
        if step != 1 or start % shard or stop != min(start + shard, size):
            return None
        origin.append(start // shard)
    return tuple(origin)


def write_whole_shard(layout: ShardLayout, coords: tuple[int, ...], values: np.ndarray) -> None:
    """Encode ``values`` as the shard at ``coords`` and write it (atomically) to the array's store.

    Parameters
    ----------
    layout
        The array (see :func:`shard_layout`).
    coords
        The shard's coordinates in the shard grid.
    values
        The shard's values, clipped at the array's edge like the region they fill.
    """
    import google_crc32c

    dtype = layout.dtype.newbyteorder("<")
    if values.shape == layout.shard_shape and values.dtype == dtype:
        full = values
    else:  # an edge shard is stored whole, the part outside the array at the fill value
        full = np.full(layout.shard_shape, layout.fill_value, dtype=dtype)
        full[tuple(slice(0, n) for n in values.shape)] = values
    compressor = _compressor(**layout.blosc)
    counts = layout.chunks_per_shard
    index = np.full((*counts, 2), _EMPTY, dtype="<u8")
    pieces: list[bytes] = []
    offset = 0
    for flat in range(int(np.prod(counts))):  # one axis at most has several chunks: Morton order = C order
        where = np.unravel_index(flat, counts)
        chunk = full[tuple(slice(i * c, (i + 1) * c) for i, c in zip(where, layout.chunk_shape, strict=True))]
        encoded = bytes(compressor.encode(np.ascontiguousarray(chunk)))
        if (len(encoded) * _EMPTY_RATIO <= chunk.nbytes or chunk.nbytes < _ALWAYS_SCANNED
                or layout.blosc["clevel"] == 0) and (
                not chunk.any() if layout.fill_value == 0 else np.all(chunk == layout.fill_value)):
            continue  # only a chunk that compressed well can be all fill value: the others are not scanned
        index[where] = (offset, len(encoded))
        pieces.append(encoded)
        offset += len(encoded)
    folder = os.path.join(layout.path, "c", *map(str, coords[:-1]))
    target = os.path.join(folder, str(coords[-1]))
    if not pieces:  # an empty shard is not stored (as zarr does); an older one is removed
        if os.path.exists(target):
            os.remove(target)
        return
    index_bytes = index.tobytes()
    pieces.append(index_bytes)
    pieces.append(np.uint32(google_crc32c.value(index_bytes)).tobytes())
    os.makedirs(folder, exist_ok=True)
    temporary = f"{target}.{uuid.uuid4().hex}.partial"  # named as zarr's LocalStore names its own
    try:
        with open(temporary, "xb") as fp:
            fp.writelines(pieces)
        os.replace(temporary, target)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
