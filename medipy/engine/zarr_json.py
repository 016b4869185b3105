"""The ``zarr.json`` documents of the engine's groups and arrays, written directly (zarr v3 core specification).

zarr-python creates a node through its async store, one event-loop hop per key, and re-reads the parents
on every open: ~25 ms of the client's time to create a stack's group and array and ~20 ms to mark it
complete, which at thousands of stacks made the client, not the workers, the bottleneck of a conversion.
The documents are small and fully specified (https://zarr-specs.readthedocs.io, "Zarr core specification
version 3.0": group and array metadata): this module writes the ones the engine makes as zarr-python
writes them (same keys in the same order, tested against zarr-python; indented as zarr-python does, except
the attributes of image groups), each file whole or not at all. Anything it does not know how to write (a
store that is not a local folder, a dtype without a zarr v3 name) is left to zarr-python by its callers.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from medipy.engine.checkpoint import write_text_atomic

__all__ = ["array_document", "group_document", "is_local_store", "require_groups", "write_array", "write_group"]

ZARR_JSON = "zarr.json"
_INDENT = 2  # zarr-python's default ``json_indent``
_NAMES = {np.dtype(t): np.dtype(t).name for t in (
    "uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64", "float32", "float64")}


def is_local_store(root: str) -> bool:
    """True when ``root`` is a local folder holding a zarr node document (a store this module writes into)."""
    return os.path.isfile(os.path.join(root, ZARR_JSON))


def _dump(document: dict[str, Any], indent: int | None = _INDENT) -> str:
    return json.dumps(document, indent=indent, allow_nan=True)


def group_document(attributes: dict[str, Any] | None = None) -> dict[str, Any]:
    """The metadata of a group (keys in zarr-python's order)."""
    return {"attributes": attributes or {}, "zarr_format": 3, "node_type": "group"}


def array_document(shape: Sequence[int], dtype: np.dtype, chunks: Sequence[int], shards: Sequence[int],
                   blosc: dict[str, Any], dimension_names: Sequence[str]) -> dict[str, Any] | None:
    """The metadata of a sharded array of little-endian numbers compressed by Blosc, filled with 0.

    Parameters
    ----------
    shape, chunks, shards
        The array's shape, its inner chunks and its shards (the chunk grid).
    dtype
        Its data type: one of the integer and float types of zarr v3's core data types (None is returned
        for any other, or a big-endian one).
    blosc
        ``cname``, ``clevel`` and ``shuffle`` (by name) of the inner chunks' Blosc codec.
    dimension_names
        One name per axis.

    Returns
    -------
    dict or None
        The document, keys in zarr-python's order; None when zarr-python must make it.
    """
    dtype = np.dtype(dtype)
    if dtype.byteorder == ">" or dtype.byteorder == "=" and sys.byteorder == "big":
        return None
    name = _NAMES.get(dtype.newbyteorder("="))
    if name is None:
        return None
    little = {"name": "bytes"} if dtype.itemsize == 1 else {"name": "bytes", "configuration": {"endian": "little"}}
    inner = [little, {"name": "blosc", "configuration": {
        "typesize": dtype.itemsize, "cname": blosc["cname"], "clevel": int(blosc["clevel"]),
        "shuffle": blosc["shuffle"], "blocksize": 0}}]
    index = [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}]
    return {
        "shape": list(shape),
        "data_type": name,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(shards)}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": 0.0 if dtype.kind == "f" else 0,
        "codecs": [{"name": "sharding_indexed", "configuration": {
            "chunk_shape": list(chunks), "codecs": inner, "index_codecs": index, "index_location": "end"}}],
        "attributes": {},
        "dimension_names": list(dimension_names),
        "zarr_format": 3,
        "node_type": "array",
        "storage_transformers": [],
    }


def _node_type(folder: str) -> str | None:
    try:
        with open(os.path.join(folder, ZARR_JSON), encoding="utf-8") as handle:
            document = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise FileExistsError(f"{folder} holds an unreadable {ZARR_JSON} ({exc}): not a zarr node") from exc
    return document.get("node_type") if isinstance(document, dict) else None


def require_groups(root: str, path: str, attributes: dict[str, Any] | None = None) -> str:
    """Make the groups of ``path`` (``/``-separated, relative to the group ``root``) that do not exist yet.

    Parameters
    ----------
    root
        The folder of a zarr group.
    path
        The groups below it.
    attributes
        When given, the last group's attributes (its document is written with them, new or not).

    Returns
    -------
    str
        The folder of the last group.

    Raises
    ------
    FileExistsError
        A node on the way is an array, or not a zarr node at all (as zarr-python's ``require_group``).
    """
    folder = root
    parts = path.split("/")
    for depth, part in enumerate(parts, start=1):
        folder = os.path.join(folder, part)
        kind = _node_type(folder)
        if kind is not None and kind != "group":
            raise FileExistsError(f"{folder} is a zarr {kind}, not a group")
        if kind is None:
            os.makedirs(folder, exist_ok=True)
        if depth == len(parts) and attributes is not None:
            write_group(folder, attributes)
        elif kind is None:
            write_text_atomic(os.path.join(folder, ZARR_JSON), _dump(group_document()))
    return folder


def write_group(folder: str, attributes: dict[str, Any]) -> None:
    """Write the metadata of the group at ``folder`` with these attributes (replacing the old ones).

    Written without indentation: an image's attributes hold per-slice lists (~70 kB for 300 slices, ~45% more
    indented) and Python's JSON encoder is ~4x slower with an indent.
    """
    write_text_atomic(os.path.join(folder, ZARR_JSON), _dump(group_document(attributes), indent=None))


def write_array(folder: str, document: dict[str, Any]) -> None:
    """Create the array at ``folder`` from its metadata (see :func:`array_document`); an array or group there
    before, and all its chunks, are removed first (as zarr-python's ``overwrite=True``)."""
    if os.path.isdir(folder) and not os.path.islink(folder):
        shutil.rmtree(folder)
    elif os.path.lexists(folder):
        os.remove(folder)
    os.makedirs(folder)
    write_text_atomic(os.path.join(folder, ZARR_JSON), _dump(document))
