"""The convert pipeline: scan -> shuffle -> assemble -> persist, from a DICOM export to OME-Zarr.

The client holds the file list, the series plans (slice records, no pixels) and one batch of write tasks
at a time; headers are parsed once, in the workers; pixels are read once, by the tasks that write them.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from medipy.engine.arrays import block_slices
from medipy.engine.cluster import ClusterOptions, Runner, open_runner
from medipy.engine.plan import SeriesPlan, StackPlan
from medipy.engine.progress import map_unordered, per_task
from medipy.engine.scan import FileIssue, ScanOptions
from medipy.engine.shuffle import plan_files
from medipy.engine.walk import collect_files
from medipy.engine.zarr_sink import (
    SinkOptions,
    StackBatch,
    Widen,
    WriteJob,
    create_image,
    finish_image,
    shard_count,
    stack_bytes,
    stack_summary,
    write_item,
    write_jobs,
    write_root,
)

__all__ = ["ConvertOptions", "ConvertReport", "convert", "plan_export", "write_stacks"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConvertOptions:
    """Options of :func:`convert`.

    Attributes
    ----------
    scan, sink
        Scan and storage options.
    four_d
        Write volumes of one geometry as one (t, z, y, x) image (see :func:`medipy.engine.plan.plan_series`).
    overwrite
        Replace an existing output store.
    follow_links
        Follow symbolic links that lead out of a source folder (else they are listed as unreadable).
    """

    scan: ScanOptions = field(default_factory=ScanOptions)
    sink: SinkOptions = field(default_factory=SinkOptions)
    four_d: bool = True
    overwrite: bool = False
    follow_links: bool = False


@dataclass
class ConvertReport:
    """What a conversion did: stacks written, failures (with kind), skipped files, timings (s)."""

    output: str
    files: int
    stacks: list[dict[str, Any]]
    failures: list[FileIssue]
    skipped: list[FileIssue]
    timings: dict[str, float]


def _source_root(source: Any, paths: list[str]) -> str | None:
    if isinstance(source, str | os.PathLike):
        name = os.fspath(source)
        return name if os.path.isdir(name) else os.path.dirname(os.path.abspath(name))
    return os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in paths]) if paths else None


def plan_export(paths: list[str], runner: Runner, options: ConvertOptions | None = None
                ) -> tuple[list[SeriesPlan], list[FileIssue]]:
    """Scan and shuffle: the series plans of an export, and the files that yield no slice.

    Parameters
    ----------
    paths
        Files to scan (see :func:`medipy.engine.scan.list_files`).
    runner
        Where to compute (see :func:`medipy.engine.cluster.open_runner`).
    options
        Conversion options.

    Returns
    -------
    (plans, issues)
        Plans in series order; issues of the scan (not DICOM, broken, DICOMDIR, non-image...).
    """
    options = options or ConvertOptions()
    return plan_files(paths, runner, options=options.scan, four_d=options.four_d)


#: A stack of at most this many bytes is written whole by one task, with its neighbours up to this many bytes
#: (or :data:`BATCH_STACKS` stacks, or fewer so that every worker gets several batches) in all: below a few
#: MB, a stack costs more in file-system calls (groups, documents) and task overhead than in pixels, and those
#: are made by the workers in parallel.
BATCH_BYTES = 8 * 1024 * 1024
BATCH_STACKS = 64


class _Shards(NamedTuple):
    """A write item: shards ``start:stop`` of a larger stack, whose first item is item ``first``."""

    plan: StackPlan
    first: int
    start: int
    stop: int


class _WriteItems(Sequence[StackBatch | tuple[WriteJob, ...]]):
    """The write tasks of stacks in order: batches of whole small stacks (see :data:`BATCH_BYTES`), and
    consecutive shards of a larger stack up to one shard's bytes (one shard of a 3D stack; several volumes of a
    4D stack of small volumes, e.g. fMRI).

    A larger stack's image group is created by the client and its slices unpacked when its first shard is
    asked for (in order, as :func:`~medipy.engine.progress.map_unordered` submits them), while the workers
    write the tasks before it (no phase where the workers wait for every group to be created), not for the
    whole export at once.
    """

    def __init__(self, root: str, stacks: Sequence[StackPlan], sink: SinkOptions, source_root: str | None,
                 workers: int = 1, thumbnails: bool = False) -> None:
        self._root, self._sink, self._source_root, self._thumbnails = root, sink, source_root, thumbnails
        self.owner: list[tuple[StackPlan, ...] | _Shards] = []  # per item: the plans of a batch, or shards
        sizes = [stack_bytes(plan) for plan in stacks]
        small = sum(n <= BATCH_BYTES for n in sizes)
        most = per_task(small, workers, BATCH_STACKS)
        batch: list[StackPlan] = []
        size = 0

        def close() -> None:
            nonlocal size
            if batch:
                self.owner.append(tuple(batch))
                batch.clear()
                size = 0

        for plan, nbytes in zip(stacks, sizes, strict=True):
            if nbytes <= BATCH_BYTES:
                if size + nbytes > BATCH_BYTES or len(batch) == most:
                    close()
                batch.append(plan)
                size += nbytes
                continue
            close()
            first, count = len(self.owner), shard_count(plan, sink)
            _, shard = block_slices(plan, sink.shard_bytes, sink.chunk_bytes)
            job_bytes = min(shard, plan.depth) * (nbytes // (plan.count * plan.depth))
            step = max(1, sink.shard_bytes // max(1, job_bytes))  # shards of one task: one shard's bytes
            self.owner.extend(_Shards(plan, first, start, min(start + step, count)) for start in range(0, count, step))
        close()
        self._cached: tuple[int, list[WriteJob]] = (-1, [])
        #: The attributes of the larger stacks' image groups, by path, from creation until they are finished.
        self.created: dict[str, dict[str, Any] | None] = {}

    def __len__(self) -> int:
        return len(self.owner)

    def __getitem__(self, index):  # type: ignore[override]
        owner = self.owner[index]
        if not isinstance(owner, _Shards):
            return StackBatch(self._root, owner, self._sink, self._source_root, self._thumbnails)
        if self._cached[0] != owner.first:
            slices = owner.plan.unpack()  # once for the group's attributes and the jobs
            self.created[owner.plan.path] = create_image(self._root, owner.plan, self._sink,
                                                         source_root=self._source_root, slices=slices)
            self._cached = (owner.first, write_jobs(self._root, owner.plan, self._sink, slices))
        return tuple(self._cached[1][owner.start:owner.stop])


def write_stacks(root: str, stacks: Sequence[StackPlan], runner: Runner, sink: SinkOptions, *,
                 source_root: str | None = None, progress: bool = False,
                 thumbnails: dict[str, bytes] | None = None) -> dict[str, list[FileIssue]]:
    """Write stacks into the store ``root``: their image groups, their shards, then their ``complete`` flag.

    Small stacks (up to :data:`BATCH_BYTES`) are written whole by the workers, several per task (group,
    shards, then ``complete``). A larger stack's group is created by the client just before its first shard
    is submitted (the workers write the tasks before it meanwhile); its shards are written up to one shard's
    bytes per task (at most a few tasks per worker in flight, so that the client holds no graph of the whole
    export); it is marked complete by the client as soon as its last shard is written. An interrupted run
    keeps every stack finished so far. A stack whose values turn out not to fit the narrow dtype it was
    planned in (see :func:`~medipy.io.dicom.pixels.output_dtypes`) is written again, whole, in the wide one
    (by its batch's worker, or after its other shards), as :func:`medipy.io.dicom.image` would read it.

    Parameters
    ----------
    root
        The zarr store (its root group exists).
    stacks
        The stacks to write.
    runner
        Where to compute.
    sink
        Storage options.
    source_root
        The export's folder: slice issues and stored file names are made relative to it.
    progress
        Draw a progress bar (when stderr is a terminal).
    thumbnails
        When given, receives by stack path the PNG thumbnail (:func:`~medipy.engine.thumbnails.volume_thumbnail`)
        of the small stacks, made by their writers from the values written (no read back); the other stacks
        are not in it.

    Returns
    -------
    dict
        The slices that could not be read, per stack path (relative to ``source_root``, sorted).
    """
    items = _WriteItems(root, stacks, sink, source_root, runner.workers, thumbnails is not None)
    remaining = Counter(owner.plan.path for owner in items.owner if isinstance(owner, _Shards))
    found: dict[str, list[FileIssue]] = {plan.path: [] for plan in stacks}
    widen: dict[str, set[int]] = {}
    again: list[StackPlan] = []
    for index, result in map_unordered(runner, write_item, items, desc="write", enabled=progress):
        owner = items.owner[index]
        if not isinstance(owner, _Shards):  # a batch: written and finished by its worker
            for plan, (issues, png) in zip(owner, result, strict=True):
                found[plan.path] = issues
                if thumbnails is not None and png is not None:
                    thumbnails[plan.path] = png
            continue
        plan = owner.plan
        if isinstance(result, Widen):
            widen.setdefault(plan.path, set()).update(result.volumes)
        else:
            found[plan.path].extend(i.relative_to(source_root) for i in result)
        remaining[plan.path] -= 1
        if remaining[plan.path] == 0 and plan.path in widen:
            items.created.pop(plan.path)  # created again, in the wide dtype
            again.append(plan.widened(widen[plan.path]))
            logger.info("%s: values do not fit %s, written again as %s", plan.path, plan.dtype, again[-1].dtype)
        elif remaining[plan.path] == 0:
            found[plan.path].sort(key=lambda i: (i.path, i.kind))
            finish_image(root, plan, found[plan.path], source_root=source_root, created=items.created.pop(plan.path))
    if again:  # the volumes that did not fit are not checked again, the others fit: no third pass
        found.update(write_stacks(root, again, runner, sink, source_root=source_root, progress=progress,
                                  thumbnails=thumbnails))
    return found


def convert(source: str | os.PathLike[str] | Iterable[str], output: str | os.PathLike[str], *,
            cluster: ClusterOptions | None = None, runner: Runner | None = None,
            options: ConvertOptions | None = None) -> ConvertReport:
    """Convert a DICOM export (folder tree, DICOMDIR or list of files) to an OME-Zarr store.

    Parameters
    ----------
    source
        A folder (walked recursively), a DICOMDIR, or a list of files.
    output
        The zarr v3 store to create (a local folder, e.g. ``out.zarr``).
    cluster
        Where to run (default: the process scheduler on every CPU); ignored when ``runner`` is given.
    runner
        An open :class:`~medipy.engine.cluster.Runner` to reuse.
    options
        Conversion options.

    Returns
    -------
    ConvertReport

    Raises
    ------
    FileExistsError
        ``output`` exists and ``options.overwrite`` is false.
    FileNotFoundError
        ``source`` does not exist.

    Examples
    --------
    >>> from medipy.engine import ClusterOptions, convert
    >>> report = convert("export/", "out.zarr", cluster=ClusterOptions("processes", workers=2))  # doctest: +SKIP
    >>> [s["path"] for s in report.stacks]  # doctest: +SKIP
    ['series-1.2.3/stack-0']
    """
    import zarr

    options = options or ConvertOptions()
    root = os.fspath(output)
    if os.path.exists(root) and not options.overwrite:
        raise FileExistsError(f"{root} exists: choose another output or pass overwrite")
    if runner is None:
        with open_runner(cluster) as opened:
            return convert(source, output, runner=opened, options=options)
    start = time.perf_counter()
    walked = collect_files(source, follow_links=options.follow_links)
    paths = walked.paths
    source_root = _source_root(source, paths)
    logger.info("%d files to scan under %s", len(paths), source_root)
    zarr.open_group(store=root, mode="w")
    plans, scan_issues = plan_export(paths, runner, options)
    planned = time.perf_counter()
    stacks = [s for p in plans for s in p.stacks]
    issues = [i.relative_to(source_root) for i in walked.issues + scan_issues]
    issues += [i.relative_to(source_root) for p in plans for i in p.issues]
    logger.info("%d series, %d stacks, %d files not used; writing", len(plans), len(stacks), len(issues))
    slice_issues = write_stacks(root, stacks, runner, options.sink, source_root=source_root)
    written = time.perf_counter()
    summaries = [stack_summary(s, slice_issues.get(s.path, [])) for s in stacks]
    issues += [i for found in slice_issues.values() for i in found]
    issues.sort(key=lambda i: (i.path, i.kind))
    failures = [i for i in issues if i.is_failure]
    skipped = [i for i in issues if not i.is_failure]
    write_root(root, summaries, failures, skipped, source=source_root)
    for kind in sorted({i.kind for i in issues}):
        logger.info("%s: %d file(s)", kind, sum(i.kind == kind for i in issues))
    timings = {"scan_and_plan": planned - start, "write": written - planned,
               "total": time.perf_counter() - start}
    return ConvertReport(root, len(paths), summaries, failures, skipped, timings)

