"""Shuffle: scanned files grouped into series with a dask shuffle on plain string keys, then planned.

The key is :func:`medipy.io.dicom.keys.series_key` (computed by the scan, carried as a plain ``str``); the
split of each series into stacks is :func:`medipy.io.dicom.keys.split_stacks`, run on the records of that
series after the shuffle (see :func:`medipy.engine.plan.plan_series`): the engine groups exactly as
:func:`medipy.io.dicom.series` and :func:`medipy.io.dicom.stacks` do.

The files that yield no slice travel through the same shuffle under a key of their own, so that a scan
partition has one consumer and its task is fused with the shuffle's first step: with the ``processes``
scheduler every task result crosses the client, and a scan bag with two consumers (plans and issues) would
cross it once more. Local schedulers shuffle on disk (``partd``, no task result holds the records), a
cluster with a task shuffle (workers have no shared disk).
"""

from __future__ import annotations

import logging
from functools import partial

from medipy.engine.plan import SeriesPlan, plan_series
from medipy.engine.scan import FileIssue, ScannedFile

__all__ = ["plan_bag", "sort_plans", "split_planned"]

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
        dask's shuffle method: ``"disk"`` (partd, for local schedulers) or ``"tasks"``
        (see :attr:`medipy.engine.cluster.Runner.shuffle`).

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
