"""The house rules a machine can check: ruff (style, imports, common bugs) and mypy (type hints) on the
library and the pipelines. Both are pinned in the ``test`` extra: a new release cannot turn the suite red alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    pytest.importorskip(module, reason=f"{module} is in the test extra: pip install '.[test]'")
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True,
                          check=False, timeout=600)


def test_mypy_finds_no_type_error_in_the_library_and_pipelines() -> None:
    done = _run("mypy", "--no-incremental", "medipy", "pipelines")
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_finds_nothing_in_library_tests_and_benchmarks() -> None:
    done = _run("ruff", "check", "--no-cache", "medipy", "pipelines", "tests", "benchmarks")
    assert done.returncode == 0, done.stdout + done.stderr
