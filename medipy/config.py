"""Validation of YAML files into frozen dataclasses: the one place where medipy reads configuration.

A file is read with ``yaml.safe_load`` only, then checked once against the type hints of the dataclass it
describes (int, bool, str, float, ``X | None``, ``tuple[str, ...]``, nested dataclasses): an unknown key, a
wrong type or a malformed file is a :class:`~medipy.errors.ConfigError` that names the file, the key and the
fix. Used by run files (:mod:`medipy.pipelines.runfile`) and cluster sections
(:func:`medipy.engine.cluster.load_cluster_options`).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from collections.abc import Mapping
from typing import Any

from medipy.errors import ConfigError

__all__ = ["from_mapping", "load_cluster_section", "load_yaml"]

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
        return from_mapping(typing.cast(type, hint), value, key, file)
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


def from_mapping(cls: type, data: Mapping[str, Any], prefix: str, file: str) -> Any:
    """An instance of the dataclass ``cls`` from ``data``, every key and value checked (see module)."""
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


def load_yaml(name: str) -> Any:
    """The content of a YAML file, read with the safe loader; a missing or malformed file is a ConfigError."""
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


def load_cluster_section(path: str | os.PathLike[str]) -> Any:
    """The ``cluster:`` section of a YAML file (a run file, or a file with only that section), validated.

    Raises
    ------
    ConfigError
        No ``cluster`` mapping, an unknown key or a wrong type (the message names the key and the file).
    """
    from medipy.engine.cluster import ClusterOptions

    name = os.fspath(path)
    data = load_yaml(name)
    if not isinstance(data, Mapping) or "cluster" not in data:
        raise ConfigError(f"{name}: no 'cluster:' section; add one, e.g. `cluster: {{scheduler: processes}}`")
    return _convert(data["cluster"], ClusterOptions, "cluster", name)
