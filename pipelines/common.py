"""What every pipeline starts with: the input files, their series plans (scan + shuffle), the selection,
and an output taken for one run (lock, run state, resume or refuse).

Also the bundled example: a few of pydicom's test files (CT, MR, RT dose volume, colour ultrasound, a 5-slice
CT series, a structured report that is skipped), installed with pydicom, so that ``medipy convert --example``
runs anywhere without network.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

from medipy.engine.checkpoint import LOCK_NAME, OutputLock, differences, read_state, remove_leftovers, write_state
from medipy.engine.cluster import ClusterOptions, Runner, open_runner
from medipy.engine.plan import SeriesPlan, StackPlan
from medipy.engine.progress import compute_with_progress
from medipy.engine.report import RunReport, read_report
from medipy.engine.scan import FileIssue, IssueKind, list_files
from medipy.engine.selection import Selection
from medipy.engine.shuffle import plan_files
from medipy.engine.walk import collect_files
from medipy.errors import ConfigError
from medipy.pipelines.runfile import EXAMPLE

__all__ = ["Planned", "example_files", "input_files", "plan_input", "runner_for",
           "split_issues", "take_output"]

logger = logging.getLogger(__name__)

EXAMPLE_FILES = ("CT_small.dcm", "MR_small.dcm", "rtdose.dcm", "examples_overlay.dcm", "examples_rgb_color.dcm",
                 "image_dfl.dcm", "SC_rgb_rle_2frame.dcm", "reportsi.dcm", "dicomdirtests/98892001/CT5N")


def example_files() -> list[str]:
    """The files of the bundled example (pydicom's test files; no network)."""
    from pydicom.data import get_testdata_file

    found = get_testdata_file("CT_small.dcm")
    if not isinstance(found, str):
        raise ConfigError("pydicom's bundled test files are missing: reinstall pydicom")
    folder = os.path.dirname(found)
    return list_files([os.path.join(folder, *name.split("/")) for name in EXAMPLE_FILES])


def input_files(source: str, *, follow_links: bool = False) -> tuple[list[str], str, list[FileIssue]]:
    """The files of ``source`` (``"example"``: the bundled example), the folder their paths are relative to,
    and the entries the walk refused (links leaving the input unless ``follow_links``, loops, unreadable
    folders, FIFOs)."""
    if source == EXAMPLE:
        paths = example_files()
        return paths, os.path.commonpath([os.path.dirname(p) for p in paths]), []
    source = os.path.abspath(source)  # workers of a distributed cluster have their own directory
    walked = collect_files(source, follow_links=follow_links)
    return walked.paths, source if os.path.isdir(source) else os.path.dirname(source), walked.issues


@dataclass
class Planned:
    """An input, scanned and planned: the stacks kept by the selection and the files that yield none."""

    paths: list[str]
    root: str
    plans: list[SeriesPlan]
    stacks: list[StackPlan]
    excluded: int
    issues: list[FileIssue]  # absolute paths

    @property
    def bytes(self) -> int:
        """Total size of the input files."""
        return sum(os.path.getsize(p) for p in self.paths if os.path.isfile(p))


def plan_input(source: str, runner: Runner, *, selection: Selection, four_d: bool = True,
               progress: bool = True, follow_links: bool = False) -> Planned:
    """Scan and shuffle ``source`` into series plans (with a progress bar), then apply ``selection``."""
    paths, root, walk_issues = input_files(source, follow_links=follow_links)
    logger.info("%d files to scan under %s", len(paths), root)
    compute = partial(compute_with_progress, runner, desc="scan", enabled=progress)
    plans, issues = plan_files(paths, runner, four_d=four_d, compute=compute)
    stacks = [s for p in plans for s in p.stacks]
    kept = [s for s in stacks if selection.keeps(s)]
    all_issues = walk_issues + list(issues) + [i for p in plans for i in p.issues]
    return Planned(paths, root, plans, kept, len(stacks) - len(kept), all_issues)


def split_issues(issues: list[FileIssue], root: str) -> tuple[list[dict], list[dict], list[dict]]:
    """Failures, duplicates and skipped files, relative to ``root``, sorted, as dicts."""
    relative = sorted((i.relative_to(root) for i in issues), key=lambda i: (i.path, i.kind))
    failures = [i.as_dict() for i in relative if i.is_failure]
    duplicates = [i.as_dict() for i in relative if i.kind == IssueKind.DUPLICATE]
    skipped = [i.as_dict() for i in relative if not i.is_failure and i.kind != IssueKind.DUPLICATE]
    return failures, duplicates, skipped


@contextmanager
def runner_for(cluster: ClusterOptions, runner: Runner | None) -> Iterator[Runner]:
    """``runner`` if given, else one opened (and closed) from ``cluster``."""
    if runner is not None:
        yield runner
        return
    with open_runner(cluster) as opened:
        yield opened


@contextmanager
def take_output(output: str, fingerprint: dict[str, Any], *, overwrite: bool, command: str
                ) -> Iterator[RunReport | None]:
    """Lock ``output`` for one run and decide what to do with what it holds.

    Yields the report of a finished run of the same command (nothing to do), or None (the caller writes;
    a ``running`` output of the same command is resumed). On a normal exit the state is left as the caller
    set it; on an error or an interruption it stays ``running``, so that a re-run resumes.

    Raises
    ------
    ConfigError
        ``output`` holds something else (another command's output, or files not written by medipy) and
        ``overwrite`` is false.
    OutputLockedError
        Another run is writing into ``output``.
    """
    with OutputLock(output, command):
        state = read_state(output)
        content = [n for n in os.listdir(output) if n != LOCK_NAME]
        if overwrite:
            _clear(output, content)
        elif state is None and content:
            raise ConfigError(f"{output} exists and was not written by medipy ({len(content)} entries); choose "
                              f"another output, or pass --overwrite (options.overwrite: true) to replace it")
        elif state is not None and state.get("fingerprint") != fingerprint:
            changed = differences(state.get("fingerprint") or {}, fingerprint)
            raise ConfigError(f"{output} was written by another command (it differs in: {', '.join(changed)}); "
                              f"re-run that command to finish it, choose another output, or pass --overwrite")
        elif state is not None and state.get("state") == "done":
            report = read_report(output)
            if report is not None:
                report.nothing_to_do = True
                yield report
                return
        elif state is not None:
            logger.warning("%s: resuming an interrupted run (what is complete is kept)", output)
            remove_leftovers(output)
        write_state(output, fingerprint, "running")
        yield None


def _clear(output: str, content: list[str]) -> None:
    for name in content:
        path = os.path.join(output, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
