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
