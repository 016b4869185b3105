"""Shuffle: scanned files grouped into series with a dask shuffle on plain string keys, then planned.

The key is :func:`medipy.io.dicom.keys.series_key` (computed by the scan, carried as a plain ``str``); the
split of each series into stacks is :func:`medipy.io.dicom.keys.split_stacks`, run on the records of that
series after the shuffle (see :func:`medipy.engine.plan.plan_series`): the engine groups exactly as
:func:`medipy.io.dicom.series` and :func:`medipy.io.dicom.stacks` do.

The files that yield no slice travel through the same shuffle under a key of their own. On one machine
(:attr:`medipy.engine.cluster.Runner.shuffle` ``"disk"``) the shuffle is on disk and fused with the scan:
each scan task writes its files, grouped by bucket of series key, to a private folder, and after a barrier
each plan task reads one bucket from every scan task (with the ``processes`` scheduler, a task result crosses
the client: the scan's records never do). On a cluster, where workers share no disk, it is dask's task
shuffle (:func:`plan_bag`).
"""

from __future__ import annotations

import logging
import os
import pickle
import shutil
import socket
import tempfile
import time
import zlib
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from medipy.engine.plan import SeriesPlan, plan_series
from medipy.engine.scan import FileIssue, ScannedFile, ScanOptions, scan_bag, scan_chunks, scan_files

__all__ = ["plan_bag", "plan_files", "remove_shuffle", "remove_stale_shuffles", "sort_plans", "split_planned"]

logger = logging.getLogger(__name__)

#: The shuffle key of the files that yield no slice (a series key is never empty: see series_key).
ISSUES_KEY = ""


def _key(item: ScannedFile | FileIssue) -> str:
    return ISSUES_KEY if isinstance(item, FileIssue) else item.series


def _plan_group(group: tuple[str, list], *, four_d: bool) -> list[SeriesPlan | FileIssue]:
    key, items = group
    if key == ISSUES_KEY:
        return list(items)
    return [plan_series(group, four_d=four_d)]


def plan_bag(scanned, *, npartitions: int | None = None, four_d: bool = True, shuffle: str = "tasks"):
    """A bag of :class:`~medipy.engine.plan.SeriesPlan` (one per series) and of the scan's :class:`FileIssue`.

    Parameters
    ----------
    scanned
        The bag made by :func:`medipy.engine.scan.scan_bag`.
    npartitions
        Partitions after the shuffle (default: those of ``scanned``).
    four_d
        See :func:`~medipy.engine.plan.plan_series`.
    shuffle
        dask's shuffle method: ``"tasks"`` (any scheduler, a cluster included) or ``"disk"`` (dask's partd
        shuffle, one machine; :func:`plan_files` has a faster disk shuffle, fused with the scan).

    Returns
    -------
    dask.bag.Bag
        Plans and issues, in no meaningful order (see :func:`split_planned`).
    """
    groups = scanned.groupby(_key, shuffle=shuffle, npartitions=npartitions or scanned.npartitions)
    return groups.map(partial(_plan_group, four_d=four_d)).flatten()


def split_planned(items) -> tuple[list[SeriesPlan], list[FileIssue]]:
    """The computed items of :func:`plan_bag`: plans in series order (see :func:`sort_plans`), issues."""
    plans = [i for i in items if isinstance(i, SeriesPlan)]
    issues = [i for i in items if isinstance(i, FileIssue)]
    return sort_plans(plans), issues


def sort_plans(plans: list[SeriesPlan]) -> list[SeriesPlan]:
    """Series in the deterministic order of :func:`medipy.io.dicom.series` (study, Series Number, UID)."""
    return sorted(plans, key=lambda p: p.order)


def _bucket(key: str, buckets: int) -> int:
    """The bucket of a shuffle key: the same in every process (str hashes are salted per process)."""
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) % buckets


def _scan_to_disk(numbered: list[tuple[int, list[str]]], options: ScanOptions, folder: str, buckets: int
                  ) -> list[int]:
    """Scan chunks of files; write what each yields to ``folder``, one file per bucket of shuffle key."""
    count = 0
    for index, chunk in numbered:
        grouped: dict[int, list[ScannedFile | FileIssue]] = {}
        for item in scan_files(chunk, options):
            grouped.setdefault(_bucket(_key(item), buckets), []).append(item)
            count += 1
        for bucket, items in grouped.items():
            with open(os.path.join(folder, f"{index}-{bucket}.pickle"), "wb") as fp:
                pickle.dump(items, fp, protocol=pickle.HIGHEST_PROTOCOL)
    return [count]


def _plan_buckets(numbers: list[int], folder: str, scans: int, scanned: int, four_d: bool
                  ) -> list[SeriesPlan | FileIssue]:
    """Read the buckets written by the ``scans`` scan tasks (after all of them: ``scanned`` is the barrier)
    and plan."""
    del scanned
    out: list[SeriesPlan | FileIssue] = []
    for bucket in numbers:
        groups: dict[str, list] = {}
        for index in range(scans):  # in scan order: the same groups, in the same order, in every run
            name = os.path.join(folder, f"{index}-{bucket}.pickle")
            if not os.path.exists(name):  # that scan task had nothing for this bucket
                continue
            with open(name, "rb") as fp:
                for item in pickle.load(fp):  # written by this run's own scan tasks (a private folder)
                    groups.setdefault(_key(item), []).append(item)
        for group in groups.items():
            out.extend(_plan_group(group, four_d=four_d))
    return out


