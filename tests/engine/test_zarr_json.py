"""zarr.json documents written directly (medipy.engine.zarr_json): the documents zarr-python writes for the same
nodes, opened by zarr-python; the fast pickle form of the engine's records."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import cloudpickle
import numpy as np
import pytest
import zarr
from zarr.codecs import BloscCodec

from medipy.engine.scan import FileIssue, IssueKind, ScannedFile
from medipy.engine.zarr_json import array_document, is_local_store, require_groups, write_array, write_group
from medipy.engine.zarr_sink import WriteJob
from medipy.io.dicom.record import SliceRecord

CASES = [
    # shape, dtype, inner chunks, shards, dimension names, compression
    ((10, 7, 5), "int16", (2, 7, 5), (4, 7, 5), ["z", "y", "x"], ("lz4", 5, "bitshuffle")),
    ((9, 16, 16), "uint16", (1, 16, 16), (9, 16, 16), ["z", "y", "x"], ("zstd", 1, "shuffle")),
    ((3, 5, 6, 4), "float32", (1, 2, 6, 4), (1, 4, 6, 4), ["t", "z", "y", "x"], ("lz4", 5, "bitshuffle")),
    ((3, 4, 8, 8), "uint8", (3, 1, 8, 8), (3, 3, 8, 8), ["c", "z", "y", "x"], ("lz4", 5, "noshuffle")),
    ((2, 3, 3), "int32", (1, 3, 3), (2, 3, 3), ["z", "y", "x"], ("lz4", 5, "bitshuffle")),
    ((2, 3, 3), "<i8", (1, 3, 3), (2, 3, 3), ["z", "y", "x"], ("lz4", 5, "bitshuffle")),
]


@pytest.mark.parametrize(("shape", "dtype", "chunks", "shards", "names", "blosc"), CASES)
def test_array_documents_are_zarr_pythons(tmp_path: Path, shape, dtype, chunks, shards, names, blosc) -> None:
    cname, clevel, shuffle = blosc
    root = zarr.open_group(store=str(tmp_path / "zarr.zarr"), mode="w")
    root.require_group("a/b").create_array(
        "0", shape=shape, dtype=np.dtype(dtype), chunks=chunks, shards=shards, fill_value=0,
        compressors=[BloscCodec(cname=cname, clevel=clevel, shuffle=shuffle)], dimension_names=names)
    root.require_group("a/b").attrs.put({"medipy": {"complete": False, "value": [1.5, None, "x"]}})
    ours = tmp_path / "ours.zarr"
    zarr.open_group(store=str(ours), mode="w")
    assert is_local_store(str(ours))
    folder = require_groups(str(ours), "a/b", {"medipy": {"complete": True}})
    document = array_document(shape, np.dtype(dtype), chunks, shards,
                               {"cname": cname, "clevel": clevel, "shuffle": shuffle}, names)
    assert document is not None
    write_array(str(Path(folder) / "0"), document)
    assert zarr.open_group(str(ours / "a/b"), mode="r").attrs["medipy"] == {"complete": True}
    write_group(folder, {"medipy": {"complete": False, "value": [1.5, None, "x"]}})
    for node in ("a", "a/b", "a/b/0"):
        theirs = (tmp_path / "zarr.zarr" / node / "zarr.json").read_text()
        mine = (ours / node / "zarr.json").read_text()
        assert json.loads(mine) == json.loads(theirs), node
        assert list(json.loads(mine)) == list(json.loads(theirs))  # same keys, same order
    array = zarr.open_array(str(ours / "a/b/0"), mode="r+")  # zarr-python reads and writes it
    values = np.arange(np.prod(shape)).reshape(shape).astype(dtype)
    array[...] = values
    np.testing.assert_array_equal(zarr.open_array(str(ours / "a/b/0"), mode="r")[...], values)
    assert zarr.open_group(str(ours / "a/b"), mode="r").attrs["medipy"]["value"] == [1.5, None, "x"]


def test_what_zarr_python_must_write_is_left_to_it(tmp_path: Path) -> None:
    blosc = {"cname": "lz4", "clevel": 5, "shuffle": "bitshuffle"}
    assert array_document((2, 2, 2), np.dtype(">i2"), (1, 2, 2), (2, 2, 2), blosc, "zyx") is None
    assert array_document((2, 2, 2), np.dtype("complex64"), (1, 2, 2), (2, 2, 2), blosc, "zyx") is None
    assert array_document((2, 2, 2), np.dtype("bool"), (1, 2, 2), (2, 2, 2), blosc, "zyx") is None
    assert not is_local_store(str(tmp_path))  # a folder without a root group


def test_an_array_is_created_over_an_older_one_and_never_over_a_group_path_that_is_an_array(tmp_path: Path) -> None:
    root = tmp_path / "s.zarr"
    zarr.open_group(store=str(root), mode="w")
    folder = require_groups(str(root), "p/q")
    blosc = {"cname": "lz4", "clevel": 5, "shuffle": "bitshuffle"}
    old = array_document((8, 2, 2), np.dtype("int16"), (1, 2, 2), (2, 2, 2), blosc, "zyx")
    assert old is not None
    write_array(str(Path(folder) / "0"), old)
    zarr.open_array(str(Path(folder) / "0"), mode="r+")[...] = 7
    assert (Path(folder) / "0" / "c" / "3").exists()
    new = array_document((2, 2, 2), np.dtype("int16"), (1, 2, 2), (2, 2, 2), blosc, "zyx")
    assert new is not None
    write_array(str(Path(folder) / "0"), new)  # a redone stack: the old shards go with the old array
    assert not (Path(folder) / "0" / "c").exists()
    np.testing.assert_array_equal(zarr.open_array(str(Path(folder) / "0"), mode="r")[...], 0)
    with pytest.raises(FileExistsError, match="array, not a group"):
        require_groups(str(root), "p/q/0/r")
    (root / "p" / "junk").mkdir()
    (root / "p" / "junk" / "zarr.json").write_text("{not json")
    with pytest.raises(FileExistsError, match="unreadable"):
        require_groups(str(root), "p/junk")


@pytest.mark.parametrize("value", [
    SliceRecord(path="/a/1.dcm", frame=3, number_of_frames=9, sop_instance_uid="1.2.3", rows=4, columns=5,
                pixel_spacing=(0.5, 0.5), orientation=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0), position=(1.0, 2.0, -3.5),
                gradient=(0.0, 0.0, 1.0), b_value=1000.0, rescale_intercept=-1024.0, pixel_offset=1234),
    FileIssue("/a/b.txt", IssueKind.NOT_DICOM, "is not a DICOM file"),
    ScannedFile("/a/1.dcm", "key", (SliceRecord(path="/a/1.dcm"),), ((("00080060", '{"vr":"CS"}'),),)),
    WriteJob("/s/0", (slice(0, 2),), (SliceRecord(path="/a"),), "int16", False, False, "int16"),
])
def test_records_pickle_to_equal_values(value) -> None:
    for dumps in (pickle.dumps, cloudpickle.dumps):
        again = pickle.loads(dumps(value))
        assert again == value
        assert type(again) is type(value)
    assert b"sop_instance_uid" not in pickle.dumps(value)  # values only, no field names
