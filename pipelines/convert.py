"""The convert pipeline: a DICOM export to an OME-Zarr store, resumable, with a report and thumbnails.

scan + shuffle (:func:`~medipy.pipelines.common.plan_input`) -> select -> for each stack not yet complete:
create its image, write its shards (as they finish, a stack whose shards are all written is marked
complete) -> root listing -> thumbnails -> ``report.json`` and ``report.html`` -> run state ``done``.

An interrupted run leaves complete stacks (``medipy.complete`` true) and partial ones; re-running the same
command redoes only the partial ones (their array is re-created) and rewrites the root listing, so that the
store ends identical to that of an uninterrupted run.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict
from typing import Any

from medipy.engine.checkpoint import mark_done
from medipy.engine.cluster import Runner
from medipy.engine.conversion import write_stacks
from medipy.engine.plan import StackPlan
from medipy.engine.progress import map_unordered, per_task
from medipy.engine.report import RunReport, write_html, write_json
from medipy.engine.scan import FileIssue
from medipy.engine.thumbnails import stack_thumbnails
from medipy.engine.zarr_sink import (
    FORMAT_VERSION,
    SinkOptions,
    medipy_attributes,
    stack_summary,
    write_root,
)
from medipy.pipelines.common import Planned, plan_input, runner_for, split_issues, take_output
from medipy.pipelines.runfile import EXAMPLE, RunConfig

__all__ = ["fingerprint", "run"]

logger = logging.getLogger(__name__)

#: Stacks whose thumbnails one task reads back from the store, at most.
THUMBNAILS_PER_TASK = 32


def fingerprint(config: RunConfig, sink: SinkOptions) -> dict[str, Any]:
    """What makes two runs write the same store (not where they run)."""
    source = config.input if config.input == EXAMPLE else os.path.abspath(config.input)
    return {"pipeline": "convert", "input": source, "select": config.select.as_dict(),
            "four_d": config.options.four_d, "sink": asdict(sink), "format": FORMAT_VERSION,
            **({"follow_links": True} if config.options.follow_links else {})}  # older stores: key absent


def _stack_entry(plan: StackPlan, issues: list[FileIssue]) -> dict[str, Any]:
    entry = stack_summary(plan, issues)
    entry["files"] = plan.files
    entry["warnings"] = list(plan.warnings)
    return entry


def _complete(root: str, stacks: list[StackPlan]) -> set[str]:
    """The stacks already marked complete in the store."""
    import zarr

    group = zarr.open_group(store=root, mode="a")
    done: set[str] = set()
    for plan in stacks:
        try:
            attrs = medipy_attributes(group[plan.path])
        except KeyError:
            continue
        if attrs.get("complete") is True:
            done.add(plan.path)
    return done


def _write(root: str, planned: Planned, runner: Runner, sink: SinkOptions, progress: bool,
           thumbnails: dict[str, bytes] | None) -> tuple[dict[str, list[FileIssue]], int]:
    """Write every stack not yet complete; returns the unreadable slices of each, and the number resumed
    (``thumbnails`` receives those the writers made, see :func:`~medipy.engine.conversion.write_stacks`)."""
    done = _complete(root, planned.stacks)
    todo = [s for s in planned.stacks if s.path not in done]
    logger.info("%d stacks to write, %d already complete", len(todo), len(done))
    found = write_stacks(root, todo, runner, sink, source_root=planned.root, progress=progress,
                         thumbnails=thumbnails)
    return found, len(done)


def _thumbnails(root: str, stacks: list[StackPlan], runner: Runner, progress: bool,
                made: dict[str, bytes]) -> dict[str, bytes]:
    """The thumbnail of every stack: those the writers ``made``, the others read back from the store by the
    workers, a few stacks per task (at least 4 tasks per worker, at most :data:`THUMBNAILS_PER_TASK` stacks
    each), since a small stack's thumbnail costs less than a task."""
    out = dict(made)
    stacks = [s for s in stacks if s.path not in made]
    paths = [os.path.join(root, *s.path.split("/"), "0") for s in stacks]
    size = per_task(len(paths), runner.workers, THUMBNAILS_PER_TASK)
    batches = [paths[i:i + size] for i in range(0, len(paths), size)]
    for index, pngs in map_unordered(runner, stack_thumbnails, batches, desc="thumbnails", enabled=progress):
        for offset, png in enumerate(pngs):
            out[stacks[index * size + offset].path] = png
    return out


