"""CLI fixtures: the bundled example converted once, the corpus converted once by a real ``medipy`` process,
and a real dask scheduler with two workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

MEDIPY = [sys.executable, "-P", "-c", "import sys; from medipy.cli import main; sys.exit(main())"]


def medipy_env() -> dict[str, str]:
    """The environment of a ``medipy`` subprocess: the installed package (as the tests), quiet warnings.

    The checkout is not put on ``PYTHONPATH``: its ``medipy/`` folder would shadow the installed package,
    whose ``medipy.pipelines`` is mapped from ``pipelines/`` at install time.
    """
    return dict(os.environ, PYTHONWARNINGS="ignore")


@pytest.fixture(scope="session")
def medipy_command():
    """The argv prefix that runs ``medipy`` in a subprocess, and its environment."""
    return MEDIPY, medipy_env()


@pytest.fixture(scope="session")
def example_store(tmp_path_factory):
    """``medipy convert --example`` once (threads): (exit code, store path)."""
    from medipy.cli import main

    out = tmp_path_factory.mktemp("example") / "example.zarr"
    code = main(["convert", "--example", str(out), "--scheduler", "threads", "--workers", "2", "-q"])
    return code, out


@pytest.fixture(scope="session")
def corpus_reference(testdata, tmp_path_factory):
    """The dev corpus converted by an uninterrupted ``medipy convert`` process: (exit code, store path)."""
    out = tmp_path_factory.mktemp("reference") / "corpus.zarr"
    done = subprocess.run([*MEDIPY, "convert", str(testdata), str(out), "--scheduler", "processes",
                           "--workers", "2", "-q"], env=medipy_env(), capture_output=True, text=True, timeout=600)
    assert (out / "report.json").exists(), done.stderr
    return done.returncode, out


@pytest.fixture(scope="session")
def dask_cluster(tmp_path_factory):
    """A real ``dask scheduler`` and two ``dask worker --nthreads 1`` processes on 127.0.0.1."""
    folder = tmp_path_factory.mktemp("dask")
    scheduler_file = folder / "scheduler.json"
    env = medipy_env()
    processes = [subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
         "--no-dashboard", "--scheduler-file", str(scheduler_file)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=folder)]
    try:
        deadline = time.monotonic() + 60
        address = None
        while address is None and time.monotonic() < deadline:
            try:
                address = json.loads(scheduler_file.read_text())["address"]
            except (OSError, ValueError, KeyError):
                time.sleep(0.1)
        assert address, "dask scheduler did not start"
        for n in range(2):
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file", str(scheduler_file),
                 "--nthreads", "1", "--no-dashboard", "--name", f"w{n}", "--local-directory", str(folder)],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=folder))
        from distributed import Client

        with Client(address, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in reversed(processes):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
