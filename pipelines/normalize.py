"""The normalize pipeline: a DICOM export rewritten as a clean DICOM tree, through the parallel writer.

scan + shuffle (the same stacks as convert; the selection applies) -> the files of the kept stacks, and the
non-image DICOM files (reports, plans...) when nothing is selected -> staged in parallel by
:func:`medipy.engine.writer.write_partition` (UTF-8, ISO_IR 192, public elements only) -> moved into
``Patient/Study/Series`` folders and indexed by a DICOMDIR (:func:`medipy.engine.writer.finalize`) ->
``report.json`` and ``report.html``.

An interrupted run is redone as a whole on re-run (the staged files of the interrupted one are removed, the
tree is rewritten with the same names), so it ends identical to an uninterrupted run.
"""

from __future__ import annotations

import glob
import logging
import os
import secrets
import shutil
import time
from typing import Any

from medipy.engine.checkpoint import write_state
from medipy.engine.cluster import Runner
from medipy.engine.naming import NamingPolicy
from medipy.engine.progress import map_unordered
from medipy.engine.report import RunReport, write_html, write_json
from medipy.engine.scan import IssueKind
from medipy.engine.writer import WritePolicy, finalize, write_partition
from medipy.pipelines.common import Planned, plan_input, runner_for, split_issues, take_output
from medipy.pipelines.runfile import EXAMPLE, RunConfig

__all__ = ["fingerprint", "run"]

logger = logging.getLogger(__name__)

FILES_PER_TASK = 256


def fingerprint(config: RunConfig) -> dict[str, Any]:
    """What makes two runs write the same tree (not where they run)."""
    source = config.input if config.input == EXAMPLE else os.path.abspath(config.input)
    return {"pipeline": "normalize", "input": source, "select": config.select.as_dict(),
            "dicomdir": config.options.dicomdir,
            **({"follow_links": True} if config.options.follow_links else {})}  # older stores: key absent


def _stage(task: tuple[int, list[str], str, WritePolicy]) -> list:
    """One writer task: a batch of files staged (picklable, top level)."""
    partition, paths, staging, policy = task
    return write_partition(paths, staging, policy, partition)


def _items(planned: Planned, selection_active: bool) -> list[str]:
    files = dict.fromkeys(r.path for s in planned.stacks for r in s.records)
    if not selection_active:
        files.update(dict.fromkeys(i.path for i in planned.issues if i.kind == IssueKind.NON_IMAGE))
    return list(files)


def _write(out: str, items: list[str], runner: Runner, policy: WritePolicy, progress: bool):
    for pattern in (".medipy-staging-*", ".medipy-dicomdir-*"):  # staged files of an interrupted run
        for leftover in glob.glob(os.path.join(out, pattern)):
            shutil.rmtree(leftover, ignore_errors=True)
    staging = os.path.join(out, f".medipy-staging-{secrets.token_hex(6)}")
    size = max(1, min(FILES_PER_TASK, -(-len(items) // (4 * max(1, runner.workers)))))
    tasks = [(n, items[i:i + size], staging, policy) for n, i in enumerate(range(0, len(items), size))]
    results: list[list] = [[] for _ in tasks]
    try:
        for index, records in map_unordered(runner, _stage, tasks, desc="write", enabled=progress):
            results[index] = records
        return finalize([r for part in results for r in part], out, staging, policy)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def run(config: RunConfig, *, runner: Runner | None = None) -> RunReport:
    """Rewrite ``config.input`` as a clean DICOM tree in ``config.output`` (with a DICOMDIR).

    Parameters
    ----------
    config
        The run (input, output, cluster, selection, options); see :mod:`medipy.pipelines.runfile`.
    runner
        An open runner to reuse (else one is opened from ``config.cluster``).

    Returns
    -------
    RunReport
        Also written to ``OUT/report.json`` and ``OUT/report.html``.

    Raises
    ------
    ConfigError
        The output holds something else (see :func:`medipy.pipelines.common.take_output`).
    OutputLockedError
        Another run is writing the output.
    """
    start = time.perf_counter()
    out = os.path.abspath(config.output)  # workers of a distributed cluster have their own directory
    options = config.options
    policy = WritePolicy(naming=NamingPolicy(), dicomdir=options.dicomdir)
    if options.dry_run:
        with runner_for(config.cluster, runner) as opened:
            planned = plan_input(config.input, opened, selection=config.select, progress=options.progress,
                                 follow_links=options.follow_links)
        return _report(config, planned, None, start, {})
    command = f"medipy normalize {config.input} {out}"
    with take_output(out, fingerprint(config), overwrite=options.overwrite, command=command) as finished:
        if finished is not None:
            return finished
        with runner_for(config.cluster, runner) as opened:
            planned = plan_input(config.input, opened, selection=config.select, progress=options.progress,
                                 follow_links=options.follow_links)
            timings = {"scan_and_plan": time.perf_counter() - start}
            written = _write(out, _items(planned, config.select.active), opened, policy, options.progress)
            timings["write"] = time.perf_counter() - start - timings["scan_and_plan"]
        report = _report(config, planned, written, start, timings)
        write_json(report, out)
        write_html(report, out, {})
        write_state(out, fingerprint(config), "done")
    return report


def _relative(path: str, root: str) -> str:
    return os.path.relpath(path, root).replace(os.sep, "/") if os.path.isabs(path) else path


def _report(config: RunConfig, planned: Planned, written, start: float, timings: dict[str, float]) -> RunReport:
    failures, duplicates, skipped = split_issues(planned.issues, planned.root)
    failed: set[str] = set()
    if written is not None:
        for f in written.failures:
            failures.append({"path": _relative(f.source, planned.root), "kind": "write", "reason": f.reason})
            failed.add(f.source)
        duplicates += [{"path": _relative(d.source, planned.root), "kind": IssueKind.DUPLICATE,
                        "reason": f"same SOP Instance UID {d.sop_instance_uid} as {d.kept}"}
                       for d in written.duplicates]
    stacks = []
    for s in planned.stacks:
        files = {r.path for r in s.records}
        stacks.append({"path": s.path, "patient_id": s.patient_id, "study_instance_uid": s.study_instance_uid,
                       "series_instance_uid": s.series_instance_uid, "series_number": s.series_number,
                       "series_description": s.series_description, "modality": s.modality,
                       "shape": list(s.shape), "files": len(files), "complete": not files & failed,
                       "warnings": list(s.warnings)})
    warnings = [{"stack": s.path, "warning": w} for s in planned.stacks for w in s.warnings]
    return RunReport("normalize", planned.root, config.output, files=len(planned.paths), bytes=planned.bytes,
                     stacks=stacks, excluded=planned.excluded,
                     written=len(written.written) if written is not None else 0,
                     failures=failures, duplicates=duplicates, skipped=skipped, warnings=warnings,
                     timings=dict(timings, total=time.perf_counter() - start), dry_run=written is None)

