"""Shuffle: scanned files grouped into series with a dask task shuffle on plain string keys, then planned.

The key is :func:`medipy.io.dicom.keys.series_key` (computed by the scan, carried as a plain ``str``); the
split of each series into stacks is :func:`medipy.io.dicom.keys.split_stacks`, run on the records of that
series after the shuffle (see :func:`medipy.engine.plan.plan_series`): the engine groups exactly as
:func:`medipy.io.dicom.series` and :func:`medipy.io.dicom.stacks` do.
"""

from __future__ import annotations

import logging
from functools import partial

from medipy.engine.plan import SeriesPlan, plan_series
from medipy.engine.scan import FileIssue, ScannedFile

__all__ = ["issues_bag", "series_plans", "sort_plans"]

logger = logging.getLogger(__name__)


def _is_issue(item: ScannedFile | FileIssue) -> bool:
    return isinstance(item, FileIssue)


def _is_scanned(item: ScannedFile | FileIssue) -> bool:
    return isinstance(item, ScannedFile)


def _series_of(item: ScannedFile) -> str:
    return item.series


def issues_bag(scanned):
    """The :class:`~medipy.engine.scan.FileIssue` items of a scan bag."""
    return scanned.filter(_is_issue)


def series_plans(scanned, *, npartitions: int | None = None, four_d: bool = True, shuffle: str = "tasks"):
    """A bag of :class:`~medipy.engine.plan.SeriesPlan`, one per series of a scan bag.

    Parameters
    ----------
    scanned
        The bag made by :func:`medipy.engine.scan.scan_bag`.
    npartitions
        Partitions after the shuffle (default: those of ``scanned``).
    four_d
        See :func:`~medipy.engine.plan.plan_series`.

    Returns
    -------
    dask.bag.Bag
        Series plans; their order is not meaningful (see :func:`sort_plans`).
    """
    groups = scanned.filter(_is_scanned).groupby(
        _series_of, shuffle=shuffle, npartitions=npartitions or scanned.npartitions
    )
    return groups.map(partial(plan_series, four_d=four_d))


def sort_plans(plans: list[SeriesPlan]) -> list[SeriesPlan]:
    """Series in the deterministic order of :func:`medipy.io.dicom.series` (study, Series Number, UID)."""
    return sorted(plans, key=lambda p: p.order)
