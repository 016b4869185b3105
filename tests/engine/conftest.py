"""Engine fixtures: the whole corpus converted once per scheduler, a real dask scheduler with two workers,
and the serial reading of every corpus file to compare with."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def dask_cluster(tmp_path_factory):
    """A real ``dask scheduler`` and two ``dask worker --nthreads 1`` processes on 127.0.0.1."""
    folder = tmp_path_factory.mktemp("dask")
    scheduler_file = folder / "scheduler.json"
    env = dict(os.environ, PYTHONWARNINGS="ignore")  # workers import the installed medipy, as the tests do
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    processes = [subprocess.Popen(
        [*dask, "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", str(scheduler_file)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=folder)]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert scheduler_file.exists(), "dask scheduler did not start"
        for n in range(2):
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file", str(scheduler_file),
                 "--nthreads", "1", "--no-dashboard", "--name", f"w{n}", "--local-directory", str(folder)],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=folder))
        import json

        from distributed import Client

        for _ in range(50):  # the file may be written in several steps
            try:
                address = json.loads(scheduler_file.read_text())["address"]
                break
            except (ValueError, KeyError):
                time.sleep(0.1)
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


def _convert_corpus(testdata: Path, out: Path, cluster):
    from medipy.engine import ConvertOptions, convert

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pydicom on the corpus' deliberately odd files
        return convert(testdata, out, cluster=cluster, options=ConvertOptions())


@pytest.fixture(scope="session")
def convert_corpus():
    """convert(testdata, out, cluster) with pydicom's warnings on the odd corpus files silenced."""
    return _convert_corpus


@pytest.fixture(scope="session")
def corpus_sync(testdata, tmp_path_factory):
    from medipy.engine import ClusterOptions

    out = tmp_path_factory.mktemp("sync") / "corpus.zarr"
    return _convert_corpus(testdata, out, ClusterOptions("synchronous")), out


@pytest.fixture(scope="session")
def serial_datasets(testdata):
    """Every corpus file read serially with medipy.io.dicom.read: {relative path: DataSet or exception}."""
    from medipy.io.dicom.reading import read

    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for folder, dirs, files in os.walk(testdata):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(folder, name)
                try:
                    out[os.path.relpath(path, testdata)] = read(path)
                except Exception as exc:  # noqa: BLE001 - recorded: the tests compare kinds
                    out[os.path.relpath(path, testdata)] = exc
    return out
