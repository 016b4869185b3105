"""The normalize pipeline: a DICOM export rewritten as a clean DICOM tree, through the parallel writer.

scan + shuffle (the same stacks as convert; the selection applies) -> the files of the kept stacks, and the
non-image DICOM files (reports, plans...) when nothing is selected -> staged in parallel by
:func:`medipy.engine.writer.write_partition` (UTF-8, ISO_IR 192, public elements only) -> moved into
``Patient/Study/Series`` folders and indexed by a DICOMDIR (:func:`medipy.engine.writer.finalize`) ->
``report.json`` and ``report.html``.

An interrupted run resumes: each write task stages its files in its own folder of ``OUT/.medipy-staging``
(named from a hash of its input paths) and records what it staged in a ``done.json`` there, written last; a
re-run with the same tasks takes the records of every task whose manifest and staged files survived and
writes the others again, then moves everything into the tree. It ends identical to an uninterrupted run,
whatever the workers of either run (tasks are cut from the file list alone).
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import logging
import os
import shutil
import time
from typing import Any

from medipy.engine.checkpoint import mark_done, write_text_atomic
from medipy.engine.cluster import Runner
from medipy.engine.naming import NamingPolicy
from medipy.engine.progress import map_unordered
from medipy.engine.report import RunReport, write_html, write_json
from medipy.engine.scan import IssueKind
from medipy.engine.writer import Failure, StagedFile, WritePolicy, finalize, write_partition
from medipy.pipelines.common import Planned, plan_input, runner_for, split_issues, take_output
from medipy.pipelines.runfile import EXAMPLE, RunConfig

__all__ = ["fingerprint", "run"]

logger = logging.getLogger(__name__)

FILES_PER_TASK = 256
MIN_TASKS = 64  # for load balance on small exports
STAGING = ".medipy-staging"  # inside the output: staged files are moved into the tree, not copied
MANIFEST = "done.json"  # a task's records, written after its last staged file


def fingerprint(config: RunConfig) -> dict[str, Any]:
    """What makes two runs write the same tree (not where they run)."""
    source = config.input if config.input == EXAMPLE else os.path.abspath(config.input)
    return {"pipeline": "normalize", "input": source, "select": config.select.as_dict(),
            "dicomdir": config.options.dicomdir,
            **({"follow_links": True} if config.options.follow_links else {})}  # older stores: key absent


def _task_folder(paths: list[str]) -> str:
    """The staging sub-folder of a write task: a hash of its input paths (the same task, the same folder)."""
    return hashlib.sha256("\0".join(paths).encode("utf-8", "surrogateescape")).hexdigest()[:24]


def _stage(task: tuple[int, list[str], str, WritePolicy]) -> list[StagedFile | Failure]:
    """One writer task: a batch of files staged in its folder, then its manifest (picklable, top level)."""
    partition, paths, staging, policy = task
    name = _task_folder(paths)
    records = write_partition(paths, os.path.join(staging, name), policy, partition)
    records = [dataclasses.replace(r, staged=f"{name}/{r.staged}") if isinstance(r, StagedFile) else r
               for r in records]
    manifest = [{"staged": dataclasses.asdict(r)} if isinstance(r, StagedFile) else {"failed": dataclasses.asdict(r)}
                for r in records]
    write_text_atomic(os.path.join(staging, name, MANIFEST), json.dumps(manifest, ensure_ascii=False))
    return records


def _staged_before(task: tuple[int, list[str], str, WritePolicy]) -> list[StagedFile | Failure] | None:
    """The records of a task staged by an interrupted run, when its manifest and every staged file survived."""
    partition, paths, staging, _ = task
    folder = _task_folder(paths)
    try:
        with open(os.path.join(staging, folder, MANIFEST), encoding="utf-8") as handle:
            manifest = json.load(handle)
        records: list[StagedFile | Failure] = []
        for position, entry in enumerate(manifest):
            if "failed" in entry:
                records.append(Failure(**entry["failed"]))
                continue
            fields = entry["staged"]
            staged = StagedFile(**{**fields, "order": (partition, position),
                                   **{k: tuple(fields[k]) for k in ("patient", "study", "series")}})
            parent, name = staged.staged.rpartition("/")[::2]
            if parent != folder or not name.replace("_", "").isdigit():  # only ever its own staged files
                return None
            if not os.path.isfile(os.path.join(staging, folder, name)):
                return None  # moved into the tree by the interrupted run's last step: staged again
            records.append(staged)
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return records if len(records) == len(paths) else None


def _items(planned: Planned, selection_active: bool) -> list[str]:
    files = dict.fromkeys(r.path for s in planned.stacks for r in s.records)
    if not selection_active:
        files.update(dict.fromkeys(i.path for i in planned.issues if i.kind == IssueKind.NON_IMAGE))
    return list(files)


def _write(out: str, items: list[str], runner: Runner, policy: WritePolicy, progress: bool):
    for pattern in (".medipy-staging-*", ".medipy-dicomdir-*"):  # left by an interrupted run (or older medipy)
        for leftover in glob.glob(os.path.join(out, pattern)):
            shutil.rmtree(leftover, ignore_errors=True)
    staging = os.path.join(out, STAGING)  # kept by an interrupted run of this command: resumed
    # tasks sized from the file count only (not the workers): a re-run on other workers finds the same tasks
    size = max(1, min(FILES_PER_TASK, -(-len(items) // MIN_TASKS)))
    tasks = [(n, items[i:i + size], staging, policy) for n, i in enumerate(range(0, len(items), size))]
    results: list[list[StagedFile | Failure]] = [[] for _ in tasks]
    todo = []
    for index, task in enumerate(tasks):
        before = _staged_before(task)
        if before is None:
            todo.append(task)
        else:
            results[index] = before
    if len(todo) < len(tasks):
        logger.info("%s: %d of %d write tasks staged by the interrupted run are kept", out, len(tasks) - len(todo),
                    len(tasks))
    for index, records in map_unordered(runner, _stage, todo, desc="write", enabled=progress):
        results[todo[index][0]] = records
    return finalize([r for part in results for r in part], out, staging, policy)  # removes the staging folder


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
        mark_done(out, fingerprint(config))
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

