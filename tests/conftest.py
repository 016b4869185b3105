"""Shared fixtures: where the real DICOM corpus lives, and how its absence is handled.

The corpus is ``../shared/testdata`` beside the checkout (override with ``MEDIPY_TESTDATA``). A test that
needs it is skipped with a clear reason when it is absent, except under ``CI=true``, where absence fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def _testdata_dir() -> Path:
    env = os.environ.get("MEDIPY_TESTDATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "testdata"


TESTDATA = _testdata_dir()


@pytest.fixture(scope="session")
def testdata() -> Path:
    """Root of the shared DICOM corpus (see its MANIFEST.md)."""
    if not (TESTDATA / "MANIFEST.md").is_file():
        message = f"shared DICOM corpus not found at {TESTDATA} (set MEDIPY_TESTDATA)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + "; it is required under CI=true")
        pytest.skip(message)
    return TESTDATA


def world_mismatch(image, nifti_path, volume: int | None = None) -> tuple[float, float]:
    """Compare an Image with a NIfTI reference through world coordinates.

    Every voxel of ``image`` is mapped to DICOM patient coordinates (LPS), then to RAS and into the
    reference's voxel grid. Returns (largest distance in voxels between a mapped point and the nearest
    reference voxel centre, largest absolute voxel difference). A shape mismatch fails the comparison.
    """
    import nibabel
    import numpy as np

    reference = nibabel.load(str(nifti_path))
    ref = np.asarray(reference.get_fdata())
    if ref.ndim == 4:
        ref = ref[..., 0 if volume is None else volume]
    data = np.asarray(image.data, dtype=float)
    assert sorted(data.shape) == sorted(ref.shape), (data.shape, ref.shape)
    index = np.stack(np.meshgrid(*[np.arange(n) for n in data.shape], indexing="ij"), -1).reshape(-1, 3)
    lps = index @ image.lps_affine[:3, :3].T + image.lps_affine[:3, 3]
    ras = lps * np.array([-1.0, -1.0, 1.0])
    ijk = (ras - reference.affine[:3, 3]) @ np.linalg.inv(reference.affine[:3, :3]).T
    nearest = np.round(ijk).astype(int)
    assert np.all((nearest >= 0) & (nearest < np.array(ref.shape))), "voxels map outside the reference"
    values = ref[nearest[:, 0], nearest[:, 1], nearest[:, 2]]
    return float(np.abs(ijk - nearest).max()), float(np.abs(values - data.reshape(-1)).max())


@pytest.fixture(scope="session")
def nifti_mismatch():
    """The :func:`world_mismatch` comparison, as a fixture (test modules cannot import conftest)."""
    return world_mismatch


def pytest_sessionstart(session) -> None:
    """Tests run against the installed package: fail early, with the fix, when it is not installed."""
    try:
        import medipy.pipelines  # noqa: F401 - mapped from pipelines/ by the install
    except ModuleNotFoundError as exc:
        raise pytest.UsageError(
            "medipy is not installed in this environment (medipy.pipelines is missing): run "
            "`python -m pip install -e '.[test]'` (or `pip install '.[test]'`) first"
        ) from exc


@contextlib.contextmanager
def _dask_cluster(folder: Path, workers: int = 2) -> Iterator[str]:
    """A real ``dask scheduler`` and ``workers`` ``dask worker --nthreads 1`` processes (each under its nanny,
    which restarts a killed worker) on 127.0.0.1; yields the scheduler address, stops them all on exit.

    The processes import the installed medipy (no ``PYTHONPATH`` to the checkout).
    """
    scheduler_file = folder / "scheduler.json"
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    quiet = {"env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "cwd": folder}
    processes = [subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
         "--no-dashboard", "--scheduler-file", str(scheduler_file)], **quiet)]
    try:
        deadline = time.monotonic() + 60
        address = None
        while address is None and time.monotonic() < deadline:
            try:
                address = json.loads(scheduler_file.read_text())["address"]
            except (OSError, ValueError, KeyError):  # not written yet, or written in several steps
                time.sleep(0.1)
        assert address, "dask scheduler did not start"
        for n in range(workers):
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1", "--nanny",
                 "--no-dashboard", "--name", f"w{n}", "--local-directory", str(folder), "--host", "127.0.0.1"],
                **quiet))
        from distributed import Client

        with Client(address, set_as_default=False) as client:
            client.wait_for_workers(workers, timeout=60)
        yield address
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in reversed(processes):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture(scope="session")
def dask_cluster(tmp_path_factory) -> Iterator[str]:
    """The address of a real dask scheduler with two worker processes on 127.0.0.1, shared by the session."""
    with _dask_cluster(tmp_path_factory.mktemp("dask")) as address:
        yield address


@pytest.fixture(scope="session")
def start_dask_cluster():
    """A context manager ``(folder, workers=2) -> address`` for tests that need a cluster of their own
    (e.g. to kill one of its workers)."""
    return _dask_cluster


def _assert_same_zarr(store: Path, reference: Path) -> None:
    """Two zarr stores hold the same nodes, metadata, attributes and arrays (every zarr.json and every array)."""
    import numpy as np
    import zarr

    def snapshot(root: Path) -> tuple[dict[str, object], dict[str, object]]:
        metadata = {str(p.relative_to(root)): json.loads(p.read_text()) for p in sorted(root.rglob("zarr.json"))}
        arrays = {name: zarr.open_array(store=str(root / Path(name).parent), mode="r")[...]
                  for name in metadata if metadata[name]["node_type"] == "array"}
        return metadata, arrays

    metadata, arrays = snapshot(store)
    expected_metadata, expected_arrays = snapshot(reference)
    assert metadata == expected_metadata
    assert arrays.keys() == expected_arrays.keys()
    for name, values in expected_arrays.items():
        np.testing.assert_array_equal(arrays[name], values, err_msg=name)


@pytest.fixture(scope="session")
def assert_same_zarr():
    """``(store, reference) -> None``: assert two zarr stores are identical (metadata, attributes, arrays)."""
    return _assert_same_zarr


@pytest.fixture
def fileset_paths():
    """The instances pydicom's FileSet finds through a DICOMDIR: paths relative to its folder, sorted."""
    from pydicom.fileset import FileSet

    def load(dicomdir: Path) -> list[str]:
        fileset = FileSet(dicomdir)
        try:
            return sorted(Path(i.path).relative_to(dicomdir.parent).as_posix() for i in fileset)
        finally:  # pydicom's staging folder, else a ResourceWarning at garbage collection
            stage = getattr(fileset, "_stage", {}).get("t")
            if stage is not None:
                stage.cleanup()

    return load
