"""The engine against hostile exports and faults, through the real CLI pipeline and real processes.

- a hostile export tree (broken files, link loops, links out of the tree, dangling links, a FIFO, unreadable
  entries, UIDs and descriptions that would make unsafe names): exit code 1, each bad entry in ``report.json``
  with a reason, every good stack converted, nothing written outside the output;
- a worker process SIGKILLed in the middle of a conversion on a real distributed cluster (a scheduler and two
  nanny-supervised workers on 127.0.0.1): the run finishes with the same store as a clean run;
- ``medipy convert`` whose process group is SIGKILLed at seeded random points, then re-run: identical store, no
  stack marked complete that is not, no temporary file left;
- a read-only output and a full disk: exit code 3 with a clear message, nothing marked complete that is not.

Temporary files the engine makes in an output (and that must not outlive a run): ``.medipy.lock`` (the run's
lock), ``*.<pid>.<thread>.tmp`` (``report.json``, ``report.html``, ``.medipy-run.json`` and the zarr documents
medipy writes, atomically) and ``*.<uuid>.partial`` (shards, and files written by zarr's LocalStore).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from medipy.cli import EXIT_FAILURES, EXIT_OK, EXIT_RUN_ERROR, main

# The installed medipy (python -P: the checkout's medipy/ folder must not shadow it, see tests/cli/conftest.py).
MEDIPY = [sys.executable, "-P", "-c", "import sys; from medipy.cli import main; sys.exit(main())"]
ENV = dict(os.environ, PYTHONWARNINGS="ignore")
TEMPORARY = re.compile(r"(\.medipy\.lock|\.\d+\.tmp|\.[0-9a-f]{32}\.partial)$")
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


# ------------------------------------------------------------------------------------------------ helpers

def write_slice(path: Path, *, series: str, index: int, size: int = 32, patient: str = "P1",
                description: str = "synthetic", study: str = "1.2.826.0.1.3680043.9.7.1") -> None:
    """A small CT slice written by pydicom (any values allowed, even invalid ones)."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    key = zlib.crc32(series.encode("utf-8", "surrogateescape"))
    meta.MediaStorageSOPInstanceUID = f"1.2.826.0.1.3680043.9.7.2.{key}.{index}"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientID = patient
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.SeriesDescription = description
    ds.SeriesNumber = 1
    ds.InstanceNumber = index + 1
    ds.Modality = "CT"
    ds.ImagePositionPatient = [0.0, 0.0, float(index)]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing = [1.0, 1.0]
    ds.SliceThickness = 1.0
    ds.Rows = ds.Columns = size
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = ((np.arange(size * size, dtype=np.uint16) + index * 7) % 4096).astype("<u2").tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        old = pydicom.config.settings.writing_validation_mode
        pydicom.config.settings.writing_validation_mode = pydicom.config.IGNORE
        try:
            ds.save_as(path, enforce_file_format=True)
        finally:
            pydicom.config.settings.writing_validation_mode = old


def synthetic_export(root: Path, *, series: int, slices: int, size: int = 32) -> Path:
    """``series`` series of ``slices`` slices each (one folder per series)."""
    for s in range(series):
        uid = f"1.2.826.0.1.3680043.9.7.3.{s + 1}"
        for i in range(slices):
            write_slice(root / f"s{s:03d}" / f"{i:04d}.dcm", series=uid, index=i, size=size)
    return root


def snapshot(folder: Path, exclude: Path | None = None) -> dict[str, tuple]:
    """Every entry under ``folder`` (links not followed): kind, size, mtime, link target."""
    out: dict[str, tuple] = {}
    for current, dirs, files in os.walk(folder):
        if exclude is not None and Path(current) == exclude:
            dirs.clear()
            continue
        dirs[:] = [d for d in dirs if exclude is None or Path(current, d) != exclude]
        for name in dirs + files:
            path = os.path.join(current, name)
            info = os.lstat(path)
            target = os.readlink(path) if os.path.islink(path) else None
            out[os.path.relpath(path, folder)] = (info.st_mode, info.st_size, info.st_mtime_ns, target)
    return out


@pytest.fixture
def assert_same_store(assert_same_zarr):
    """``(store, reference)``: identical zarr content and the same report counts, stacks and failures."""
    def check(store: Path, reference: Path) -> None:
        assert_same_zarr(store, reference)
        report, expected = (json.loads((s / "report.json").read_text()) for s in (store, reference))
        for key in ("counts", "stacks", "failures", "skipped", "duplicates"):
            assert report[key] == expected[key], key

    return check


