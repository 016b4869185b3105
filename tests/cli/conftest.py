"""CLI fixtures: the bundled example converted once, the corpus converted once by a real ``medipy`` process,
and a real dask scheduler with two workers."""

from __future__ import annotations

import os
import subprocess
import sys

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


