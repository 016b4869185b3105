"""Shared helpers of the hardening tests: hypothesis profiles, small source files, error checks, time limits.

Hypothesis profiles: ``medipy-fuzz-fast`` (the default: few examples, the whole hardening suite stays well under
a minute) and ``medipy-fuzz-long`` (many examples, for a nightly or pre-release run), selected with the
environment variable ``MEDIPY_FUZZ=long``. Test modules read the selected profile with
``settings.get_profile(os.environ.get("MEDIPY_FUZZ_PROFILE"))`` (set here), since they cannot import this file.
No example database is kept: nothing is written outside ``tmp_path``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from pydicom.data import get_testdata_file

from medipy.errors import MedipyError

_COMMON = {
    "deadline": None,  # timing is checked by the `time_limit` fixture, not per example
    "database": None,  # no .hypothesis folder left behind
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    "print_blob": True,  # a failure prints the @reproduce_failure blob
}
settings.register_profile("medipy-fuzz-fast", max_examples=25, derandomize=True, **_COMMON)
settings.register_profile("medipy-fuzz-long", max_examples=1500, **_COMMON)
_PROFILE = "medipy-fuzz-long" if os.environ.get("MEDIPY_FUZZ", "").lower() == "long" else "medipy-fuzz-fast"
os.environ["MEDIPY_FUZZ_PROFILE"] = _PROFILE


def _example(name: str) -> Path:
    path = get_testdata_file(name)
    if path is None:  # pragma: no cover - pydicom ships these files in its wheel
        pytest.skip(f"pydicom's bundled example {name} is not installed")
    return Path(path)


@pytest.fixture
def example_copy(tmp_path: Path) -> Callable[[str, str | None], Path]:
    """Copy one of pydicom's bundled example files (e.g. ``CT_small.dcm``) into ``tmp_path``."""

    def copy(name: str, as_name: str | None = None) -> Path:
        target = tmp_path / (as_name or name)
        shutil.copyfile(_example(name), target)
        return target

    return copy


@pytest.fixture
def example_path() -> Callable[[str], Path]:
    """Path of one of pydicom's bundled example files (read only)."""
    return _example


@pytest.fixture
def raises_naming() -> Callable[..., contextlib.AbstractContextManager[pytest.ExceptionInfo[BaseException]]]:
    """``pytest.raises`` of one medipy error class whose message names ``path`` (and matches ``match``).

    Also checks that the error is a :class:`MedipyError` (not a bare pydicom, struct or numpy error) and that
    its ``path`` attribute is the file.
    """

    @contextlib.contextmanager
    def check(error: type[MedipyError], path: Path | str, match: str | None = None
              ) -> Iterator[pytest.ExceptionInfo[BaseException]]:
        with pytest.raises(error, match=match) as info:
            yield info
        assert isinstance(info.value, MedipyError)
        assert str(path) in str(info.value)
        assert getattr(info.value, "path", None) == str(path)

    return check


@pytest.fixture
def peak_memory() -> Callable[[Callable[[], object]], tuple[object, int]]:
    """Run a function under tracemalloc: (its result or the exception it raised, peak bytes allocated)."""

    def measure(function: Callable[[], object]) -> tuple[object, int]:
        tracemalloc.start()
        try:
            try:
                result: object = function()
            except Exception as exc:  # noqa: BLE001 - returned to the test, which asserts its type
                result = exc
            return result, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    return measure


class HangError(Exception):
    """Raised by :func:`time_limit` when the code under test runs too long (a hang on hostile input)."""


@pytest.fixture
def time_limit() -> Callable[[float], contextlib.AbstractContextManager[None]]:
    """A context manager failing with :class:`HangError` after ``seconds`` (SIGALRM; POSIX main thread)."""

    @contextlib.contextmanager
    def limit(seconds: float) -> Iterator[None]:
        if not hasattr(signal, "setitimer"):  # pragma: no cover - Windows: no hang detection
            yield
            return

        def on_alarm(signum: int, frame: object) -> None:
            raise HangError(f"still running after {seconds} s: hang on hostile input?")

        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)

    return limit
