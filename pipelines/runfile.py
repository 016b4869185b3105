"""Run files: a YAML file that says which pipeline runs on what, where, on which stacks, with which options.

The file is read with ``yaml.safe_load`` and validated once, into frozen dataclasses (the cluster section is
:class:`~medipy.engine.cluster.ClusterOptions` itself). Every mistake is a :class:`~medipy.errors.ConfigError`
naming the file, the key and the fix::

    pipeline: convert            # convert | normalize | scan
    input: /data/export          # a folder, a DICOMDIR or a file; "example": medipy's bundled example
    output: /data/export.zarr    # the zarr store (convert) or folder (normalize); not used by scan
    cluster:                     # see medipy.engine.cluster.ClusterOptions (default: local processes)
      scheduler: processes
    select: {modality: [CT]}     # see medipy.engine.selection.Selection
    options: {four_d: true}      # see RunOptions

Relative paths are relative to the current directory (where ``medipy run`` is started).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from medipy.engine.cluster import ClusterOptions
from medipy.engine.selection import Selection
from medipy.errors import ConfigError

__all__ = ["EXAMPLE", "PIPELINES", "RunConfig", "RunOptions", "build_config", "load_cluster_section", "load_run_file"]

PIPELINES = ("convert", "normalize", "scan")
EXAMPLE = "example"  #: the ``input`` that names medipy's bundled example (pydicom's test files)


@dataclass(frozen=True)
class RunOptions:
    """Options of a run, shared by the pipelines.

    Attributes
    ----------
    four_d
        convert: write volumes of one geometry as one (t, z, y, x) image.
    thumbnails
        convert: draw one thumbnail per stack in ``report.html``.
    dicomdir
        normalize: write a DICOMDIR at the root of the output folder.
    overwrite
        Replace an output made by another command (by default such an output is refused).
    dry_run
        Scan and plan, print what would be written, write nothing.
    progress
        Progress bars on a terminal.
    """

    four_d: bool = True
    thumbnails: bool = True
    dicomdir: bool = True
    overwrite: bool = False
    dry_run: bool = False
    progress: bool = True


@dataclass(frozen=True)
class RunConfig:
    """A validated run: pipeline, input, output, cluster, selection and options."""

    pipeline: str
    input: str
    output: str | None = None
    cluster: ClusterOptions = field(default_factory=ClusterOptions)
    select: Selection = field(default_factory=Selection)
    options: RunOptions = field(default_factory=RunOptions)


_EXAMPLES = {int: "8", bool: "true", str: "text", float: "1.5"}


def _describe(kind: Any) -> str:
    if kind is int:
        return "an integer"
    if kind is bool:
        return "true or false"
    if kind is str:
        return "a string"
    if dataclasses.is_dataclass(kind):
        return "a mapping"
    return getattr(kind, "__name__", str(kind))


def _convert(value: Any, hint: Any, key: str, file: str) -> Any:
    """``value`` checked against the type ``hint`` (int, bool, str, X | None, tuple[str, ...], dataclass)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return None if value is None else _convert(value, options[0], key, file)
    if dataclasses.is_dataclass(hint):
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise ConfigError(f"{file}: '{key}' must be a mapping of keys (got {value!r}); write it as "
                              f"`{key.rsplit('.', 1)[-1]}:` followed by indented `key: value` lines")
        return _build(hint, value, key, file)
    if origin is tuple:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
            raise ConfigError(f"{file}: '{key}' must be a string or a list of strings (got {value!r}); "
                              f"e.g. `{key.rsplit('.', 1)[-1]}: [A, B]`")
        return tuple(items)
    ok = isinstance(value, hint) and not (hint is int and isinstance(value, bool))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        ok, value = True, float(value)
    if not ok:
        raise ConfigError(f"{file}: '{key}' must be {_describe(hint)}, not {value!r} ({type(value).__name__}); "
                          f"e.g. `{key.rsplit('.', 1)[-1]}: {_EXAMPLES.get(hint, '...')}`")
    return value


