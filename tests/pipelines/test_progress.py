"""map_unordered and compute_with_progress give the same results under every local scheduler; the bars are
silent when stderr is not a terminal."""

from __future__ import annotations

from math import factorial

import pytest

from medipy.engine.cluster import ClusterOptions, open_runner
from medipy.engine.progress import compute_with_progress, map_unordered, show_progress


@pytest.mark.parametrize("scheduler", ["synchronous", "threads", "processes"])
def test_same_results_everywhere(scheduler, capsys):
    import dask.bag as db

    with open_runner(ClusterOptions(scheduler, workers=2)) as runner:
        results = dict(map_unordered(runner, factorial, list(range(20)), desc="test", window=3))
        (total,) = compute_with_progress(runner, db.from_sequence(range(10), npartitions=4).map(factorial).sum(),
                                         desc="test")
    assert results == {i: factorial(i) for i in range(20)}  # a library function: worker processes import it
    assert total == sum(factorial(i) for i in range(10))
    assert capsys.readouterr().err == ""  # not a terminal: no bar


def test_no_bar_unless_asked_and_a_terminal():
    assert show_progress(False) is False
    assert show_progress(True) is False  # pytest captures stderr: not a terminal


def test_errors_of_the_function_are_raised():
    with open_runner(ClusterOptions("threads", workers=2)) as runner, pytest.raises(ZeroDivisionError):
        list(map_unordered(runner, lambda x: 1 / x, [1, 0, 2], desc="test"))
