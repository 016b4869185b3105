"""Shared fixtures: where the real DICOM corpus lives, and how its absence is handled.

The corpus is ``../shared/testdata`` beside the checkout (override with ``MEDIPY_TESTDATA``). A test that
needs it is skipped with a clear reason when it is absent, except under ``CI=true``, where absence fails.
"""

from __future__ import annotations

import os
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
