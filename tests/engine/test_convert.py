"""The convert pipeline on the whole corpus (all sources at once, broken files included): every stack equals
the serial image(), the failures are exactly the broken files, no good file is lost, the output is the same
under every scheduler, the stored affine maps onto the dcm2niix references, and ome-zarr-py reads it."""

from __future__ import annotations

import importlib.util
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import zarr

from medipy.base import Image
from medipy.engine import ClusterOptions
from medipy.errors import BrokenDicomError, NotDicomError, PixelDecodeError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

# Broken DICOM files of the corpus: they start as DICOM and cannot be parsed (see tests/io/dicom/test_reading.py)
BROKEN = {
    "derived_broken/truncated_in_header.dcm",
    "derived_broken/truncated_in_pixeldata.dcm",
    "derived_broken/series_with_truncated_slice/IMG0003.dcm",
    "pydicom/test_files/MR_truncated.dcm",
    "pydicom/test_files/rtplan_truncated.dcm",
    "pydicom_data/emri_small_jpeg_2k_lossless_too_short.dcm",
}


def _images(store: Path) -> list[tuple[str, np.ndarray, dict]]:
    root = zarr.open_group(store=str(store), mode="r")
    return [(s["path"], root[s["path"]]["0"][...], dict(root[s["path"]].attrs)) for s in
            root.attrs["medipy"]["stacks"]]


def _root(store: Path) -> dict:
    return dict(zarr.open_group(store=str(store), mode="r").attrs["medipy"])


@pytest.fixture(scope="module")
def corpus_processes(testdata, tmp_path_factory, convert_corpus):
    out = tmp_path_factory.mktemp("processes") / "corpus.zarr"
    return convert_corpus(testdata, out, ClusterOptions("processes", workers=2)), out


@pytest.fixture(scope="module")
def corpus_distributed(testdata, tmp_path_factory, dask_cluster, convert_corpus):
    out = tmp_path_factory.mktemp("distributed") / "corpus.zarr"
    return convert_corpus(testdata, out, ClusterOptions.from_cli(dask_cluster)), out


def test_failures_are_exactly_the_broken_and_non_dicom_files(corpus_sync, serial_datasets) -> None:
    report, store = corpus_sync
    failures = _root(store)["failures"]
    assert {f["path"] for f in failures if f["kind"] == "broken"} == BROKEN
    not_dicom = {p for p, ds in serial_datasets.items() if isinstance(ds, NotDicomError)}
    assert {f["path"] for f in failures if f["kind"] == "not-dicom"} == not_dicom
    assert {p for p, ds in serial_datasets.items() if isinstance(ds, BrokenDicomError)} == BROKEN
    assert {f.path for f in report.failures} == {f["path"] for f in failures}


def test_no_good_file_is_lost(corpus_sync, serial_datasets) -> None:
    _, store = corpus_sync
    root = _root(store)
    used = set()
    for _path, _data, attrs in _images(store):
        files = attrs["medipy"]["files"]
        used.update(f for volume in (files if isinstance(files[0], list) else [files]) for f in volume)
    accounted = used | {f["path"] for f in root["failures"]} | {f["path"] for f in root["skipped"]}
    assert accounted == set(serial_datasets)
    kept_uids = {u for _, _, a in _images(store) for u in np.ravel(a["medipy"]["sop_instance_uids"])}
    failed = {f["path"] for f in root["failures"]}
    for duplicate in (s for s in root["skipped"] if s["kind"] == "duplicate"):
        kept = duplicate["reason"].split(" as ")[1].split(",")[0]
        assert kept in failed or serial_datasets[duplicate["path"]].SOPInstanceUID in kept_uids
    kinds = {s["path"]: s["kind"] for s in root["skipped"]}
    assert kinds["pydicom/test_files/dicomdirtests/DICOMDIR"] == "dicomdir"
    assert kinds["pydicom/test_files/rtplan.dcm"] == "non-image"


