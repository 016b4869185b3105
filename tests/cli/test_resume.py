"""Resume and lock: a ``medipy convert`` of the corpus killed midway (SIGKILL of its process group), re-run,
ends identical to an uninterrupted run; a second run into a locked output is refused."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from medipy.cli import EXIT_INTERRUPTED, EXIT_OK, EXIT_RUN_ERROR, main
from medipy.engine.checkpoint import OutputLock


def _complete_stacks(store: Path) -> int:
    count = 0
    for path in store.glob("*/*/zarr.json"):
        with contextlib.suppress(OSError, ValueError, KeyError):
            count += json.loads(path.read_text())["attributes"]["medipy"]["complete"] is True
    return count


def test_killed_convert_resumes_to_the_same_store(testdata, corpus_reference, medipy_command, tmp_path,
                                                  assert_same_zarr):
    command, env = medipy_command
    reference_code, reference = corpus_reference
    out = tmp_path / "killed.zarr"
    argv = [*command, "convert", str(testdata), str(out), "--scheduler", "processes", "--workers", "2", "-q"]
    process = subprocess.Popen(argv, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while _complete_stacks(out) == 0 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    total = len(json.loads((reference / "report.json").read_text())["stacks"])
    killed_complete = _complete_stacks(out)
    assert 0 < killed_complete < total
    assert json.loads((out / ".medipy-run.json").read_text())["state"] == "running"
    assert (out / ".medipy.lock").exists()  # left by the killed run: stale, replaced by the re-run

    resumed = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == reference_code, resumed.stderr
    report = json.loads((out / "report.json").read_text())
    expected = json.loads((reference / "report.json").read_text())
    assert report["counts"] == expected["counts"]
    assert report["resumed"] >= killed_complete
    assert report["written"] + report["resumed"] == total
    assert report["stacks"] == expected["stacks"]
    assert report["failures"] == expected["failures"]

    assert_same_zarr(out, reference)

    again = subprocess.run([*argv[:-1], "-v"], env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == reference_code
    assert "nothing to do" in again.stdout


@pytest.mark.parametrize("phase", ["scan", "write"])
def test_ctrl_c_stops_cleanly_and_the_rerun_resumes(testdata, corpus_reference, medipy_command, tmp_path,
                                                    assert_same_zarr, phase):
    """SIGINT to the whole process group, as Ctrl-C in a terminal sends it (client and worker processes)."""
    command, env = medipy_command
    reference_code, reference = corpus_reference
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = dict(env, TMPDIR=str(scratch))
    out = tmp_path / "interrupted.zarr"
    argv = [*command, "convert", str(testdata), str(out), "--scheduler", "processes", "--workers", "2", "-q"]
    process = subprocess.Popen(argv, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)

    def reached() -> bool:
        if phase == "scan":  # the disk shuffle's folder exists while the scan runs
            return any(p.name.startswith("medipy-shuffle-") for p in scratch.iterdir())
        return _complete_stacks(out) > 0

    try:
        deadline = time.monotonic() + 300
        while not reached() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=60)  # no worker left hanging
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == EXIT_INTERRUPTED, stderr
    assert "interrupted: re-run the same command to resume" in stderr
    assert not list(scratch.iterdir())  # the shuffle's folder is removed
    assert not (out / ".medipy.lock").exists()
    assert not (out / "report.json").exists()  # an interrupted store never looks finished
    total = len(json.loads((reference / "report.json").read_text())["stacks"])
    assert _complete_stacks(out) < total

    resumed = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == reference_code, resumed.stderr
    assert json.loads((out / "report.json").read_text())["stacks"] == json.loads(
        (reference / "report.json").read_text())["stacks"]
    assert_same_zarr(out, reference)


def test_a_second_run_into_a_locked_output_is_refused(tmp_path, caplog):
    out = tmp_path / "locked.zarr"
    with OutputLock(out, "the first run"):
        assert main(["convert", "--example", str(out), "--scheduler", "synchronous", "-q"]) == EXIT_RUN_ERROR
    assert "is being written by another medipy run" in caplog.text
    assert f"pid {os.getpid()}" in caplog.text
    assert "the first run" in caplog.text


def test_a_stale_lock_is_replaced(tmp_path, caplog):
    gone = subprocess.run(["true"], check=True)  # a process that has exited: its pid is not alive
    del gone
    out = tmp_path / "stale.zarr"
    out.mkdir()
    dead_pid = 2 ** 22 + 12345  # above the default pid_max: no such process
    (out / ".medipy.lock").write_text(json.dumps({"pid": dead_pid, "host": socket.gethostname(),
                                                  "started": time.time(), "command": "killed"}))
    assert main(["convert", "--example", str(out), "--scheduler", "synchronous", "--no-thumbnails"]) == EXIT_OK
    assert "stale lock" in caplog.text
    assert not (out / ".medipy.lock").exists()


def test_a_lock_of_another_host_is_respected(tmp_path):
    import pytest

    from medipy.errors import OutputLockedError

    out = tmp_path / "remote.zarr"
    out.mkdir()
    (out / ".medipy.lock").write_text(json.dumps({"pid": 1, "host": "another-node", "started": 0.0}))
    with pytest.raises(OutputLockedError, match="another-node"):
        OutputLock(out).acquire()


def _tree(out: Path) -> dict[str, bytes]:
    skipped = {"report.json", "report.html", ".medipy-run.json", ".medipy.lock"}
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name not in skipped}


def test_interrupted_normalize_keeps_the_staged_tasks_and_ends_identical(tmp_path, monkeypatch):
    import medipy.pipelines.normalize as normalize
    from medipy.cli import EXIT_INTERRUPTED, EXIT_OK, main

    argv = ["--example", "--scheduler", "synchronous", "-q"]
    assert main(["normalize", *argv[:1], str(tmp_path / "reference"), *argv[1:]]) == EXIT_OK
    out = tmp_path / "out"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C once every file is staged, before they are moved into the tree

    with monkeypatch.context() as patch:
        patch.setattr(normalize, "finalize", interrupted)
        assert main(["normalize", argv[0], str(out), *argv[1:]]) == EXIT_INTERRUPTED
    folders = sorted(p for p in (out / normalize.STAGING).iterdir())
    assert len(folders) == 13  # 13 files: one task each (at least 64 tasks, at most 256 files per task)
    assert all((f / normalize.MANIFEST).is_file() for f in folders)
    (folders[0] / normalize.MANIFEST).unlink()  # killed before its manifest: written again
    next(p for p in folders[1].iterdir() if p.name != normalize.MANIFEST).unlink()  # a staged file lost: again
    manifest = json.loads((folders[2] / normalize.MANIFEST).read_text())
    manifest[0]["staged"]["staged"] = "../reference/DICOMDIR"  # a manifest naming a file outside: not trusted
    (folders[2] / normalize.MANIFEST).write_text(json.dumps(manifest))
    written = []
    real = normalize.write_partition

    def counted(paths, *args, **kwargs):
        written.append(list(paths))
        return real(paths, *args, **kwargs)

    monkeypatch.setattr(normalize, "write_partition", counted)
    rerun = ["--scheduler", "threads", "--workers", "2", "-q"]  # other workers: the same tasks
    assert main(["normalize", argv[0], str(out), *rerun]) == EXIT_OK
    assert len(written) == 3  # the three damaged tasks only
    assert not (out / normalize.STAGING).exists()
    assert _tree(out) == _tree(tmp_path / "reference")
    assert len(_tree(out)) == 14  # 13 files and the DICOMDIR
