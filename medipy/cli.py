"""The ``medipy`` command: ``main(argv) -> int``, the only place that configures logging.

Subcommands are argparse subparsers; each parses its arguments, builds option dataclasses and calls a
keyword-only library function.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from medipy.errors import MedipyError

__all__ = ["main"]

logger = logging.getLogger("medipy.cli")

_SCHEDULER_HELP = ("synchronous, threads, processes (default), distributed (a local dask.distributed cluster), "
                   "or the address of a running dask scheduler (tcp://host:port)")


def _convert_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "convert", help="convert a DICOM export (folder, DICOMDIR) to an OME-Zarr store",
        description="Scan every file of EXPORT (headers only), group them into series and stacks, and write one "
                    "OME-Zarr image per stack to OUT (zarr v3). Files that are not DICOM or are broken are "
                    "listed in the store's root attributes, never fatal.")
    parser.add_argument("export", help="a folder (walked recursively), a DICOMDIR, or one file")
    parser.add_argument("output", help="the zarr store to create, e.g. out.zarr")
    parser.add_argument("--scheduler", default="processes", help=_SCHEDULER_HELP)
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: CPU count)")
    parser.add_argument("--cluster", metavar="YAML", default=None,
                        help="a YAML file with a 'cluster:' mapping (SLURM/PBS via dask-jobqueue); overrides "
                             "--scheduler")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    parser.add_argument("--no-4d", dest="four_d", action="store_false",
                        help="write every stack as its own 3D image (no (t, z, y, x) grouping)")
    parser.set_defaults(run=_run_convert)


def _run_convert(args: argparse.Namespace) -> int:
    from medipy.engine.cluster import ClusterOptions, load_cluster_options
    from medipy.engine.conversion import ConvertOptions, convert

    cluster = (load_cluster_options(args.cluster) if args.cluster
               else ClusterOptions.from_cli(args.scheduler, args.workers))
    report = convert(args.export, args.output, cluster=cluster,
                     options=ConvertOptions(four_d=args.four_d, overwrite=args.overwrite))
    for failure in report.failures:
        logger.warning("%s [%s]: %s", failure.path, failure.kind, failure.reason)
    incomplete = sum(not s["complete"] for s in report.stacks)
    print(f"{report.files} files -> {len(report.stacks)} images in {report.output} "
          f"({len(report.failures)} failed files, {len(report.skipped)} skipped, {incomplete} incomplete images) "
          f"in {report.timings['total']:.1f} s")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medipy", description="Medical images at archive scale.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    subparsers = parser.add_subparsers(dest="command", required=True)
    _convert_parser(subparsers)
    return parser


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if verbosity < 2:  # pydicom logs every odd value of every file; failures are reported per file anyway
        logging.getLogger("pydicom").setLevel(logging.ERROR)
    logging.captureWarnings(True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``medipy`` command line.

    Parameters
    ----------
    argv
        The arguments (without the program name); ``sys.argv[1:]`` when None.

    Returns
    -------
    int
        0 on success, 1 when a medipy error stops the command, 2 on a usage error (argparse).

    Examples
    --------
    >>> main(["convert", "export/", "out.zarr", "--scheduler", "synchronous"])  # doctest: +SKIP
    0
    """
    args = _parser().parse_args(argv)
    _configure_logging(args.verbose)
    try:
        return args.run(args)
    except (MedipyError, FileExistsError, FileNotFoundError) as exc:
        logger.error("%s", exc)
        return 1