def _serial_stack(paths: list[str], keys: list[tuple[str, int | None]], serial_datasets):
    from medipy.io.dicom.grouping import stacks

    datasets = [serial_datasets[p] for p in dict.fromkeys(paths)]
    for stack in stacks(datasets):
        if [(str(s.get("SOPInstanceUID", "")).strip(), s.frame or 0) for s in stack] == [(u, f or 0) for u, f in keys]:
            return stack
    found = [[(str(s.get("SOPInstanceUID", "")).strip(), s.frame) for s in st] for st in stacks(datasets)]
    raise AssertionError(f"no serial stack of {paths[:2]} has the slices {keys[:3]}: {found[:3]}")


def test_every_stack_equals_serial_image(corpus_sync, serial_datasets) -> None:
    from medipy.io.dicom.assembly import image

    _, store = corpus_sync
    compared = 0
    images = _images(store)
    series_files: dict[str, list[str]] = {}  # the serial stacks are made from the files of the whole series
    for path, _, attrs in images:
        files = attrs["medipy"]["files"]
        series_files.setdefault(path.split("/")[0], []).extend(np.ravel(files).tolist())
    for path, data, attrs in images:
        meta = attrs["medipy"]
        uids, frames = meta["sop_instance_uids"], meta["frames"]
        files = series_files[path.split("/")[0]]
        if not meta["complete"]:  # undecodable pixels: listed, and the serial image() fails as well
            assert meta["failed_slices"], path
            assert data.ndim == 3, path
            # TypeError: badVR.dcm (Rows "1A") trips pixels._check_native_length (reported upstream)
            with pytest.raises((PixelDecodeError, TypeError)):
                image(_serial_stack(files, list(zip(uids, frames, strict=True)), serial_datasets))
            continue
        four_d = meta["volume_axis"] is not None
        if not four_d:
            uids, frames, volumes = [uids], [frames], [data]
        else:
            volumes = list(data)
        for u, fr, volume in zip(uids, frames, volumes, strict=True):
            stack = _serial_stack(files, list(zip(u, fr, strict=True)), serial_datasets)
            expected = image(stack)
            values = np.moveaxis(volume, 0, -1) if expected.data.ndim == 4 else volume  # colour: (c,z,y,x)
            assert values.shape == expected.data.shape, path
            np.testing.assert_array_equal(values, expected.data.astype(values.dtype), err_msg=path)
            if data.ndim == 3:
                assert values.dtype == expected.data.dtype, path
                np.testing.assert_allclose(meta["affine"], expected.lps_affine, atol=1e-9)
            compared += 1
    assert compared >= 100


def test_stack_listing_and_completion(corpus_sync) -> None:
    _, store = corpus_sync
    root = _root(store)
    assert len(root["stacks"]) >= 90
    for entry in root["stacks"]:
        assert entry["path"].startswith("series-")
        assert "/stack-" in entry["path"]
        assert set(entry) >= {"patient_id", "study_instance_uid", "series_instance_uid", "series_number",
                              "series_description", "modality", "shape", "complete"}
    fmri = [s for s in root["stacks"] if s["shape"] == [10, 15, 64, 64]]
    assert len(fmri) == 2  # the two GE fMRI runs of dcm_qa_nih: 10 volumes of 15 slices


def _assert_same_store(a: Path, b: Path) -> None:
    assert _root(a) == _root(b)
    for (path_a, data_a, attrs_a), (path_b, data_b, attrs_b) in zip(_images(a), _images(b), strict=True):
        assert path_a == path_b
        assert attrs_a == attrs_b, path_a
        np.testing.assert_array_equal(data_a, data_b, err_msg=path_a)
        assert data_a.dtype == data_b.dtype


def test_processes_equal_synchronous(corpus_sync, corpus_processes) -> None:
    _assert_same_store(corpus_sync[1], corpus_processes[1])


def test_distributed_equals_synchronous(corpus_sync, corpus_distributed) -> None:
    _assert_same_store(corpus_sync[1], corpus_distributed[1])


def _load(name: str, path: Path):
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _harness(repo: Path):
    """The conformance reference table and comparison (tests/conformance), shared rather than copied."""
    return (_load("medipy_conformance_references", repo / "tests/conformance/references.py"),
            _load("medipy_conformance_harness", repo / "tests/conformance/harness.py"))


