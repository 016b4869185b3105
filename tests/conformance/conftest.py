"""Fixtures of the dcm2niix conformance harness: the harness module and one parameter per reference case."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest


def _harness():
    name = "medipy_conformance_harness"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("harness.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def pytest_generate_tests(metafunc):
    if "conformance_case" in metafunc.fixturenames:
        cases = _harness().references.CASES
        metafunc.parametrize("conformance_case", cases, ids=[case.id for case in cases])


@pytest.fixture(scope="session")
def harness():
    """The harness module (tests/conformance/harness.py)."""
    return _harness()


@pytest.fixture(scope="session")
def expected_headings() -> set[str]:
    """The headings of EXPECTED_DIFFERENCES.md (one per documented difference)."""
    text = Path(__file__).with_name("EXPECTED_DIFFERENCES.md").read_text(encoding="utf-8")
    return {line[3:].strip() for line in text.splitlines() if line.startswith("## ")}