def complete_stacks(store: Path) -> dict[str, dict]:
    """The image groups marked complete: {group path: zarr.json}."""
    out = {}
    for path in store.glob("*/*/zarr.json"):
        with contextlib.suppress(OSError, ValueError, KeyError):
            metadata = json.loads(path.read_text())
            if metadata["attributes"]["medipy"]["complete"] is True:
                out[str(path.parent.relative_to(store))] = metadata
    return out


def assert_complete_stacks_are_whole(store: Path, reference: Path) -> int:
    """Every stack marked complete in ``store`` has the attributes and the array of the clean run."""
    import zarr

    complete = complete_stacks(store)
    for group, metadata in complete.items():
        expected = json.loads((reference / group / "zarr.json").read_text())
        assert metadata == expected, group
        values = zarr.open_array(store=str(store / group / "0"), mode="r")[...]
        np.testing.assert_array_equal(values, zarr.open_array(store=str(reference / group / "0"), mode="r")[...],
                                      err_msg=group)
    return len(complete)


def leftovers(store: Path) -> list[str]:
    return sorted(str(p.relative_to(store)) for p in store.rglob("*") if TEMPORARY.search(p.name))


def run_cli(argv: list[str]) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return main(argv)


# ------------------------------------------------------------------------------------------ hostile tree

