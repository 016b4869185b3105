"""Progress on long steps: dask collections computed, and functions mapped, with a progress bar.

Two helpers serve every scheduler of :class:`~medipy.engine.cluster.Runner`:

- :func:`compute_with_progress` computes dask collections (the scan and shuffle graph). With the local
  schedulers, a :class:`dask.diagnostics.Callback` counts finished tasks; with ``distributed``, the
  collections are persisted and their futures counted as they complete (the data stays on the workers).
- :func:`map_unordered` runs a function over items (write tasks, thumbnails) and yields ``(index, result)``
  as each finishes, so that the caller can mark a stack complete as soon as its last shard is written.
  At most ``window`` items are in flight, whatever the number of items.

Bars are drawn by tqdm on stderr, and only when asked and stderr is a terminal.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, ThreadPoolExecutor, wait
from typing import Any

from medipy.engine.cluster import Runner

__all__ = ["bar", "compute_with_progress", "map_unordered", "per_task", "show_progress"]

logger = logging.getLogger(__name__)


def show_progress(enabled: bool) -> bool:
    """True when a bar should be drawn: asked for, and stderr is a terminal."""
    return bool(enabled) and sys.stderr.isatty()


def bar(total: int | None, desc: str, enabled: bool):
    """A tqdm bar on stderr (disabled, hence silent, unless :func:`show_progress`)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="task", disable=not show_progress(enabled), leave=False,
                dynamic_ncols=True, file=sys.stderr)


def _callback(progress):
    from dask.diagnostics import Callback

    class _Count(Callback):
        def _start_state(self, dsk, state) -> None:
            progress.total = (progress.total or 0) + len(state["ready"]) + len(state["waiting"]) + \
                len(state["finished"])
            progress.refresh()

        def _posttask(self, key, result, dsk, state, worker_id) -> None:
            progress.update(1)

    return _Count()


def compute_with_progress(runner: Runner, *collections: Any, desc: str, enabled: bool = True) -> tuple[Any, ...]:
    """Compute dask collections with ``runner`` (like :meth:`Runner.compute`), drawing a progress bar.

    Parameters
    ----------
    runner
        Where to compute.
    collections
        Dask collections (bags, arrays, delayed).
    desc
        The label of the bar.
    enabled
        Draw a bar (when stderr is a terminal).

    Returns
    -------
    tuple
        One result per collection.
    """
    with bar(None, desc, enabled) as progress:
        if runner.client is None:
            with _callback(progress):
                return runner.compute(*collections)
        from distributed import as_completed, futures_of

        persisted = runner.client.persist(list(collections))
        futures = futures_of(persisted)
        progress.total = len(futures)
        progress.refresh()
        for _ in as_completed(futures, loop=runner.client.loop):
            progress.update(1)
        return runner.compute(*persisted)


def _executor(runner: Runner) -> tuple[Executor | None, bool]:
    """The executor to submit to, and whether it is ours to shut down."""
    if runner.client is not None:
        return runner.client, False
    pool = runner.kwargs.get("pool")
    if pool is not None:
        return pool, False
    if runner.kind == "threads" and runner.workers > 1:
        return ThreadPoolExecutor(runner.workers), True
    return None, False


def per_task(count: int, workers: int, most: int) -> int:
    """How many of ``count`` small items one task takes: at most ``most``, and few enough that each of
    ``workers`` workers gets at least 4 tasks (the last tasks do not leave the others idle).

    Parameters
    ----------
    count
        The items to share out.
    workers
        The workers that run the tasks.
    most
        The most items of one task.

    Returns
    -------
    int
        At least 1.

    Examples
    --------
    >>> per_task(1000, 2, 64), per_task(24, 2, 64), per_task(3, 2, 64)
    (64, 3, 1)
    """
    return max(1, min(most, -(-count // (4 * max(1, workers)))))


def map_unordered(runner: Runner, func: Callable[[Any], Any], items: Sequence[Any], *, desc: str,
                  enabled: bool = True, window: int | None = None) -> Iterator[tuple[int, Any]]:
    """Run ``func`` on each item where ``runner`` computes; yield ``(index, result)`` as each finishes.

    Parameters
    ----------
    runner
        Where to run: the process pool, a thread pool, a distributed client, or in this thread.
    func
        A picklable function of one item.
    items
        The items.
    desc
        The label of the progress bar.
    enabled
        Draw a bar (when stderr is a terminal).
    window
        Items in flight at most (default: 4 per worker).

    Yields
    ------
    (int, object)
        The index of an item and what ``func`` returned; an exception of ``func`` is raised here.
    """
    executor, owned = _executor(runner)
    window = window or 4 * max(1, runner.workers)
    with bar(len(items), desc, enabled) as progress:
        if executor is None:
            for index, item in enumerate(items):
                result = func(item)
                progress.update(1)
                yield index, result
            return
        try:
            yield from _windowed(executor, func, items, window, progress, runner.client is not None)
        finally:
            if owned:
                executor.shutdown(wait=True, cancel_futures=True)


def _windowed(executor: Any, func: Callable[[Any], Any], items: Sequence[Any], window: int, progress,
              distributed: bool) -> Iterator[tuple[int, Any]]:
    pending: dict[Any, int] = {}
    position = 0
    completed = None
    if distributed:
        from distributed import as_completed

        completed = as_completed(loop=executor.loop)

    def submit() -> None:
        nonlocal position
        while position < len(items) and len(pending) < window:
            if completed is not None:
                future = executor.submit(func, items[position], pure=False)
                completed.add(future)
            else:
                future = executor.submit(func, items[position])
            pending[future] = position
            position += 1

    try:
        submit()
        while pending:
            if completed is not None:
                done = [next(completed)]
            else:
                done = list(wait(list(pending), return_when=FIRST_COMPLETED).done)
            for future in done:
                index = pending.pop(future)
                result = future.result()
                progress.update(1)
                yield index, result
            submit()
    finally:
        for future in pending:  # an interrupted run leaves no queued work behind
            future.cancel()