def _image_from_affine(data: np.ndarray, affine: list[list[float]]) -> Image:
    """An Image whose geometry comes only from the stored LPS affine (index k, j, i -> x, y, z)."""
    matrix = np.asarray(affine)
    columns = matrix[:3, :3][::-1, :]  # world rows (x, y, z) -> (z, y, x)
    spacing = np.linalg.norm(columns, axis=0)
    return Image(data, origin=matrix[:3, 3][::-1], spacing=spacing, direction=columns / spacing)


def test_stored_affine_maps_onto_dcm2niix_references(corpus_sync, serial_datasets, testdata) -> None:
    references, harness = _harness(Path(__file__).resolve().parents[2])
    images = _images(corpus_sync[1])
    checked = 0
    for case in references.CASES:
        if case.converter != "dcm2niix" or case.resample:
            continue
        uids = {getattr(ds, "SOPInstanceUID", None) for p, ds in serial_datasets.items()
                if p == case.input or p.startswith(case.input + "/")}
        candidates = []  # the input's part of each engine image: whole 3D images, or some 4D volumes
        for _, data, attrs in images:
            meta = attrs["medipy"]
            if meta["volume_axis"] is None:
                if set(meta["sop_instance_uids"]) <= uids:
                    candidates.append(_image_from_affine(data, meta["affine"]))
                continue
            chosen = [t for t, volume in enumerate(meta["sop_instance_uids"]) if set(volume) <= uids]
            if chosen:
                part = data[chosen] if len(chosen) > 1 else data[chosen[0]]
                candidates.append(_image_from_affine(part, meta["affine"]))
        assert candidates, case.input
        for reference in case.references:
            if (case.id, Path(reference).name) in references.EXPECTED:
                continue
            verdicts = [harness.compare(image, testdata / reference)[0] for image in candidates]
            assert "agree" in verdicts, (case.input, reference, verdicts)
            checked += 1
    assert checked >= 30


def test_ome_zarr_reader_reports_axes_and_scale(corpus_sync) -> None:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Multiscales, Reader

    _, store = corpus_sync
    for path, data, attrs in _images(store)[:40]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nodes = list(Reader(parse_url(os.path.join(store, path)))())
        node = nodes[0]
        assert any(isinstance(spec, Multiscales) for spec in node.specs)
        names = [a["name"] for a in node.metadata["axes"]]
        assert names[-3:] == ["z", "y", "x"]
        assert all(a.get("unit") == "millimeter" for a in node.metadata["axes"][-3:])
        scale = node.metadata["coordinateTransformations"][0][0]["scale"]
        assert scale[-3:] == pytest.approx(attrs["medipy"]["spacing"])
        assert tuple(node.data[0].shape) == data.shape


def test_stacks_written_shard_by_shard_equal_stacks_written_whole(corpus_sync, testdata, tmp_path, convert_corpus,
                                                                  monkeypatch) -> None:
    """Small stacks are written whole by one worker task (group, shards, completion) and larger ones by shards
    (several small ones per task) with the client creating and completing them: both give the same store."""
    import medipy.engine.conversion as engine
    from medipy.engine import zarr_sink

    kinds: list[str] = []
    original = zarr_sink.write_item

    def counted(item):
        kinds.append(type(item).__name__ if isinstance(item, zarr_sink.StackBatch) else f"{len(item)} shards")
        return original(item)

    monkeypatch.setattr(engine, "write_item", counted)
    convert_corpus(testdata, tmp_path / "batched.zarr", ClusterOptions("synchronous"))
    batched = kinds.count("StackBatch")
    assert 1 < batched < len(_root(corpus_sync[1])["stacks"])  # the corpus' stacks are small: batches of them
    kinds.clear()
    monkeypatch.setattr(engine, "BATCH_BYTES", 0)  # no stack is small: every one through the shard path
    out = tmp_path / "corpus.zarr"
    convert_corpus(testdata, out, ClusterOptions("synchronous"))
    assert "StackBatch" not in kinds
    assert len(kinds) >= len(_root(out)["stacks"])
    assert "10 shards" in kinds  # a GE fMRI run: its 10 small volumes (one shard each) in one task
    _assert_same_store(corpus_sync[1], out)
    _assert_same_store(corpus_sync[1], tmp_path / "batched.zarr")
