"""Whole-shard writer (medipy.engine.shards): the bytes zarr-python writes, read back by zarr, atomic."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import zarr
from zarr.codecs import BloscCodec

from medipy.engine.shards import shard_layout, shard_origin, write_whole_shard


def _create(path: Path, shape, dtype, chunks, shards, **kwargs) -> zarr.Array:
    return zarr.create_array(store=str(path), shape=shape, dtype=dtype, chunks=chunks, shards=shards,
                             compressors=[BloscCodec(cname="zstd", clevel=1, shuffle="bitshuffle")], fill_value=0,
                             **kwargs)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
            and p.name != "zarr.json"}


CASES = [
    # shape, dtype, inner chunks, shards: a partial edge shard, an all-zero inner chunk, 4D, colour first
    ((10, 7, 5), "int16", (2, 7, 5), (4, 7, 5)),
    ((9, 16, 16), "uint16", (1, 16, 16), (9, 16, 16)),
    ((3, 5, 6, 4), "float32", (1, 2, 6, 4), (1, 4, 6, 4)),
    ((3, 4, 8, 8), "uint8", (3, 1, 8, 8), (3, 3, 8, 8)),
]


@pytest.mark.parametrize(("shape", "dtype", "chunks", "shards"), CASES)
def test_shards_are_the_bytes_zarr_writes(tmp_path: Path, shape, dtype, chunks, shards) -> None:
    rng = np.random.default_rng(7)
    values = (rng.normal(100, 30, shape)).astype(dtype)
    values[(slice(None),) * (len(shape) - 3) + (slice(0, 1),)] = 0  # a chunk of fill values: not stored
    by_zarr = _create(tmp_path / "zarr", shape, dtype, chunks, shards)
    _create(tmp_path / "medipy", shape, dtype, chunks, shards)
    by_zarr[...] = values
    layout = shard_layout(str(tmp_path / "medipy"))
    assert layout is not None
    assert layout.shard_shape == shards
    assert layout.chunk_shape == chunks
    grid = [range(0, n, s) for n, s in zip(shape, shards, strict=True)]
    for origin in np.ndindex(*(len(g) for g in grid)):
        region = tuple(slice(o * s, min((o + 1) * s, n)) for o, s, n in zip(origin, shards, shape, strict=True))
        assert shard_origin(layout, region) == origin
        write_whole_shard(layout, origin, values[region])
    ours = _files(tmp_path / "medipy")
    assert ours == _files(tmp_path / "zarr")
    assert ours
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "medipy"), mode="r")[...], values)
    assert not [p for p in (tmp_path / "medipy").rglob("*.partial")]


def test_large_chunks_are_looked_at_for_emptiness_only_when_they_compress_well(tmp_path: Path) -> None:
    # 128 KiB chunks: an empty one, one that is all zero but one voxel (stored), noisy ones (not scanned)
    shape, chunks, shards = (6, 256, 256), (1, 256, 256), (3, 256, 256)
    values = np.random.default_rng(3).integers(0, 4096, shape, dtype="uint16")
    values[1] = 0
    values[4] = 0
    values[4, 100, 7] = 1
    by_zarr = _create(tmp_path / "zarr", shape, "uint16", chunks, shards)
    _create(tmp_path / "medipy", shape, "uint16", chunks, shards)
    by_zarr[...] = values
    layout = shard_layout(str(tmp_path / "medipy"))
    assert layout is not None
    for origin in range(2):
        write_whole_shard(layout, (origin, 0, 0), values[origin * 3:(origin + 1) * 3])
    assert _files(tmp_path / "medipy") == _files(tmp_path / "zarr")
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "medipy"), mode="r")[...], values)


def test_region_that_is_not_one_whole_shard_is_refused(tmp_path: Path) -> None:
    _create(tmp_path / "a", (10, 4, 4), "int16", (2, 4, 4), (4, 4, 4))
    layout = shard_layout(str(tmp_path / "a"))
    assert layout is not None
    assert shard_origin(layout, (slice(4, 8),)) == (1, 0, 0)  # trailing axes whole
    assert shard_origin(layout, (slice(8, 10),)) == (2, 0, 0)  # the edge shard, clipped
    assert shard_origin(layout, (slice(2, 6),)) is None  # straddles two shards
    assert shard_origin(layout, (slice(0, 2),)) is None  # part of a shard
    assert shard_origin(layout, (slice(0, 4), slice(0, 2))) is None


def test_layouts_it_does_not_write_are_left_to_zarr(tmp_path: Path) -> None:
    zarr.create_array(store=str(tmp_path / "plain"), shape=(4, 4), dtype="int16", chunks=(2, 2))  # no shards
    assert shard_layout(str(tmp_path / "plain")) is None
    zarr.create_array(store=str(tmp_path / "two"), shape=(4, 4, 4), dtype="int16", chunks=(2, 2, 4),
                      shards=(4, 4, 4))  # several inner chunks along two axes: Morton order matters
    assert shard_layout(str(tmp_path / "two")) is None
    assert shard_layout(str(tmp_path / "missing")) is None
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "zarr.json").write_text("{not json")
    assert shard_layout(str(tmp_path / "broken")) is None


def test_an_interrupted_write_leaves_no_shard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _create(tmp_path / "a", (4, 4, 4), "int16", (2, 4, 4), (4, 4, 4))
    layout = shard_layout(str(tmp_path / "a"))
    assert layout is not None

    def fail(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="No space"):
        write_whole_shard(layout, (0, 0, 0), np.ones((4, 4, 4), "int16"))
    assert not [p for p in (tmp_path / "a").rglob("*") if p.is_file() and p.name != "zarr.json"]


def test_a_recreated_array_is_written_with_its_new_codecs(tmp_path: Path) -> None:
    values = np.arange(64, dtype="int16").reshape(4, 4, 4)
    _create(tmp_path / "a", (4, 4, 4), "int16", (2, 4, 4), (4, 4, 4))
    write_whole_shard(shard_layout(str(tmp_path / "a")), (0, 0, 0), values)
    zarr.create_array(store=str(tmp_path / "a"), shape=(4, 4, 4), dtype="int16", chunks=(1, 4, 4), shards=(4, 4, 4),
                      compressors=[BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")], fill_value=0, overwrite=True)
    write_whole_shard(shard_layout(str(tmp_path / "a")), (0, 0, 0), values)
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "a"), mode="r")[...], values)
