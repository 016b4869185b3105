"""Plan: the scanned files of one series become the images to write (a stack, or volumes of one geometry).

This runs after the shuffle, on the records of one series, with the functions that serve the serial API
(:func:`~medipy.io.dicom.keys.split_stacks`, :func:`~medipy.io.dicom.geometry.stack_geometry`,
:func:`~medipy.io.dicom.pixels.output_dtypes`), so the engine's stacks are exactly those of
:func:`medipy.io.dicom.stacks`. Duplicate instances (same SOP Instance UID in two files) are kept once
(the first path in sorted order) and reported.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import numpy as np

from medipy.engine.scan import FileIssue, IssueKind, ScannedFile
from medipy.errors import MedipyError
from medipy.io.dicom.geometry import StackGeometry, stack_geometry
from medipy.io.dicom.keys import series_order, split_stacks
from medipy.io.dicom.pixels import OutputDtypes, output_dtypes
from medipy.io.dicom.record import SliceRecord
from medipy.io.dicom.volumes import group_volumes, volume_axis

__all__ = ["SeriesPlan", "Slices", "StackPlan", "node_name", "pack_slices", "plan_series"]

logger = logging.getLogger(__name__)

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def node_name(uid: str) -> str:
    """A safe zarr node name for a UID: the UID itself if it is a well-formed UID, else a hash of it.

    A hostile or malformed UID (``../x``, ``/``, control characters, 10 kB of text) never reaches a path.
    """
    if _UID.match(uid) and len(uid) <= 64:
        return uid
    return "h" + hashlib.sha256(uid.encode("utf-8", "surrogatepass")).hexdigest()[:24]


class Slices(NamedTuple):
    """The per-slice part of a :class:`StackPlan` (kept packed, see :meth:`StackPlan.unpack`)."""

    volumes: tuple[tuple[SliceRecord, ...], ...]
    slice_gaps: tuple[float, ...]
    per_slice: dict[str, Any]


def pack_slices(slices: Slices) -> bytes:
    """``slices`` pickled and compressed: ~10x smaller than the objects (a client holds every plan)."""
    return zlib.compress(pickle.dumps(tuple(slices), protocol=pickle.HIGHEST_PROTOCOL), 1)


@dataclass(frozen=True)
class StackPlan:
    """One image to write: a stack (one volume) or volumes of one geometry (4D).

    ``volumes`` hold the slice records of each volume in slice order; ``volume_dtypes`` the dtype of each
    volume alone (values are rescaled in it, then cast to ``dtype``, as :func:`medipy.io.dicom.image4d`
    does): the narrow dtype of :func:`~medipy.io.dicom.pixels.output_dtypes`, taken when every value fits in
    it, which only reading the pixels tells; ``volume_wide_dtypes`` the wide one, for the volumes whose
    values do not (:meth:`widened`); ``volume_axis`` is ``"time"`` or ``"channel"`` (diffusion) for 4D images.
    Geometry vectors are in (z, y, x) order (see :class:`medipy.base.Image`); ``affine`` maps an
    index (k, j, i) of one volume to DICOM patient coordinates (LPS, mm).

    The per-slice part (``volumes``, ``slice_gaps``, ``per_slice``) is stored packed (:func:`pack_slices`) and
    unpacked on access: a client that plans a whole export holds ~150 bytes per slice instead of ~2 kB.
    Unpack once (:meth:`unpack`) where several of them are used.
    """

    path: str
    index: int
    series_instance_uid: str
    study_instance_uid: str
    patient_id: str
    series_number: int | None
    series_description: str
    modality: str
    first: SliceRecord
    depth: int
    count: int
    files: int
    packed: bytes
    dtype: str
    volume_dtypes: tuple[str, ...]
    volume_wide_dtypes: tuple[str, ...]
    volume_axis: str
    origin: tuple[float, ...]
    spacing: tuple[float, ...]
    direction: tuple[tuple[float, ...], ...]
    affine: tuple[tuple[float, ...], ...]
    slice_spacing: float
    gantry_tilt: float
    warnings: tuple[str, ...]
    shared: dict[str, Any]

    def unpack(self) -> Slices:
        """The per-slice part: volumes of slice records, gaps between slices, per-slice metadata."""
        return Slices(*pickle.loads(zlib.decompress(self.packed)))  # made by plan_series, in this run

    @property
    def volumes(self) -> tuple[tuple[SliceRecord, ...], ...]:
        """The slice records of each volume, in slice order."""
        return self.unpack().volumes

    @property
    def slice_gaps(self) -> tuple[float, ...]:
        """Distances between consecutive slices (mm), where they are not even."""
        return self.unpack().slice_gaps

    @property
    def per_slice(self) -> dict[str, Any]:
        """Values of the attributes that vary between slices (see :func:`_metadata`)."""
        return self.unpack().per_slice

    def checked(self, volume: int) -> bool:
        """True when the values of ``volume`` must be checked to fit its dtype (narrower than its wide one)."""
        return self.volume_dtypes[volume] != self.volume_wide_dtypes[volume]

    def widened(self, volumes: Iterable[int] | None = None) -> StackPlan:
        """This plan with ``volumes`` (default: all) read in their wide dtype, as
        :func:`medipy.io.dicom.image` reads a stack whose values do not fit the narrow one."""
        chosen = set(range(self.count) if volumes is None else volumes)
        dtypes = tuple(w if t in chosen else d
                       for t, (d, w) in enumerate(zip(self.volume_dtypes, self.volume_wide_dtypes, strict=True)))
        return replace(self, volume_dtypes=dtypes, dtype=str(np.result_type(*dtypes)))

    @property
    def is_4d(self) -> bool:
        """True when the image has several volumes."""
        return self.count > 1

    @property
    def samples(self) -> int:
        """Samples per pixel (3 for colour)."""
        return self.first.samples_per_pixel

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape in the layout of :func:`medipy.io.dicom.image`: [t,] z, y, x [, c]."""
        shape: tuple[int, ...] = (self.depth, self.first.rows, self.first.columns)
        if self.is_4d:
            shape = (self.count, *shape)
        if self.samples > 1:
            shape = (*shape, self.samples)
        return shape

    @property
    def records(self) -> tuple[SliceRecord, ...]:
        """All slices, volume after volume."""
        return tuple(r for volume in self.volumes for r in volume)


