"""Engine pieces on small inputs: safe names, scan records, the threaded scheduler, lazy stack arrays, cluster
options and jobqueue scripts (the CLI is tested in tests/cli)."""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import zarr
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from medipy.engine import ClusterOptions, IssueKind, ScannedFile, convert, open_runner
from medipy.engine.cluster import jobqueue_cluster, load_cluster_options
from medipy.engine.plan import node_name
from medipy.engine.progress import map_unordered
from medipy.engine.scan import list_files, scan_file
from medipy.errors import ConfigError

CT = "dcmqi/ct-3slice"


@pytest.mark.parametrize("uid", ["../../etc/passwd", "/abs", "1.2/../3", "a" * 300, "1.2.3\x00", "..", ""])
def test_node_name_never_escapes(uid: str) -> None:
    name = node_name(uid)
    assert name.isalnum() or set(name) <= set("0123456789.")
    assert "/" not in name
    assert name not in (".", "..")


def test_node_name_keeps_valid_uids() -> None:
    assert node_name("1.2.840.10008.5.1") == "1.2.840.10008.5.1"


def _write_slice(path: Path, series_uid: str, z: float) -> None:
    from pydicom.dataset import FileDataset

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.SeriesInstanceUID, ds.StudyInstanceUID, ds.Modality = series_uid, "1.2.3", "CT"
    ds.Rows = ds.Columns = 4
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelSpacing, ds.ImageOrientationPatient = [0.5, 0.5], [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = [0, 0, z]
    ds.PixelData = (np.arange(16, dtype="<i2") + int(z)).tobytes()
    ds.save_as(path, enforce_file_format=True)


def test_hostile_series_uid_stays_inside_the_store(tmp_path: Path) -> None:
    export = tmp_path / "export"
    export.mkdir()
    for z in range(3):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _write_slice(export / f"{z}.dcm", "../../../escaped", float(z))
    out = tmp_path / "out" / "store.zarr"
    report = convert(export, out, cluster=ClusterOptions("synchronous"))
    assert len(report.stacks) == 1
    path = report.stacks[0]["path"]
    assert ".." not in path
    assert path.startswith("series-h")
    assert not (tmp_path / "escaped").exists()
    data = zarr.open_group(str(out), mode="r")[path]["0"][...]
    assert data.shape == (3, 4, 4)
    assert int(data[2, 0, 0]) == 2


def test_scan_records_are_small_plain_and_picklable(testdata: Path) -> None:
    item = scan_file(str(testdata / CT / "01.dcm"))
    assert isinstance(item, ScannedFile)
    record = item.records[0]
    assert record.pixel_offset is not None
    assert record.pixel_length == 512 * 512 * 2
    assert len(pickle.dumps(item)) < 20_000
    assert pickle.loads(pickle.dumps(item)) == item


@pytest.mark.parametrize(("name", "kind"), [
    ("derived_broken/truncated_in_header.dcm", IssueKind.BROKEN),
    ("derived_broken/text_named.dcm", IssueKind.NOT_DICOM),
    ("pydicom/test_files/dicomdirtests/DICOMDIR", IssueKind.DICOMDIR),
    ("pydicom/test_files/rtplan.dcm", IssueKind.NON_IMAGE),
])
def test_scan_turns_bad_files_into_issues(testdata: Path, name: str, kind: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        issue = scan_file(str(testdata / name))
    assert issue.kind == kind
    assert issue.reason


def test_list_files_reads_a_dicomdir(testdata: Path) -> None:
    files = list_files(str(testdata / "pydicom/test_files/dicomdirtests/DICOMDIR"))
    assert len(files) > 10
    assert all(Path(f).is_file() for f in files)


def test_threads_scheduler_and_lazy_arrays_equal_image(testdata: Path, tmp_path: Path) -> None:
    from medipy.engine import plan_export, stack_array
    from medipy.io.dicom.assembly import image
    from medipy.io.dicom.reading import read

    paths = list_files(testdata / CT)
    with open_runner(ClusterOptions("threads", workers=2)) as runner:
        plans, issues = plan_export(paths, runner)
        (stack,) = [s for p in plans for s in p.stacks]
        array = stack_array(stack)
        assert array.chunks[1:] == ((512,), (512,))
        (values,) = runner.compute(array)
        report = convert(paths, tmp_path / "t.zarr", runner=runner)
    expected = image([read(p) for p in paths if p.endswith(".dcm")])
    np.testing.assert_array_equal(values, expected.data)
    assert values.dtype == expected.data.dtype
    stored = zarr.open_group(str(tmp_path / "t.zarr"), mode="r")[report.stacks[0]["path"]]
    np.testing.assert_array_equal(stored["0"][...], expected.data)
    assert stored.attrs["medipy"]["complete"] is True
    np.testing.assert_allclose(stored.attrs["medipy"]["affine"], expected.lps_affine)


def test_cluster_options_from_cli() -> None:
    assert ClusterOptions.from_cli("threads", 3) == ClusterOptions("threads", workers=3)
    assert ClusterOptions.from_cli("tcp://127.0.0.1:8786").address == "tcp://127.0.0.1:8786"
    with pytest.raises(ConfigError, match="workers"):
        ClusterOptions("processes", workers=0)


def test_cluster_yaml_errors_name_the_key_and_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("cluster:\n  scheduler: slurm\n  jobqueue: {cores: 2, memroy: 4GB}\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*memroy"):
        load_cluster_options(bad)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("cluster:\n  workers: two\n")
    with pytest.raises(ConfigError, match=r"wrong\.yaml.*'cluster\.workers' must be an integer"):
        load_cluster_options(wrong)


@pytest.mark.parametrize(("kind", "directive"), [("slurm", "#SBATCH"), ("pbs", "#PBS")])
def test_jobqueue_job_script_from_yaml(tmp_path: Path, kind: str, directive: str) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(f"cluster:\n  scheduler: {kind}\n  jobqueue:\n    cores: 8\n    memory: 32GB\n"
                      "    queue: normal\n    walltime: '02:00:00'\n    jobs: 4\n"
                      "    job_extra_directives: ['--exclusive']\n")
    options = load_cluster_options(config)
    assert options.jobqueue.jobs == 4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = jobqueue_cluster(options)
        try:
            script = cluster.job_script()
        finally:
            cluster.close()
    assert directive in script
    assert "normal" in script
    assert "--exclusive" in script
    assert "--nthreads" in script or "--nworkers" in script


def test_start_methods_are_checked_and_auto_forks_where_it_is_safe() -> None:
    import sys

    from medipy.engine.cluster import start_method

    with pytest.raises(ConfigError, match="start_method"):
        ClusterOptions("processes", start_method="vfork")
    assert start_method("spawn") == "spawn"
    if sys.platform.startswith("linux") and sys.version_info < (3, 12):
        assert start_method("auto") == "fork"
    elif sys.platform == "darwin":
        assert start_method("auto") == "spawn"


@pytest.mark.parametrize("method", ["fork", "forkserver"])
def test_process_workers_of_every_start_method_scan_and_plan_alike(testdata: Path, method: str) -> None:
    import os

    from medipy.engine import plan_export
    from medipy.engine.cluster import _ready as worker_pid

    paths = list_files(testdata / CT)
    with open_runner(ClusterOptions("synchronous")) as runner:
        expected, expected_issues = plan_export(paths, runner)
    with open_runner(ClusterOptions("processes", workers=2, start_method=method)) as runner:
        assert runner.shuffle == "disk"
        # a library function: spawned/forkserver workers cannot import this test module to unpickle one of its own
        pids = {pid for _, pid in map_unordered(runner, worker_pid, list(range(8)), desc="pid", enabled=False)}
        plans, issues = plan_export(paths, runner)
    assert os.getpid() not in pids
    assert [s.records for p in plans for s in p.stacks] == [s.records for p in expected for s in p.stacks]
    assert [s.path for p in plans for s in p.stacks] == [s.path for p in expected for s in p.stacks]
    assert issues == expected_issues


def test_disk_shuffle_groups_series_split_across_scan_tasks(testdata: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    from medipy.engine.scan import ScanOptions, scan_bag
    from medipy.engine.shuffle import plan_bag, plan_files, split_planned

    paths = sorted(list_files(testdata / CT) + list_files(testdata / "pydicom/test_files/dicomdirtests"))
    options = ScanOptions(files_per_partition=2, partitions_per_worker=1)  # every series over several tasks
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with open_runner(ClusterOptions("synchronous")) as runner:
        assert runner.shuffle == "disk"
        plans, issues = plan_files(paths, runner, options=options)
        (items,) = runner.compute(plan_bag(scan_bag(paths, workers=1, options=options), shuffle="tasks"))
    expected_plans, expected_issues = split_planned(items)
    assert len(plans) > 3
    assert [p.key for p in plans] == [p.key for p in expected_plans]
    assert [[s.records for s in p.stacks] for p in plans] == [[s.records for s in p.stacks] for p in expected_plans]
    assert sorted(issues, key=str) == sorted(expected_issues, key=str)
    assert list(tmp_path.iterdir()) == []  # the shuffle's folder is removed


def test_shuffle_folders_of_killed_runs_on_this_machine_are_removed(testdata: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess
    import sys
    import tempfile

    from medipy.engine.shuffle import _shuffle_prefix, plan_files

    killed = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    killed.kill()
    killed.wait()  # a process id that no longer exists
    prefix = _shuffle_prefix()
    stale = tmp_path / f"{prefix}{killed.pid}-x1"
    live = tmp_path / f"{prefix}{os.getpid()}-x2"  # a run of this very process: in use
    elsewhere = tmp_path / f"medipy-shuffle-otherhost-{killed.pid}-x3"  # a shared $TMPDIR: not ours to judge
    for folder in (stale, live, elsewhere):
        folder.mkdir()
        (folder / "0-0.pickle").write_bytes(b"records")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with open_runner(ClusterOptions("synchronous")) as runner:
        plans, _ = plan_files(list_files(testdata / CT), runner)
    assert len(plans) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, elsewhere.name])


def test_a_shuffle_folder_written_into_while_removed_is_removed_again(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    """Ctrl-C: a worker finishing its bucket file while the client removes the folder (seen in the Ctrl-C
    test, ~1 run in 10: the folder was left behind)."""
    import shutil

    from medipy.engine.shuffle import remove_shuffle

    real = shutil.rmtree
    calls = []

    def late_bucket(path, ignore_errors=False):
        calls.append(path)
        real(path, ignore_errors=ignore_errors)
        if len(calls) == 1:  # the bucket of a task interrupted mid-write lands after the listing
            os.makedirs(path)
            (Path(path) / "3-1.pickle").write_bytes(b"records")

    folder = tmp_path / "medipy-shuffle-host-1-x"
    folder.mkdir()
    (folder / "0-0.pickle").write_bytes(b"records")
    monkeypatch.setattr(shutil, "rmtree", late_bucket)
    assert remove_shuffle(str(folder)) is True
    assert not folder.exists()
    assert len(calls) == 2

    stuck = tmp_path / "medipy-shuffle-host-2-x"
    stuck.mkdir()
    monkeypatch.setattr(shutil, "rmtree", lambda path, ignore_errors=False: None)  # never removable
    assert remove_shuffle(str(stuck), wait=0.05) is False
    assert f"could not remove {stuck}" in caplog.text


def test_issue_paths_relative_to_the_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from medipy.engine.scan import FileIssue

    monkeypatch.chdir(tmp_path)
    root = tmp_path / "export"
    absolute = FileIssue(str(root / "a" / "x.dcm"), "broken", f"{root}/a/x.dcm: truncated")
    assert absolute.relative_to(str(root)) == FileIssue("a/x.dcm", "broken", "a/x.dcm: truncated")
    relative = FileIssue("export/a/x.dcm", "broken", f"{root}/a/x.dcm and export/a/x.dcm: truncated")
    assert relative.relative_to("export") == FileIssue("a/x.dcm", "broken", "a/x.dcm and a/x.dcm: truncated")
    assert relative.relative_to(None) is relative
    assert FileIssue("", "broken", "no path").relative_to("export").path == ""


@pytest.mark.parametrize("count", [0, 1, 3, 10, 1937, 100_000])
@pytest.mark.parametrize("workers", [1, 2, 8])
def test_scan_batches_keep_every_file_in_order_and_end_with_smaller_ones(count: int, workers: int) -> None:
    from medipy.engine.scan import TAIL_SPLIT, ScanOptions, partition_count, scan_chunks

    paths = [f"f{i:06d}.dcm" for i in range(count)]
    chunks = scan_chunks(paths, workers)
    if not count:
        assert chunks == [[]]
        return
    assert [p for chunk in chunks for p in chunk] == paths
    assert all(chunks)
    assert max(len(c) for c in chunks) <= ScanOptions().files_per_partition
    equal = partition_count(count, workers)
    size = -(-count // equal)  # the files of each batch of an even split into ``equal``
    whole = -(-count // size)  # its batches (the last one may be shorter, or some missing)
    if workers == 1 or whole <= workers:  # one worker, or one round: that even split
        assert [len(c) for c in chunks] == [len(paths[i:i + size]) for i in range(0, count, size)]
    else:  # its last round, one batch per worker, cut into TAIL_SPLIT smaller ones (of one file at least)
        assert [len(c) for c in chunks[:whole - workers]] == [size] * (whole - workers)
        tail = chunks[whole - workers:]
        assert TAIL_SPLIT >= 2
        assert max(len(c) for c in tail) <= max(1, -(-size // TAIL_SPLIT))


def test_stack_plans_are_packed_and_shard_counts_match_the_jobs(testdata: Path, tmp_path: Path) -> None:
    import pickle

    from medipy.engine import plan_export
    from medipy.engine.zarr_sink import SinkOptions, shard_count, write_jobs

    paths = list_files(testdata / "pydicom/test_files/dicomdirtests") + list_files(testdata / CT)
    with open_runner(ClusterOptions("synchronous")) as runner:
        plans, _ = plan_export(paths, runner)
    sinks = [SinkOptions(), SinkOptions(shard_bytes=1, chunk_bytes=1)]  # whole stacks; one slice per shard
    for stack in (s for p in plans for s in p.stacks):
        volumes = stack.volumes
        assert stack.count == len(volumes)
        assert stack.depth == len(volumes[0])
        assert stack.first == volumes[0][0]
        assert stack.files == len({r.path for r in stack.records})
        assert len(stack.packed) < len(pickle.dumps(volumes))
        for sink in sinks:
            assert shard_count(stack, sink) == len(write_jobs(str(tmp_path), stack, sink))


def test_finishing_from_the_created_attributes_writes_what_making_them_again_writes(testdata: Path,
                                                                                    tmp_path: Path) -> None:
    from medipy.engine import FileIssue, plan_export
    from medipy.engine.zarr_sink import SinkOptions, create_image, finish_image

    paths = list_files(testdata / "pydicom/test_files/dicomdirtests") + list_files(testdata / CT)
    with open_runner(ClusterOptions("synchronous")) as runner:
        plans, _ = plan_export(paths, runner)
    stacks = [s for p in plans for s in p.stacks]
    assert len(stacks) > 3
    for number, stack in enumerate(stacks):
        issues = [FileIssue(f"slice-{number}.dcm", IssueKind.UNDECODABLE, "cut short")] if number % 2 else []
        documents = []
        for store, reuse in ((tmp_path / "made_again.zarr", False), (tmp_path / "completed.zarr", True)):
            zarr.open_group(store=str(store), mode="a")
            created = create_image(str(store), stack, SinkOptions(), source_root=str(testdata),
                                   slices=stack.unpack() if reuse else None)
            assert created is not None
            assert created["medipy"]["complete"] is False
            finish_image(str(store), stack, issues, source_root=str(testdata), created=created if reuse else None)
            documents.append(dict(zarr.open_group(store=str(store), mode="r")[stack.path].attrs))
        assert documents[0] == documents[1]
        assert documents[1]["medipy"]["complete"] == (not issues)
        assert documents[1]["medipy"]["failed_slices"] == [i.as_dict() for i in issues]
        uids = [[r.sop_instance_uid for r in volume] for volume in stack.volumes]
        assert documents[1]["medipy"]["sop_instance_uids"] == (uids if stack.is_4d else uids[0])


@pytest.mark.parametrize(("stored", "bits", "intercept", "slope", "output"), [
    ("<i2", 12, -1024, 1, "int16"),  # sign-extended from 12 bits, in place
    ("<i2", 16, -1024, 1, "int32"),  # widened and shifted in one pass
    ("<u2", 12, 0, 1, "uint16"),  # masked to 12 bits, in place
    ("<u2", 12, -1000, 1, "int16"),  # masked in a scratch array, then shifted into int16
    ("<u1", 8, 3, 1, "int16"),
    ("<u2", 16, 0.5, 2, "float32"),  # float output: the general path
])
def test_native_slices_read_in_one_pass_equal_image(tmp_path: Path, stored: str, bits: int, intercept: float,
                                                    slope: float, output: str) -> None:
    import medipy.io.dicom
    from medipy.engine.arrays import read_block
    from medipy.io.dicom.pixels import output_dtype, read_native_slice

    rng = np.random.default_rng(5)
    dtype = np.dtype(stored)
    raw = rng.integers(np.iinfo(dtype).min, np.iinfo(dtype).max, (3, 4, 4), dtype=dtype, endpoint=True)
    paths = []
    for z in range(3):
        path = tmp_path / f"{z}.dcm"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _write_slice(path, "1.2.3.4", float(z))
        from pydicom import dcmread

        ds = dcmread(path)
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = dtype.itemsize * 8, bits, bits - 1
        ds.PixelRepresentation = int(dtype.kind == "i")
        ds.RescaleIntercept, ds.RescaleSlope = intercept, slope
        ds.PixelData = raw[z].tobytes()  # high bits above Bits Stored hold garbage: must be ignored
        ds.save_as(path, enforce_file_format=True)
        paths.append(str(path))
    records = [scan_file(p).records[0] for p in paths]  # type: ignore[union-attr]
    assert output_dtype(records) == np.dtype(output)
    expected = medipy.io.dicom.image([medipy.io.dicom.read(p) for p in paths]).data
    block = read_block(records, output)
    assert block.dtype == np.dtype(output)
    np.testing.assert_array_equal(block, np.asarray(expected).reshape(block.shape))
    out = np.zeros((4, 4), output)
    assert read_native_slice(records[0], out) is (output != "float32")


@pytest.mark.parametrize(("keyword", "value", "tag"), [
    ("RescaleSlope", "NaN", "(0028,1053)"), ("RescaleSlope", "-inf", "(0028,1053)"),
    ("RescaleIntercept", "1e30", "(0028,1052)"),
])
def test_a_rescale_that_is_not_a_finite_number_is_refused_naming_the_file(
        tmp_path: Path, keyword: str, value: str, tag: str) -> None:
    import medipy.io.dicom
    from medipy.errors import BrokenDicomError

    good, bad = tmp_path / "good.dcm", tmp_path / "bad.dcm"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _write_slice(good, "1.2.3.5", 0.0)
        _write_slice(bad, "1.2.3.5", 1.0)
        ds = medipy.io.dicom.read(bad)
        ds.RescaleSlope, ds.RescaleIntercept = 1, 0
        setattr(ds, keyword, value)
        ds.save_as(bad)
    issue = scan_file(str(bad))
    assert not isinstance(issue, ScannedFile)
    assert issue.kind == IssueKind.BROKEN
    assert f"{keyword} {tag}" in issue.reason
    assert value in issue.reason
    assert isinstance(scan_file(str(good)), ScannedFile)  # the good slice of the series is kept
    with pytest.raises(BrokenDicomError, match=keyword) as raised:
        medipy.io.dicom.image([medipy.io.dicom.read(good), medipy.io.dicom.read(bad)])
    assert raised.value.path == str(bad)


def test_compressed_multiframe_decodes_only_the_frames_of_each_chunk(tmp_path: Path, monkeypatch) -> None:
    """A compressed multi-frame object spanning several chunks: each chunk decodes its own frames (not the
    whole object once per chunk); one chunk holding every frame decodes the object once. Both equal image()."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

    import medipy.engine.arrays as arrays
    from medipy.engine import plan_export, stack_array
    from medipy.io.dicom.assembly import image
    from medipy.io.dicom.reading import read

    frames = np.stack([(np.arange(32 * 32).reshape(32, 32) * (i + 1)) % 4096 for i in range(12)]).astype("<u2")
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7.3"  # multi-frame SC
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.PatientID, ds.Modality = generate_uid(), generate_uid(), "MF", "OT"
    ds.Rows = ds.Columns = 32
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.NumberOfFrames = 1, "MONOCHROME2", 12
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = frames.tobytes()
    ds.compress(RLELossless, frames)
    path = tmp_path / "cine.dcm"
    ds.save_as(path, enforce_file_format=True)

    calls: list[int | None] = []
    original = arrays.decode

    def counted(dataset, index=None, *, path=None):
        calls.append(index)
        return original(dataset, index, path=path)

    monkeypatch.setattr(arrays, "decode", counted)
    expected = image([read(path)])
    with open_runner(ClusterOptions("synchronous")) as runner:
        (plan,) = [s for p in plan_export([str(path)], runner)[0] for s in p.stacks]
        for shard_bytes, decodes in ((3 * 32 * 32 * 2, list(range(12))), (1 << 20, [None])):
            calls.clear()
            array = stack_array(plan, shard_bytes=shard_bytes, chunk_bytes=32 * 32 * 2)
            (values,) = runner.compute(array)
            np.testing.assert_array_equal(values, expected.data)
            assert sorted(calls, key=lambda i: -1 if i is None else i) == decodes
    np.testing.assert_array_equal(expected.data, frames)


def test_shared_and_per_slice_metadata() -> None:
    """An attribute is shared when every slice holds it with equal values (the same entry, an equal text, or
    an equal value written differently); else its values are listed per slice (per volume in 4D)."""
    from medipy.engine.plan import _metadata

    modality = ("00080060", '{"vr":"CS","Value":["MR"]}')

    def header(number: int, thickness: str, echo: str | None) -> tuple[tuple[str, str], ...]:
        entries = [modality, ("00180050", f'{{"vr":"DS","Value":[{thickness}]}}'),
                   ("00200013", f'{{"vr":"IS","Value":[{number}]}}'),
                   ("00200010", "".join(['{"vr":"SH","Value":', '["S1"]}']))]  # equal texts, not the same object
        if echo is not None:
            entries.append(("00180081", f'{{"vr":"DS","Value":[{echo}]}}'))
        return tuple(sorted(entries))

    shared, per_slice = _metadata([[header(1, "2.0", "30"), header(2, "2", "30"), header(3, "2.00", None)]])
    assert shared == {"00080060": {"vr": "CS", "Value": ["MR"]}, "00180050": {"vr": "DS", "Value": [2.0]},
                      "00200010": {"vr": "SH", "Value": ["S1"]}}
    assert per_slice == {"InstanceNumber": [1, 2, 3], "EchoTime": [30, 30, None]}

    shared, per_slice = _metadata([[header(1, "2", "30"), header(2, "2", "30")],
                                   [header(3, "2", "60"), header(4, "2", "60")]])  # 4D: per volume
    assert set(shared) == {"00080060", "00180050", "00200010"}
    assert per_slice == {"InstanceNumber": [[1, 2], [3, 4]], "EchoTime": [[30, 30], [60, 60]]}
