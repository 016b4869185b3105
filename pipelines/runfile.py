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

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from medipy.config import from_mapping, load_cluster_section, load_yaml
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
    follow_links
        Follow symbolic links that lead out of the input folder (by default they are listed as unreadable,
        not followed: an export is expected to hold its own files). Links inside it are always followed.
    compression
        convert: the Blosc codec of the arrays (bit-shuffled): ``lz4`` (default: ~1 GB/s per core, CT
        stores ~3x smaller than the DICOM, smaller than gzipped NIfTI) or ``zstd`` (level 1: ~30% smaller
        again, half the speed). See :data:`medipy.engine.zarr_sink.COMPRESSIONS`.
    """

    four_d: bool = True
    thumbnails: bool = True
    dicomdir: bool = True
    overwrite: bool = False
    dry_run: bool = False
    progress: bool = True
    compression: str = "lz4"
    follow_links: bool = False

    def __post_init__(self) -> None:
        from medipy.engine.zarr_sink import COMPRESSIONS

        if self.compression not in COMPRESSIONS:
            raise ConfigError(f"compression {self.compression!r} is not one of {', '.join(COMPRESSIONS)}")


@dataclass(frozen=True)
class RunConfig:
    """A validated run: pipeline, input, output, cluster, selection and options."""

    pipeline: str
    input: str
    output: str | None = None
    cluster: ClusterOptions = field(default_factory=ClusterOptions)
    select: Selection = field(default_factory=Selection)
    options: RunOptions = field(default_factory=RunOptions)


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
    config = from_mapping(RunConfig, data, "", file)
    if config.pipeline not in PIPELINES:
        raise ConfigError(f"{file}: 'pipeline' is {config.pipeline!r}; use one of {', '.join(PIPELINES)}")
    if config.pipeline != "scan" and not config.output:
        raise ConfigError(f"{file}: missing key 'output' (pipeline {config.pipeline}); add e.g. "
                          f"`output: {'out.zarr' if config.pipeline == 'convert' else 'clean-dicom'}`")
    if check_paths and config.input != EXAMPLE and not os.path.exists(config.input):
        raise ConfigError(f"{file}: 'input' {config.input!r} does not exist (relative paths start from "
                          f"{os.getcwd()}); fix the path, or use `input: example`")
    return config


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
    data = load_yaml(name)
    return build_config(data, name, check_paths=check_paths)