def _disk_plan_bag(paths: Sequence[str], workers: int, options: ScanOptions, four_d: bool, folder: str):
    import dask.bag as db

    chunks = scan_chunks(paths, workers, options)
    numbered = list(enumerate(chunks))
    written = db.from_sequence(numbered, npartitions=len(numbered)).map_partitions(
        _scan_to_disk, options, folder, len(chunks))
    barrier = written.sum()
    return db.from_sequence(range(len(chunks)), npartitions=len(chunks)).map_partitions(
        _plan_buckets, folder, len(chunks), barrier, four_d)


def _shuffle_prefix() -> str:
    """``medipy-shuffle-<host>-``: a shuffle folder is named for its machine, then its process id."""
    host = "".join(c if c.isalnum() or c == "." else "_" for c in socket.gethostname()) or "host"
    return f"medipy-shuffle-{host}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, under another user (EPERM)
        return True
    return True


def remove_stale_shuffles(parent: str, prefix: str | None = None) -> list[str]:
    """Remove the shuffle folders that runs killed on this machine left under ``parent``.

    A run removes its own folder when it ends, even on an exception or Ctrl-C; a killed one (SIGKILL, out of
    memory, a lost batch job) cannot. A folder is stale when it was made on this machine (its name holds the
    host name: a ``$TMPDIR`` shared between machines keeps the others' folders) by a process that no longer
    exists.

    Returns
    -------
    list of str
        The folders removed.
    """
    prefix = prefix or _shuffle_prefix()
    removed: list[str] = []
    try:
        names = os.listdir(parent)
    except OSError:
        return removed
    for name in names:
        pid_text = name[len(prefix):].split("-", 1)[0] if name.startswith(prefix) else ""
        if not pid_text.isdigit() or _alive(int(pid_text)):
            continue
        path = os.path.join(parent, name)
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.exists(path):
            logger.info("removed %s, left by a killed run", path)
            removed.append(path)
    return removed


def plan_files(paths: Sequence[str], runner, *, options: ScanOptions | None = None, four_d: bool = True,
               compute: Callable[..., tuple[Any, ...]] | None = None) -> tuple[list[SeriesPlan], list[FileIssue]]:
    """Scan, shuffle and plan files: the series plans (in series order) and the files that yield no slice.

    Parameters
    ----------
    paths
        The files (see :func:`medipy.engine.scan.list_files`).
    runner
        A :class:`~medipy.engine.cluster.Runner`: its ``shuffle`` chooses the disk shuffle fused with the
        scan (one machine) or dask's task shuffle (a cluster).
    options
        Scan options.
    four_d
        See :func:`~medipy.engine.plan.plan_series`.
    compute
        ``compute(bag) -> (items,)``, e.g. with a progress bar (default: ``runner.compute``).

    Returns
    -------
    (plans, issues)

    Notes
    -----
    The disk shuffle holds the scan's records (a few KB per file) in a temporary folder under dask's
    ``temporary-directory`` setting, else ``$TMPDIR``; it is removed when the plans are made (or when the
    run fails). Folders left by killed runs on this machine are removed first (:func:`remove_stale_shuffles`).
    """
    options = options or ScanOptions()
    compute = compute or runner.compute
    if runner.shuffle != "disk":
        scanned = scan_bag(paths, workers=runner.workers, options=options)
        (items,) = compute(plan_bag(scanned, four_d=four_d, shuffle=runner.shuffle))
        return split_planned(items)
    import dask

    # dask's own place for spilled data (config ``temporary-directory``), else the system's ($TMPDIR)
    parent = dask.config.get("temporary-directory", None) or tempfile.gettempdir()
    prefix = _shuffle_prefix()
    remove_stale_shuffles(parent, prefix)
    folder = tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=parent)
    try:
        (items,) = compute(_disk_plan_bag(paths, runner.workers, options, four_d, folder))
    finally:
        remove_shuffle(folder)
    return split_planned(items)


#: How long :func:`remove_shuffle` waits for the scan tasks still writing into a shuffle folder (seconds).
REMOVAL_WAIT = 2.0


def remove_shuffle(folder: str, wait: float = REMOVAL_WAIT) -> bool:
    """Remove a run's shuffle folder, again while scan tasks still write into it.

    On Ctrl-C the client and its workers are interrupted together: a worker inside a C call (writing a bucket)
    finishes it first, so that a bucket file can appear while the client removes the folder, whose removal
    then fails on a folder that is not empty. The removal is tried again until the folder is gone (a worker
    cannot create it again), for up to ``wait`` seconds; what is left then is removed by the next run on this
    machine (:func:`remove_stale_shuffles`).

    Parameters
    ----------
    folder
        The shuffle folder of this run.
    wait
        Seconds to keep trying.

    Returns
    -------
    bool
        True when the folder is gone.
    """
    deadline = time.monotonic() + wait
    while True:
        shutil.rmtree(folder, ignore_errors=True)
        if not os.path.exists(folder):
            return True
        if time.monotonic() >= deadline:
            logger.warning("could not remove %s (the next run on this machine removes it)", folder)
            return False
        time.sleep(0.02)
