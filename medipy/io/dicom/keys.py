"""Grouping keys and slice order: which slices form a series, which form a stack, in which order.

Plain functions of :class:`~medipy.io.dicom.record.SliceRecord` s returning plain strings, tuples and index
lists, so that the dask engine shuffles on exactly the keys the serial :func:`medipy.io.dicom.series` and
:func:`medipy.io.dicom.stacks` use.

A stack is a set of slices that can form one 3D volume: same orientation (within
:data:`~medipy.io.dicom.geometry.ORIENTATION_TOLERANCE`), Rows/Columns, Pixel Spacing, echo, temporal
position, frame type, diffusion b-value and gradient direction. Slices that share all of these but repeat
positions (a 4D series without temporal attributes, e.g. GE fMRI) are split into one stack per volume: the
n-th slice at each position (in acquisition order) goes to the n-th volume.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from medipy.io.dicom.geometry import POSITION_TOLERANCE, normal_of, same_orientation
from medipy.io.dicom.record import SliceRecord

__all__ = [
    "NO_SERIES_UID",
    "duplicate_instances",
    "group_stacks",
    "order_slices",
    "series_key",
    "series_order",
    "split_stacks",
    "stack_key",
]

NO_SERIES_UID = "(no Series Instance UID)"
_LAST = math.inf


def series_key(record: SliceRecord) -> str:
    """The series a slice belongs to: its Series Instance UID."""
    return record.series_instance_uid or NO_SERIES_UID


def series_order(record: SliceRecord) -> tuple[str, float, str]:
    """Sort key of series: by study, then Series Number, then Series Instance UID."""
    number = _LAST if record.series_number is None else float(record.series_number)
    return (record.study_instance_uid, number, series_key(record))


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{round(value, digits) + 0.0:.{digits}f}"


def stack_key(record: SliceRecord) -> str:
    """Everything but orientation and position that slices of one stack share, as one plain string."""
    spacing = "-" if record.pixel_spacing is None else ",".join(_fmt(v, 4) for v in record.pixel_spacing)
    gradient = "-" if record.gradient is None else ",".join(_fmt(v, 3) for v in record.gradient)
    if record.gradient_logical is not None:  # GE: another frame, never equal to an LPS direction
        gradient = "logical:" + ",".join(_fmt(v, 3) for v in record.gradient_logical)
    parts = (
        f"{record.rows}x{record.columns}x{record.samples_per_pixel}",
        spacing,
        "-" if record.echo_number is None else str(record.echo_number),
        _fmt(record.echo_time, 3),
        "-" if record.temporal_position is None else str(record.temporal_position),
        record.frame_type.upper(),
        _fmt(record.b_value, 1),
        gradient,
    )
    return "|".join(parts)


def _acquisition_order(record: SliceRecord) -> tuple:
    return (
        _LAST if record.temporal_position is None else record.temporal_position,
        _LAST if record.acquisition_number is None else record.acquisition_number,
        _LAST if record.instance_number is None else record.instance_number,
        record.acquisition_time,
        _LAST if record.trigger_time is None else record.trigger_time,
        record.sop_instance_uid,
        -1 if record.frame is None else record.frame,
        record.path or "",  # duplicates of one instance (same UID, other file): by file, not by input order
    )


def _instance_order(record: SliceRecord) -> tuple:
    return (
        _LAST if record.instance_number is None else record.instance_number,
        -1 if record.frame is None else record.frame,
        record.sop_instance_uid,
        record.path or "",
    )


def order_slices(records: Sequence[SliceRecord], indices: Sequence[int] | None = None) -> list[int]:
    """Indices of ``records`` (or of the subset ``indices``) sorted by position along the slice normal.

    Slices without Image Position (Patient) or Orientation fall back to Instance Number (then frame).
    """
    chosen = list(range(len(records))) if indices is None else list(indices)
    if not chosen:
        return []
    first = records[chosen[0]]
    if first.orientation is None or any(records[i].position is None for i in chosen):
        return sorted(chosen, key=lambda i: _instance_order(records[i]))
    normal = normal_of(first.orientation)
    return sorted(
        chosen,
        key=lambda i: (round(float(np.dot(records[i].position, normal)) / POSITION_TOLERANCE),  # type: ignore[arg-type]
                       _acquisition_order(records[i])),
    )


def _orientation_clusters(records: Sequence[SliceRecord], indices: list[int]) -> list[list[int]]:
    clusters: list[list[int]] = []
    for i in indices:
        for cluster in clusters:
            if same_orientation(records[cluster[0]].orientation, records[i].orientation):
                cluster.append(i)
                break
        else:
            clusters.append([i])
    return clusters


def _volumes(records: Sequence[SliceRecord], indices: list[int]) -> list[list[int]]:
    """Split slices that repeat positions into volumes (n-th slice at each position -> n-th volume)."""
    first = records[indices[0]]
    if first.orientation is None or any(records[i].position is None for i in indices):
        return [indices]
    normal = normal_of(first.orientation)
    by_distance = sorted(indices, key=lambda i: float(np.dot(records[i].position, normal)))  # type: ignore[arg-type]
    places: list[list[int]] = []
    last = None
    for i in by_distance:
        d = float(np.dot(records[i].position, normal))  # type: ignore[arg-type]
        if last is None or d - last > POSITION_TOLERANCE:
            places.append([])
        places[-1].append(i)
        last = d
    if all(len(p) == 1 for p in places):
        return [indices]
    # Frames of one cine object share a position: they are not separate volumes.
    if len({(records[i].path, records[i].sop_instance_uid) for i in indices}) == 1:
        return [indices]
    volumes: dict[int, list[int]] = {}
    for place in places:
        for rank, i in enumerate(sorted(place, key=lambda i: _acquisition_order(records[i]))):
            volumes.setdefault(rank, []).append(i)
    return [volumes[rank] for rank in sorted(volumes)]


def _stack_order(records: Sequence[SliceRecord], stack: list[int]) -> tuple:
    return min(_acquisition_order(records[i]) for i in stack)


def split_stacks(records: Sequence[SliceRecord]) -> list[list[int]]:
    """Split the slices of one series into stacks.

    Parameters
    ----------
    records
        The slice records of one series (frames and mosaic tiles already separated).

    Returns
    -------
    list of list of int
        Indices into ``records``: one list per stack, each sorted by :func:`order_slices`; stacks in a
        deterministic order (acquisition order of their first slice).
    """
    by_key: dict[str, list[int]] = {}
    for i, record in enumerate(records):
        by_key.setdefault(stack_key(record), []).append(i)
    stacks: list[list[int]] = []
    for key in sorted(by_key):
        for cluster in _orientation_clusters(records, by_key[key]):
            for volume in _volumes(records, cluster):
                stacks.append(order_slices(records, volume))
    stacks.sort(key=lambda stack: _stack_order(records, stack))
    return stacks


def duplicate_instances(records: Sequence[SliceRecord]) -> list[str]:
    """SOP Instance UIDs that more than one slice claims (same UID and frame; e.g. another file).

    A stack never silently keeps one of them: copies at one position go to different stacks (see
    :func:`split_stacks`); copies at different positions stay in the stack and are reported with this list.
    """
    seen: dict[tuple[str, int | None], int] = {}
    for record in records:
        if record.sop_instance_uid:
            key = (record.sop_instance_uid, record.frame)
            seen[key] = seen.get(key, 0) + 1
    return sorted({uid for (uid, _), count in seen.items() if count > 1})


def group_stacks(records: Sequence[SliceRecord]) -> list[list[SliceRecord]]:
    """Like :func:`split_stacks`, returning the records themselves."""
    return [[records[i] for i in stack] for stack in split_stacks(records)]
