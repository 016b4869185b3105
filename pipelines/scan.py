"""The scan pipeline: an inventory of an export (patients, studies, series, stacks, files, modalities,
problems) from its headers only; nothing is written.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

from medipy.engine.cluster import Runner
from medipy.pipelines.common import plan_input, runner_for, split_issues
from medipy.pipelines.runfile import RunConfig

__all__ = ["format_table", "run"]

logger = logging.getLogger(__name__)


def run(config: RunConfig, *, runner: Runner | None = None) -> dict[str, Any]:
    """The inventory of ``config.input`` (after ``config.select``).

    Parameters
    ----------
    config
        The run; ``output`` and the write options are not used.
    runner
        An open runner to reuse (else one is opened from ``config.cluster``).

    Returns
    -------
    dict
        ``source``, ``files``, ``patients``, ``studies``, ``series``, ``stacks`` (counts), ``modalities``
        (stacks per modality), ``problems`` (files per kind), ``series_list`` (one entry per series: UIDs,
        number, description, modality, stacks, files, shapes), ``failures``, ``duplicates``, ``skipped``,
        ``seconds``.

    Examples
    --------
    >>> inventory = run(RunConfig("scan", "example"))  # doctest: +SKIP
    >>> inventory["stacks"]  # doctest: +SKIP
    8
    """
    start = time.perf_counter()
    with runner_for(config.cluster, runner) as opened:
        planned = plan_input(config.input, opened, selection=config.select, four_d=config.options.four_d,
                             progress=config.options.progress, follow_links=config.options.follow_links)
    failures, duplicates, skipped = split_issues(planned.issues, planned.root)
    series: dict[str, dict[str, Any]] = {}
    for stack in planned.stacks:
        entry = series.setdefault(stack.series_instance_uid, {
            "patient_id": stack.patient_id, "study_instance_uid": stack.study_instance_uid,
            "series_instance_uid": stack.series_instance_uid, "series_number": stack.series_number,
            "series_description": stack.series_description, "modality": stack.modality,
            "stacks": 0, "files": 0, "shapes": []})
        entry["stacks"] += 1
        entry["files"] += stack.files
        entry["shapes"].append(list(stack.shape))
    problems = Counter(i["kind"] for i in failures + duplicates + skipped)
    return {
        "source": planned.root,
        "files": len(planned.paths),
        "patients": len({s.patient_id for s in planned.stacks}),
        "studies": len({s.study_instance_uid for s in planned.stacks}),
        "series": len(series),
        "stacks": len(planned.stacks),
        "excluded": planned.excluded,
        "modalities": dict(sorted(Counter(s.modality or "?" for s in planned.stacks).items())),
        "problems": dict(sorted(problems.items())),
        "series_list": list(series.values()),
        "failures": failures,
        "duplicates": duplicates,
        "skipped": skipped,
        "seconds": time.perf_counter() - start,
    }


def format_table(inventory: dict[str, Any], *, width: int = 40) -> str:
    """The inventory as a readable table (one row per series, then the totals and the problems)."""
    header = f"{'patient':<14} {'modality':<8} {'#':>4} {'description':<{width}} {'stacks':>6} {'files':>6}  shape"
    lines = [header, "-" * len(header)]
    for s in inventory["series_list"]:
        description = (s["series_description"] or "(no description)")[:width]
        number = "" if s["series_number"] is None else str(s["series_number"])
        shape = "x".join(map(str, s["shapes"][0])) + (" ..." if len(s["shapes"]) > 1 else "")
        lines.append(f"{str(s['patient_id'])[:14]:<14} {str(s['modality'])[:8]:<8} {number:>4} "
                     f"{description:<{width}} {s['stacks']:>6} {s['files']:>6}  {shape}")
    lines.append("-" * len(header))
    lines.append(f"{inventory['files']} files: {inventory['patients']} patients, {inventory['studies']} studies, "
                 f"{inventory['series']} series, {inventory['stacks']} stacks"
                 + (f" ({inventory['excluded']} excluded by the selection)" if inventory["excluded"] else ""))
    if inventory["modalities"]:
        lines.append("modalities: " + ", ".join(f"{k} {v}" for k, v in inventory["modalities"].items()))
    if inventory["problems"]:
        lines.append("problems: " + ", ".join(f"{k} {v}" for k, v in inventory["problems"].items()))
    for failure in inventory["failures"][:20]:
        lines.append(f"  {failure['path']} [{failure['kind']}]: {failure['reason']}")
    if len(inventory["failures"]) > 20:
        lines.append(f"  ... {len(inventory['failures']) - 20} more (use --json for all)")
    return "\n".join(lines)