@dataclass(frozen=True)
class SeriesPlan:
    """The images of one series and the files it did not use (duplicates, unsupported)."""

    key: str
    order: tuple
    stacks: tuple[StackPlan, ...]
    issues: tuple[FileIssue, ...]


def _deduplicate(files: Sequence[ScannedFile]) -> tuple[list[ScannedFile], list[FileIssue]]:
    """Keep each SOP Instance UID once: the most complete copy (most slices), then the first path.

    (An excerpt such as a one-frame copy of a multi-frame object carries the same UID: the whole object
    is kept.)
    """
    kept: dict[str, ScannedFile] = {}
    out: list[ScannedFile] = []
    issues: list[FileIssue] = []
    for scanned in sorted(files, key=lambda f: (-len(f.records), f.path)):
        uid = scanned.records[0].sop_instance_uid
        if uid and uid in kept:
            issues.append(FileIssue(scanned.path, IssueKind.DUPLICATE,
                                    f"same SOP Instance UID {uid} as {kept[uid].path}, which is kept"))
            continue
        if uid:
            kept[uid] = scanned
        out.append(scanned)
    out.sort(key=lambda f: f.path)
    return out, issues


def _entry_value(entry: dict[str, Any] | None) -> Any:
    if entry is None:
        return None
    values = entry.get("Value")
    if values is None:
        return None
    values = [v.get("Alphabetic", "") if isinstance(v, dict) else v for v in values]
    return values[0] if len(values) == 1 else values