def _hostile_tree(base: Path, testdata: Path) -> tuple[Path, dict[str, str], set[str]]:
    """An export with good stacks and hostile entries; returns (root, {bad entry: expected kind},
    {series UIDs that must be converted})."""
    export = base / "export"
    outside = base / "outside"
    # a valid DICOM file outside the export: a link to it must not be followed
    write_slice(outside / "secret.dcm", series="1.2.826.0.1.3680043.9.7.99", index=0)
    (outside / "folder").mkdir()
    write_slice(outside / "folder" / "x.dcm", series="1.2.826.0.1.3680043.9.7.98", index=0)
    good: set[str] = set()
    for name in ("01.dcm", "02.dcm", "03.dcm"):  # a corpus series
        target = export / "corpus" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((testdata / "dcmqi" / "ct-3slice" / name).read_bytes())
    import pydicom

    good.add(str(pydicom.dcmread(export / "corpus" / "01.dcm", stop_before_pixels=True).SeriesInstanceUID))
    synthetic_export(export / "plain", series=1, slices=4)
    good.add("1.2.826.0.1.3680043.9.7.3.1")
    hostile = {
        "dotdot": dict(series="../../x", patient="/etc/passwd", description="../../../etc"),
        "slash": dict(series="/abs/olute", patient="a/b\\c", description="x/../../y"),
        "nul": dict(series="1.2.3\x00.4", patient="nul\x00id", description="nul\x00desc"),
        "long": dict(series="9" * 300, patient="P" * 300, description="D" * 300),
    }
    for folder, values in hostile.items():
        for i in range(2):
            write_slice(export / "hostile" / folder / f"{i}.dcm", index=i, **values)
        good.add(values["series"])
    bad = export / "bad"
    bad.mkdir()
    expected: dict[str, str] = {}
    (bad / "empty.dcm").write_bytes(b"")
    expected["bad/empty.dcm"] = "not-dicom"
    (bad / "random.dcm").write_bytes(random.Random(5).randbytes(3000))
    expected["bad/random.dcm"] = "not-dicom"
    whole = (export / "plain" / "s000" / "0000.dcm").read_bytes()
    (bad / "truncated.dcm").write_bytes(whole[: len(whole) // 2])
    expected["bad/truncated.dcm"] = "broken"
    links = export / "links"
    links.mkdir()
    (links / "loop").symlink_to("..")  # a link to an enclosing folder
    expected["links/loop"] = "unreadable"
    (links / "ping").symlink_to("pong")  # ELOOP
    (links / "pong").symlink_to("ping")
    expected["links/ping"] = expected["links/pong"] = "unreadable"
    (links / "secret.dcm").symlink_to(outside / "secret.dcm")  # a file out of the tree
    expected["links/secret.dcm"] = "unreadable"
    (links / "escape").symlink_to(Path("..", "..", "outside", "folder"))  # a folder out of the tree
    expected["links/escape"] = "unreadable"
    (links / "dangling.dcm").symlink_to("no-such-file.dcm")
    expected["links/dangling.dcm"] = "unreadable"
    (links / "inside.dcm").symlink_to(Path("..", "corpus", "01.dcm"))  # inside: followed, listed once
    os.mkfifo(bad / "pipe.dcm")
    expected["bad/pipe.dcm"] = "not-dicom"
    if not IS_ROOT:  # as root, permission bits do not block reads: the FIFO and links cover the walk
        locked = bad / "locked.dcm"
        locked.write_bytes(whole)
        locked.chmod(0)
        expected["bad/locked.dcm"] = "unreadable"
        closed = export / "closed"
        write_slice(closed / "0.dcm", series="1.2.826.0.1.3680043.9.7.97", index=0)
        closed.chmod(0)
        expected["closed"] = "unreadable"
    return export, expected, good


def test_hostile_export_through_the_cli(testdata, tmp_path):
    export, expected, good = _hostile_tree(tmp_path, testdata)
    out = tmp_path / "out.zarr"
    before = snapshot(tmp_path)
    try:
        code = run_cli(["convert", str(export), str(out), "--scheduler", "synchronous", "-q"])
    finally:
        with contextlib.suppress(OSError):
            for name in ("closed", "bad/locked.dcm"):
                (export / name).chmod(0o755)
    assert code == EXIT_FAILURES
    after = snapshot(tmp_path, exclude=out)
    assert after == before, "something outside the output was written"
    report = json.loads((out / "report.json").read_text())
    failures = {f["path"]: f for f in report["failures"]}
    for path, kind in expected.items():
        assert path in failures, f"{path} missing from the failures: {sorted(failures)}"
        assert failures[path]["kind"] == kind, failures[path]
        assert failures[path]["reason"], path
    assert set(failures) == set(expected), "unexpected failures"
    assert str(tmp_path / "outside") not in json.dumps(report)  # link targets are not echoed
    converted = {s["series_instance_uid"]: s for s in report["stacks"]}
    assert set(converted) == good
    assert all(s["complete"] for s in report["stacks"])
    for stack in report["stacks"]:
        assert re.fullmatch(r"[A-Za-z0-9._-]+/[A-Za-z0-9._-]+", stack["path"]), stack["path"]
        assert ".." not in stack["path"].split("/")
        assert len(stack["path"]) < 200
        assert (out / stack["path"] / "0" / "zarr.json").is_file()
    # the file reached through a link inside the tree is listed once, under its first path in sorted order
    corpus_stack = next(s for s in report["stacks"] if s["series_instance_uid"] in good and s["files"] == 3)
    assert corpus_stack["shape"][0] == 3
    # nothing of the outside folder was read into the store
    assert "1.2.826.0.1.3680043.9.7.99" not in (out / "zarr.json").read_text()
    assert not leftovers(out)


def test_walk_follows_links_out_only_when_asked(tmp_path):
    from medipy.engine.walk import walk_folder

    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.dcm").write_bytes(b"x")
    (tmp_path / "in" / "link").symlink_to(tmp_path / "out")
    (tmp_path / "in" / "self").symlink_to(".")
    refused = walk_folder(tmp_path / "in")
    assert refused.paths == []
    assert [(Path(i.path).name, i.kind) for i in refused.issues] == [("link", "unreadable"), ("self", "unreadable")]
    followed = walk_folder(tmp_path / "in", follow_links=True)
    assert followed.paths == [str(tmp_path / "in" / "link" / "a.dcm")]
    assert [Path(i.path).name for i in followed.issues] == ["self"]  # loops are never followed


def test_files_left_by_a_killed_worker_are_removed_when_the_run_finishes(tmp_path, monkeypatch, assert_same_store):
    """A worker killed while writing leaves its temporary files (its task is run again elsewhere): the run
    deletes them before it says it is done."""
    import medipy.engine.conversion as engine

    export = synthetic_export(tmp_path / "export", series=6, slices=4, size=32)
    reference = tmp_path / "clean.zarr"
    assert run_cli(["convert", str(export), str(reference), "--scheduler", "synchronous", "-q"]) == EXIT_OK
    out = tmp_path / "out.zarr"
    original = engine.map_unordered
    strays: list[Path] = []

    def leave_strays(runner, func, items, **kwargs):
        for result in original(runner, func, items, **kwargs):
            if kwargs.get("desc") == "write" and not strays:  # as a worker killed mid-write leaves them
                array = next(out.glob("series-*/stack-*/0"))
                strays.extend([array / "zarr.json.4242.139872.tmp", array / "c" / f"0.{'ab' * 16}.partial"])
                for stray in strays:
                    stray.parent.mkdir(exist_ok=True)
                    stray.write_bytes(b"half")
            yield result

    monkeypatch.setattr(engine, "map_unordered", leave_strays)
    assert run_cli(["convert", str(export), str(out), "--scheduler", "synchronous", "-q"]) == EXIT_OK
    assert len(strays) == 2
    assert not leftovers(out)
    assert json.loads((out / ".medipy-run.json").read_text())["state"] == "done"
    assert_same_store(out, reference)


# -------------------------------------------------------------------------------- distributed worker kill

@pytest.fixture(scope="module")
def nanny_cluster(tmp_path_factory, start_dask_cluster) -> Iterator[str]:
    """A cluster of this module's own (its workers get killed): scheduler + two nanny-supervised workers."""
    with start_dask_cluster(tmp_path_factory.mktemp("dask")) as address:
        yield address


def test_worker_killed_mid_conversion(nanny_cluster, tmp_path, monkeypatch, assert_same_store):
    from distributed import Client

    import medipy.engine.conversion as engine  # where write_stacks gets the results of its write tasks

    export = synthetic_export(tmp_path / "export", series=24, slices=12, size=64)
    reference = tmp_path / "clean.zarr"
    assert run_cli(["convert", str(export), str(reference), "--scheduler", "synchronous", "-q"]) == EXIT_OK

    with Client(nanny_cluster, set_as_default=False) as client:
        pids = client.run(os.getpid)
        victim_address, victim = sorted(pids.items())[0]
        killed: list[int] = []
        original = engine.map_unordered

        def kill_after_first_write(runner, func, items, **kwargs):
            for result in original(runner, func, items, **kwargs):
                if kwargs.get("desc") == "write" and not killed:  # the other write tasks are queued or running
                    assert len(items) > 4
                    os.kill(victim, signal.SIGKILL)
                    killed.append(victim)
                yield result

        monkeypatch.setattr(engine, "map_unordered", kill_after_first_write)
        out = tmp_path / "killed.zarr"
        code = run_cli(["convert", str(export), str(out), "--scheduler", nanny_cluster, "-q"])
        assert killed == [victim]
        assert code == EXIT_OK
        assert_same_store(out, reference)
        assert not leftovers(out)
        client.wait_for_workers(2, timeout=60)  # the nanny restarted the killed worker
        assert victim not in client.run(os.getpid).values()


# --------------------------------------------------------------------------- process group killed, resumed

def test_process_group_killed_at_random_points(tmp_path, assert_same_store):
    """Kill points are seeded: after k stacks are complete (k random in the first half, 0 = as soon as the store
    exists), plus a random delay of up to 50 ms; each killed output is checked, then resumed to the end.

    Stacks complete in bursts (small stacks are written several per task) and the kill lands some milliseconds
    after the count is seen: a point in the last half often came after the last stack (seen on a faster machine)."""
    export = synthetic_export(tmp_path / "export", series=16, slices=15, size=128)
    reference = tmp_path / "clean.zarr"
    assert run_cli(["convert", str(export), str(reference), "--scheduler", "synchronous", "-q",
                    "--no-thumbnails"]) == EXIT_OK
    total = len(json.loads((reference / "report.json").read_text())["stacks"])
    argv = [*MEDIPY, "convert", str(export)]
    options = ["--scheduler", "processes", "--workers", "2", "-q", "--no-thumbnails"]
    rng = random.Random(20240605)
    points = [(k, rng.uniform(0.0, 0.05)) for k in sorted(rng.sample(range(total // 2), 3))]
    outcomes = []
    for n, (threshold, delay) in enumerate(points):
        out = tmp_path / f"killed-{n}.zarr"
        process = subprocess.Popen([*argv, str(out), *options], env=ENV, start_new_session=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            while process.poll() is None and time.monotonic() < deadline and not (
                    (out / "zarr.json").exists() and len(complete_stacks(out)) >= threshold):
                time.sleep(0.005)
            time.sleep(delay)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        finally:
            process.wait(timeout=60)
        complete = assert_complete_stacks_are_whole(out, reference)
        outcomes.append((threshold, round(delay, 3), process.returncode, complete))
        # resumed in-process with threads: the store does not depend on the scheduler (see the worker test)
        assert run_cli(["convert", str(export), str(out), "--scheduler", "threads", "--workers", "2", "-q",
                        "--no-thumbnails"]) == EXIT_OK
        assert json.loads((out / ".medipy-run.json").read_text())["state"] == "done"
        assert_same_store(out, reference)
        assert not leftovers(out), leftovers(out)
    killed = [o for o in outcomes if o[2] == -signal.SIGKILL and o[3] < total]
    print("kill points (stacks complete, delay s, return code, stacks complete when killed):", outcomes)
    assert len(killed) >= 2, f"the runs ended before they could be killed midway: {outcomes}"


def test_leftovers_of_a_killed_run_are_removed_on_resume(tmp_path):
    out = tmp_path / "out.zarr"
    assert run_cli(["convert", "--example", str(out), "--scheduler", "synchronous", "-q", "--no-thumbnails"]) \
        == EXIT_OK
    state = json.loads((out / ".medipy-run.json").read_text())
    state["state"] = "running"  # as a killed run leaves it
    (out / ".medipy-run.json").write_text(json.dumps(state))
    stray = [out / ".medipy-run.json.99999.tmp", out / "report.json.99999.tmp",
             out / f"zarr.json.{'a' * 32}.partial", next(out.glob("*/*")) / f"zarr.json.{'b' * 32}.partial"]
    for path in stray:
        path.write_text("partial")
    assert run_cli(["convert", "--example", str(out), "--scheduler", "synchronous", "-q", "--no-thumbnails"]) \
        == EXIT_OK
    assert not leftovers(out)


# --------------------------------------------------------------------------------- read-only and full disk

@contextlib.contextmanager
def tmpfs(folder: Path, options: str) -> Iterator[bool]:
    """Mount a tmpfs at ``folder`` if this process may (root in most sandboxes); yields whether it did."""
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True,
                          check=False) if IS_ROOT else None
    mounted = done is not None and done.returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], check=False)


def test_read_only_output(tmp_path, caplog):
    export = synthetic_export(tmp_path / "export", series=2, slices=3)
    parent_is_a_file = tmp_path / "a-file"
    parent_is_a_file.write_text("not a folder")
    assert run_cli(["convert", str(export), str(parent_is_a_file / "out.zarr"), "--scheduler", "synchronous",
                    "-q"]) == EXIT_RUN_ERROR
    assert "Not a directory" in caplog.text
    assert "a-file" in caplog.text
    with tmpfs(tmp_path / "ro", "ro,size=1m") as mounted:
        if not mounted:
            pytest.skip("cannot mount a read-only tmpfs here (needs root); the ENOTDIR case above ran")
        caplog.clear()
        assert run_cli(["convert", str(export), str(tmp_path / "ro" / "out.zarr"), "--scheduler", "synchronous",
                        "-q"]) == EXIT_RUN_ERROR
        assert "Read-only file system" in caplog.text
        assert "out.zarr" in caplog.text


def test_full_disk(tmp_path, caplog, monkeypatch):
    export = synthetic_export(tmp_path / "export", series=6, slices=20, size=64)
    reference = tmp_path / "clean.zarr"
    assert run_cli(["convert", str(export), str(reference), "--scheduler", "synchronous", "-q"]) == EXIT_OK
    with tmpfs(tmp_path / "small", "size=120k") as mounted:
        out = tmp_path / "small" / "out.zarr"
        if not mounted:  # no tmpfs: the zarr store's writes fail with ENOSPC after a few files
            import zarr.storage._local as local

            real, count = local._put, [0]

            def put(path, value, exclusive=False):
                count[0] += 1
                if count[0] > 12:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
                return real(path, value, exclusive=exclusive)

            monkeypatch.setattr(local, "_put", put)
        code = run_cli(["convert", str(export), str(out), "--scheduler", "synchronous", "-q", "--no-thumbnails"])
        assert code == EXIT_RUN_ERROR
        assert "No space left on device" in caplog.text
        total = len(json.loads((reference / "report.json").read_text())["stacks"])
        assert assert_complete_stacks_are_whole(out, reference) < total
        if (out / ".medipy-run.json").exists():
            assert json.loads((out / ".medipy-run.json").read_text())["state"] == "running"
        assert not (out / ".medipy.lock").exists()