def run(config: RunConfig, *, runner: Runner | None = None, sink: SinkOptions | None = None) -> RunReport:
    """Convert ``config.input`` to the OME-Zarr store ``config.output`` (resuming an interrupted run).

    Parameters
    ----------
    config
        The run (input, output, cluster, selection, options); see :mod:`medipy.pipelines.runfile`.
    runner
        An open runner to reuse (else one is opened from ``config.cluster``).
    sink
        Storage options (compression, chunking).

    Returns
    -------
    RunReport
        Also written to ``OUT/report.json`` (and ``OUT/report.html`` with a thumbnail per stack).

    Raises
    ------
    ConfigError
        The output holds something else (see :func:`medipy.pipelines.common.take_output`).
    OutputLockedError
        Another run is writing the output.
    """
    import zarr

    sink = sink or SinkOptions.named(config.options.compression)
    start = time.perf_counter()
    root = os.path.abspath(config.output)  # workers of a distributed cluster have their own directory
    options = config.options
    if options.dry_run:
        with runner_for(config.cluster, runner) as opened:
            planned = plan_input(config.input, opened, selection=config.select, four_d=options.four_d,
                                 progress=options.progress, follow_links=options.follow_links)
        return _report(config, planned, {}, 0, start, {}, dry_run=True)
    command = f"medipy convert {config.input} {root}"
    with take_output(root, fingerprint(config, sink), overwrite=options.overwrite, command=command) as finished:
        if finished is not None:
            return finished
        zarr.open_group(store=root, mode="a")
        with runner_for(config.cluster, runner) as opened:
            planned = plan_input(config.input, opened, selection=config.select, four_d=options.four_d,
                                 progress=options.progress, follow_links=options.follow_links)
            timings = {"scan_and_plan": time.perf_counter() - start}
            made: dict[str, bytes] = {}
            found, resumed = _write(root, planned, opened, sink, options.progress,
                                    made if options.thumbnails else None)
            timings["write"] = time.perf_counter() - start - timings["scan_and_plan"]
            summaries = [stack_summary(s, found.get(s.path, [])) for s in planned.stacks]
            slice_issues = [i for issues in found.values() for i in issues]
            failures, _, skipped = split_issues(planned.issues, planned.root)
            write_root(root, summaries, _sorted(_issues(failures) + [i for i in slice_issues if i.is_failure]),
                       _sorted(_issues(skipped) + [i for i in slice_issues if not i.is_failure]),
                       source=planned.root)
            thumbs = _thumbnails(root, planned.stacks, opened, options.progress, made) if options.thumbnails else {}
        report = _report(config, planned, found, resumed, start, timings)
        write_json(report, root)
        write_html(report, root, thumbs)
        mark_done(root, fingerprint(config, sink))
    return report


def _sorted(issues: list[FileIssue]) -> list[FileIssue]:
    return sorted(issues, key=lambda i: (i.path, i.kind))


def _issues(entries: list[dict[str, str]]) -> list[FileIssue]:
    return [FileIssue(e["path"], e["kind"], e["reason"]) for e in entries]


def _report(config: RunConfig, planned: Planned, found: dict[str, list[FileIssue]], resumed: int, start: float,
            timings: dict[str, float], *, dry_run: bool = False) -> RunReport:
    failures, duplicates, skipped = split_issues(
        planned.issues + [i for issues in found.values() for i in issues], planned.root)
    stacks = [_stack_entry(s, found.get(s.path, [])) for s in planned.stacks]
    warnings = [{"stack": s.path, "warning": w} for s in planned.stacks for w in s.warnings]
    timings = dict(timings, total=time.perf_counter() - start)
    return RunReport("convert", planned.root, config.output, files=len(planned.paths), bytes=planned.bytes,
                     stacks=stacks, excluded=planned.excluded, written=0 if dry_run else len(stacks) - resumed,
                     resumed=resumed, failures=failures, duplicates=duplicates, skipped=skipped, warnings=warnings,
                     timings=timings, dry_run=dry_run)