def _metadata(headers: Sequence[Sequence[Sequence[tuple[str, str]]]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Attributes shared by every slice (DICOM JSON) and per-slice values of those that vary.

    ``headers`` are the ``(tag, JSON text)`` entries of each slice (see :attr:`ScannedFile.headers`), per
    volume. Each distinct text is parsed once; entries are compared by identity, then text, then value.
    """
    from pydicom.datadict import keyword_for_tag

    tables = [[dict(h) for h in volume] for volume in headers]
    flat = [h for volume in tables for h in volume]
    tags = sorted({tag for h in flat for tag in h})
    parsed: dict[str | None, Any] = {None: None}

    def load_all(texts: Iterable[str | None]) -> None:  # one json.loads for all the new texts
        new = list(dict.fromkeys(t for t in texts if t not in parsed))
        if new:
            parsed.update(zip(new, json.loads("[" + ",".join(new) + "]"), strict=True))  # type: ignore[arg-type]

    columns = {tag: [h.get(tag) for h in flat] for tag in tags}
    # equal texts (mostly the same objects): shared without looking at the values
    same_text = {tag for tag, column in columns.items()
                 if column[0] is not None and column.count(column[0]) == len(column)}
    load_all(column[0] for tag, column in columns.items() if tag in same_text)
    load_all(t for tag, column in columns.items() if tag not in same_text for t in column)
    shared: dict[str, Any] = {}
    per_slice: dict[str, Any] = {}
    for tag, column in columns.items():
        first = column[0]
        if tag in same_text or (first is not None and None not in column
                                and all(parsed[t] == parsed[first] for t in column)):  # equal values
            shared[tag] = parsed[first]
            continue
        name = keyword_for_tag(int(tag, 16)) or tag
        values = [[_entry_value(parsed[h.get(tag)]) for h in volume] for volume in tables]
        per_slice[name] = values if len(tables) > 1 else values[0]
    return shared, per_slice


def _stack_plan(path: str, index: int, candidates: list[tuple[list[int], StackGeometry, OutputDtypes]],
                records: Sequence[SliceRecord], headers: Sequence[Sequence[tuple[str, str]]]) -> StackPlan:
    volumes = [c[0] for c in candidates]
    geometry = candidates[0][1]
    dtype = np.result_type(*[c[2].narrow for c in candidates])  # as medipy.io.dicom.image4d
    first = records[volumes[0][0]]
    stacks = [[records[i] for i in volume] for volume in volumes]
    shared, per_slice = _metadata([[headers[i] for i in volume] for volume in volumes])
    description = first.series_description or first.protocol_name
    return StackPlan(
        path=path,
        index=index,
        series_instance_uid=first.series_instance_uid,
        study_instance_uid=first.study_instance_uid,
        patient_id=first.patient_id,
        series_number=first.series_number,
        series_description=description,
        modality=first.modality,
        first=first,
        depth=len(volumes[0]),
        count=len(volumes),
        files=len({records[i].path for volume in volumes for i in volume}),
        packed=pack_slices(Slices(tuple(tuple(records[i] for i in volume) for volume in volumes),
                                  tuple(float(g) for g in geometry.gaps), per_slice)),
        dtype=str(dtype),
        volume_dtypes=tuple(str(c[2].narrow) for c in candidates),
        volume_wide_dtypes=tuple(str(c[2].wide) for c in candidates),
        volume_axis=("" if len(stacks) == 1 else "time" if first.samples_per_pixel > 1 else volume_axis(stacks)),
        origin=tuple(float(v) for v in geometry.origin),
        spacing=tuple(float(v) for v in geometry.spacing),
        direction=tuple(tuple(float(v) for v in row) for row in geometry.direction),
        affine=tuple(tuple(float(v) for v in row) for row in geometry.lps_affine()),
        slice_spacing=float(geometry.slice_spacing),
        gantry_tilt=float(geometry.gantry_tilt),
        warnings=tuple(geometry.warnings),
        shared=shared,
    )


def plan_series(group: tuple[str, Sequence[ScannedFile]], *, four_d: bool = True) -> SeriesPlan:
    """Plan the images of one series (the function mapped over the shuffled bag).

    Parameters
    ----------
    group
        ``(series key, scanned files of that series)`` as made by the shuffle.
    four_d
        Assemble stacks that are volumes of one geometry into one (t, z, y, x) image, exactly as
        :func:`medipy.io.dicom.series4d.series_images` does (:func:`medipy.io.dicom.volumes.group_volumes`).

    Returns
    -------
    SeriesPlan
        Stacks in the order of :func:`~medipy.io.dicom.keys.split_stacks`; never raises for one bad stack
        (its files become ``unsupported`` issues).
    """
    key, files = group
    files, issues = _deduplicate(files)
    records = [r for f in files for r in f.records]
    headers = [h for f in files for h in f.headers]
    series_name = f"series-{node_name(key)}"
    candidates: list[tuple[list[int], StackGeometry, OutputDtypes]] = []
    for stack in split_stacks(records):
        ordered = [records[i] for i in stack]
        try:
            dtype = output_dtypes(ordered)
            geometry = stack_geometry(ordered)
        except (MedipyError, ValueError) as exc:
            reason = getattr(exc, "reason", str(exc))
            for path in dict.fromkeys(r.path or "" for r in ordered):
                issues.append(FileIssue(path, IssueKind.UNSUPPORTED, f"cannot assemble its stack: {reason}"))
            continue
        candidates.append((stack, geometry, dtype))
    if four_d:
        groups = group_volumes([[records[i] for i in c[0]] for c in candidates])
    else:
        groups = [[n] for n in range(len(candidates))]
    stacks = tuple(
        _stack_plan(f"{series_name}/stack-{n}", n, [candidates[i] for i in group], records, headers)
        for n, group in enumerate(groups)
    )
    order = series_order(records[0]) if records else ("", float("inf"), key)
    return SeriesPlan(key, order, stacks, tuple(issues))
