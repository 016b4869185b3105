"""The run report: what a run did, as JSON in the output, a terminal summary, and an HTML contact sheet.

``report.json`` holds the counts, timings and throughput, each stack written (with its source series), each
failure (file, kind, reason), the duplicates, the skipped files and the geometry warnings (uneven spacing,
gantry tilt, missing slices). ``report.html`` is the same for a person: one thumbnail per stack (see
:mod:`medipy.engine.thumbnails`), inlined as base64 PNG so that the page is one self-contained file.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from medipy.engine.checkpoint import write_text_atomic

__all__ = ["REPORT_HTML", "REPORT_JSON", "RunReport", "read_report", "write_html", "write_json"]

logger = logging.getLogger(__name__)

REPORT_JSON = "report.json"
REPORT_HTML = "report.html"


@dataclass
class RunReport:
    """What a pipeline run did (JSON-ready: plain lists and dicts).

    Attributes
    ----------
    pipeline, source, output
        Which pipeline, on what, into what.
    files, bytes
        Input files listed and their total size.
    stacks
        One entry per stack kept (path, source series, shape, complete, ``warnings``).
    excluded
        Stacks left out by the selection.
    written, resumed
        Stacks (convert) or files (normalize) written by this run; stacks found complete and not redone.
    failures, duplicates, skipped
        ``{"path", "kind", "reason"}`` entries: files that failed, duplicate instances, files skipped on purpose.
    warnings
        ``{"stack", "warning"}`` entries: geometry warnings of the stacks.
    timings
        Seconds per step and in total.
    nothing_to_do, dry_run
        The output was already finished; nothing was written on purpose.
    """

    pipeline: str
    source: str
    output: str | None
    files: int = 0
    bytes: int = 0
    stacks: list[dict[str, Any]] = field(default_factory=list)
    excluded: int = 0
    written: int = 0
    resumed: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)
    duplicates: list[dict[str, str]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    nothing_to_do: bool = False
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        """True when no file failed and every stack is complete."""
        return not self.failures and all(s.get("complete", True) for s in self.stacks)

    def counts(self) -> dict[str, int]:
        """The numbers that describe the result (the same for a resumed and an uninterrupted run)."""
        return {"files": self.files, "stacks": len(self.stacks), "excluded": self.excluded,
                "incomplete": sum(not s.get("complete", True) for s in self.stacks),
                "failures": len(self.failures), "duplicates": len(self.duplicates), "skipped": len(self.skipped),
                "warnings": len(self.warnings)}

    def as_dict(self) -> dict[str, Any]:
        """Plain dict, with the counts and the throughput."""
        data = asdict(self)
        total = self.timings.get("total") or 0.0
        data["counts"] = self.counts()
        data["throughput"] = {"files_per_s": self.files / total if total else None,
                              "mb_per_s": self.bytes / 1e6 / total if total else None}
        data["ok"] = self.ok
        return data

    def summary(self) -> str:
        """A few lines for the terminal."""
        if self.nothing_to_do:
            return f"{self.output}: already complete ({len(self.stacks)} stacks); nothing to do"
        c = self.counts()
        total = self.timings.get("total", 0.0)
        rate = f", {self.files / total:.0f} files/s, {self.bytes / 1e6 / total:.1f} MB/s" if total else ""
        verb = "would write" if self.dry_run else f"{self.pipeline}:"
        lines = [f"{verb} {c['files']} files -> {c['stacks']} stacks in {self.output or '(no output)'} "
                 f"in {total:.1f} s{rate}"]
        if self.resumed:
            lines.append(f"  resumed: {self.resumed} stacks were already complete, {self.written} written now")
        details = [f"{c[k]} {k}" for k in ("failures", "incomplete", "duplicates", "skipped", "excluded", "warnings")
                   if c[k]]
        if details:
            lines.append("  " + ", ".join(details))
        for failure in self.failures[:10]:
            lines.append(f"  failed: {failure['path']} [{failure['kind']}]: {failure['reason']}")
        if len(self.failures) > 10:
            lines.append(f"  ... and {len(self.failures) - 10} more failures (see {REPORT_JSON})")
        return "\n".join(lines)


def write_json(report: RunReport, folder: str | os.PathLike[str]) -> str:
    """Write ``report.json`` into ``folder`` (atomically); returns its path."""
    path = os.path.join(os.fspath(folder), REPORT_JSON)
    write_text_atomic(path, json.dumps(report.as_dict(), indent=1, ensure_ascii=False))
    return path


def read_report(folder: str | os.PathLike[str]) -> RunReport | None:
    """The report of a finished run in ``folder``, or None."""
    path = os.path.join(os.fspath(folder), REPORT_JSON)
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    names = set(RunReport.__dataclass_fields__)
    return RunReport(**{k: v for k, v in data.items() if k in names})


_STYLE = """body{font-family:sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse}
td,th{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top;font-size:13px}
img{background:#000;image-rendering:pixelated}.bad{color:#b00}.warn{color:#a60}code{font-size:12px}"""


def _row(stack: dict[str, Any], png: bytes | None) -> str:
    image = (f'<img alt="{html.escape(stack["path"])}" src="data:image/png;base64,'
             f'{base64.b64encode(png).decode("ascii")}">' if png else "(no thumbnail)")
    warnings = "".join(f'<div class="warn">{html.escape(w)}</div>' for w in stack.get("warnings", []))
    state = "" if stack.get("complete", True) else '<div class="bad">incomplete</div>'
    return (f"<tr><td>{image}</td><td><b>{html.escape(str(stack.get('series_description') or ''))}</b><br>"
            f"{html.escape(str(stack.get('modality') or ''))} {html.escape(str(stack.get('shape')))}<br>"
            f"<code>{html.escape(stack['path'])}</code><br>patient {html.escape(str(stack.get('patient_id')))}"
            f"{state}{warnings}</td></tr>")


def write_html(report: RunReport, folder: str | os.PathLike[str], thumbnails: dict[str, bytes]) -> str:
    """Write ``report.html`` (summary, one thumbnail per stack, failures) into ``folder``; returns its path."""
    rows = "\n".join(_row(s, thumbnails.get(s["path"])) for s in report.stacks)
    problems = "\n".join(
        f"<tr><td><code>{html.escape(f['path'])}</code></td><td>{html.escape(f['kind'])}</td>"
        f"<td>{html.escape(f['reason'])}</td></tr>" for f in report.failures + report.duplicates)
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>medipy {html.escape(report.pipeline)} "
            f"report</title><style>{_STYLE}</style></head><body>"
            f"<h1>medipy {html.escape(report.pipeline)}</h1><pre>{html.escape(report.summary())}</pre>"
            f"<h2>Stacks ({len(report.stacks)})</h2><table>{rows}</table>"
            f"<h2>Failures and duplicates ({len(report.failures) + len(report.duplicates)})</h2>"
            f"<table>{problems}</table></body></html>")
    path = os.path.join(os.fspath(folder), REPORT_HTML)
    write_text_atomic(path, page)
    return path
