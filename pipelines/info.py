"""What a converted store holds: its stacks (with their source series), failures, skipped files, run state.

Read from the store only (root listing, image attributes, ``report.json``); nothing is computed.
"""

from __future__ import annotations

import os
from typing import Any

from medipy.engine.checkpoint import read_state
from medipy.engine.report import read_report
from medipy.engine.zarr_sink import medipy_attributes
from medipy.errors import ConfigError

__all__ = ["describe", "format_info"]


def describe(store: str | os.PathLike[str]) -> dict[str, Any]:
    """The content of a store written by ``medipy convert``.

    Parameters
    ----------
    store
        The zarr store (folder).

    Returns
    -------
    dict
        ``store``, ``state`` (``done``, ``running`` (interrupted: re-run the command to resume) or
        ``unknown``), ``source``, ``stacks`` (root listing entries, each with ``complete`` read from its
        image group), ``failures``, ``skipped``, ``report`` (counts and timings of the run, if finished).

    Raises
    ------
    ConfigError
        ``store`` is not a zarr store written by medipy.
    """
    import zarr

    name = os.fspath(store)
    try:
        group = zarr.open_group(store=name, mode="r")
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise ConfigError(f"{name}: not a zarr store ({exc}); give the output of `medipy convert`") from exc
    listing = medipy_attributes(group)
    state = read_state(name) or {}
    stacks = listing.get("stacks")
    if stacks is None:  # interrupted before the root listing: list the image groups themselves
        stacks = []
        for path, node in sorted(group.groups()):
            for child_path, child in sorted(node.groups()):
                attrs = medipy_attributes(child)
                stacks.append({"path": f"{path}/{child_path}", "modality": attrs.get("modality"),
                               "series_description": attrs.get("series_description"), "shape": attrs.get("shape"),
                               "series_instance_uid": attrs.get("series_instance_uid"),
                               "patient_id": attrs.get("patient_id")})
    for entry in stacks:
        try:
            entry["complete"] = bool(medipy_attributes(group[entry["path"]]).get("complete"))
        except KeyError:
            entry["complete"] = False
    if not stacks and not state:
        raise ConfigError(f"{name}: holds no medipy image; give the output of `medipy convert`")
    report = read_report(name)
    return {
        "store": name,
        "state": state.get("state", "unknown"),
        "source": listing.get("source"),
        "stacks": stacks,
        "failures": listing.get("failures", []),
        "skipped": listing.get("skipped", []),
        "report": None if report is None else {"counts": report.counts(), "timings": report.timings},
    }


def format_info(info: dict[str, Any], *, width: int = 36) -> str:
    """The description as a readable table."""
    lines = [f"{info['store']}: {len(info['stacks'])} stacks from {info['source']} (run state: {info['state']})"]
    if info["state"] == "running":
        lines.append("  interrupted run: re-run the same command to finish it")
    header = f"  {'modality':<8} {'description':<{width}} {'shape':<18} {'complete':<8} path"
    lines += [header, "  " + "-" * (len(header) - 2)]
    for s in info["stacks"]:
        shape = "x".join(map(str, s.get("shape") or []))
        description = str(s.get("series_description") or "")[:width]
        lines.append(f"  {str(s.get('modality') or '')[:8]:<8} {description:<{width}} {shape:<18} "
                     f"{'yes' if s['complete'] else 'NO':<8} {s['path']}")
    if info["failures"]:
        lines.append(f"{len(info['failures'])} failed files:")
        lines += [f"  {f['path']} [{f['kind']}]: {f['reason']}" for f in info["failures"][:20]]
    if info["skipped"]:
        lines.append(f"{len(info['skipped'])} skipped files (non-image, DICOMDIR, duplicates)")
    return "\n".join(lines)