def _build(cls: type, data: Mapping[str, Any], prefix: str, file: str) -> Any:
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    values: dict[str, Any] = {}
    for key, value in data.items():
        where = f"{prefix}.{key}" if prefix else str(key)
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            section = f"'{prefix}'" if prefix else "a run file"
            raise ConfigError(f"{file}: unknown key '{where}'; {hint}the keys of {section} are: {', '.join(known)}")
        values[key] = _convert(value, hints[key], where, file)
    try:
        return cls(**values)
    except ConfigError as exc:
        raise ConfigError(f"{file}: '{prefix or 'run file'}': {exc}") from exc


def build_config(data: Any, file: str = "<run file>", *, check_paths: bool = True) -> RunConfig:
    """Validate a parsed run file into a :class:`RunConfig`.

    Parameters
    ----------
    data
        What ``yaml.safe_load`` returned.
    file
        The file name (for messages).
    check_paths
        Check that ``input`` exists.

    Raises
    ------
    ConfigError
        Not a mapping, an unknown key, a wrong type, an unknown pipeline, a missing or absent input, a
        missing output: the message names the file, the key and the fix.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{file}: a run file is a mapping of keys (pipeline, input, output, cluster, select, "
                          f"options), not {type(data).__name__}; see configs/local.yaml")
    for key in ("pipeline", "input"):
        if key not in data or data[key] in (None, ""):
            fix = ("`pipeline: convert` (or normalize, scan)" if key == "pipeline" else
                   "`input: /path/to/export` (a folder, a DICOMDIR or a file; `input: example` for the example)")
            raise ConfigError(f"{file}: missing key '{key}'; add {fix}")
    config = _build(RunConfig, data, "", file)
    if config.pipeline not in PIPELINES:
        raise ConfigError(f"{file}: 'pipeline' is {config.pipeline!r}; use one of {', '.join(PIPELINES)}")
    if config.pipeline != "scan" and not config.output:
        raise ConfigError(f"{file}: missing key 'output' (pipeline {config.pipeline}); add e.g. "
                          f"`output: {'out.zarr' if config.pipeline == 'convert' else 'clean-dicom'}`")
    if check_paths and config.input != EXAMPLE and not os.path.exists(config.input):
        raise ConfigError(f"{file}: 'input' {config.input!r} does not exist (relative paths start from "
                          f"{os.getcwd()}); fix the path, or use `input: example`")
    return config


def _load_yaml(name: str) -> Any:
    import yaml

    try:
        with open(name, encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except FileNotFoundError as exc:
        raise ConfigError(f"{name}: no such run file; see configs/ for examples") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ConfigError(f"{name}: not valid YAML{where}: {getattr(exc, 'problem', exc)}; check the "
                          f"indentation and quote values with ':' or '#'") from exc


def load_cluster_section(path: str | os.PathLike[str]) -> ClusterOptions:
    """The ``cluster:`` section of a YAML file (a run file, or a file with only that section), validated.

    Raises
    ------
    ConfigError
        No ``cluster`` mapping, an unknown key or a wrong type (the message names the key and the file).
    """
    name = os.fspath(path)
    data = _load_yaml(name)
    if not isinstance(data, Mapping) or "cluster" not in data:
        raise ConfigError(f"{name}: no 'cluster:' section; add one, e.g. `cluster: {{scheduler: processes}}`")
    return _convert(data["cluster"], ClusterOptions, "cluster", name)


def load_run_file(path: str | os.PathLike[str], *, check_paths: bool = True) -> RunConfig:
    """Read and validate a YAML run file (safe loader only).

    Parameters
    ----------
    path
        The run file.
    check_paths
        Check that ``input`` exists.

    Returns
    -------
    RunConfig

    Raises
    ------
    ConfigError
        The file is missing, not YAML, or not a valid run file (see :func:`build_config`).

    Examples
    --------
    >>> config = load_run_file("configs/local.yaml")  # doctest: +SKIP
    >>> config.pipeline, config.cluster.scheduler  # doctest: +SKIP
    ('convert', 'processes')
    """
    name = os.fspath(path)
    data = _load_yaml(name)
    return build_config(data, name, check_paths=check_paths)
