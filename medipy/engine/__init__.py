"""The dask engine: scan an export into header records, shuffle them into series and stacks, assemble lazy
stack arrays and persist them as OME-Zarr (see ``API.md``, "At archive scale").

Submodules are imported on first use, so that ``import medipy.engine`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "ClusterOptions",
    "ConvertOptions",
    "ConvertReport",
    "FileIssue",
    "IssueKind",
    "JobQueueOptions",
    "Runner",
    "ScanOptions",
    "ScannedFile",
    "SeriesPlan",
    "SinkOptions",
    "StackPlan",
    "convert",
    "list_files",
    "load_cluster_options",
    "open_runner",
    "plan_bag",
    "plan_export",
    "plan_files",
    "plan_series",
    "read_block",
    "scan_bag",
    "scan_file",
    "stack_array",
]

_WHERE = {
    "ClusterOptions": "cluster", "JobQueueOptions": "cluster", "Runner": "cluster",
    "load_cluster_options": "cluster", "open_runner": "cluster",
    "ConvertOptions": "conversion", "ConvertReport": "conversion", "convert": "conversion",
    "plan_export": "conversion",
    "FileIssue": "scan", "IssueKind": "scan", "ScanOptions": "scan", "ScannedFile": "scan",
    "list_files": "scan", "scan_bag": "scan", "scan_file": "scan",
    "SeriesPlan": "plan", "StackPlan": "plan", "plan_series": "plan",
    "plan_bag": "shuffle", "plan_files": "shuffle",
    "SinkOptions": "zarr_sink",
    "read_block": "arrays", "stack_array": "arrays",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"medipy.engine.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'medipy.engine' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
