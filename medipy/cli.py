"""The ``medipy`` command: ``main(argv) -> int``, the only place that configures logging.

Each subcommand parses its arguments into a :class:`~medipy.pipelines.runfile.RunConfig` (from a run file for
``run``, from the command line otherwise; command-line options override the run file) and calls a pipeline.

Exit codes: 0 everything converted; 1 some files or stacks failed (listed in the report); 2 usage or
configuration error (argparse's own code); 3 the run could not be done (output locked by another run, I/O
error); 130 interrupted (re-run the same command to resume).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from medipy.errors import ConfigError, MedipyError, OutputLockedError

__all__ = ["EXIT_FAILURES", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_RUN_ERROR", "EXIT_USAGE", "main"]

logger = logging.getLogger("medipy.cli")

EXIT_OK, EXIT_FAILURES, EXIT_USAGE, EXIT_RUN_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

_SCHEDULER_HELP = ("synchronous, threads, processes (the default), distributed (a local dask.distributed "
                   "cluster), or the address of a running dask scheduler (tcp://host:port)")


def _common(parser: argparse.ArgumentParser, *, selection: bool = True) -> None:
    where = parser.add_argument_group("where it runs")
    where.add_argument("--scheduler", default=None, help=_SCHEDULER_HELP)
    where.add_argument("--workers", type=int, default=None, help="worker processes (default: the CPU count)")
    where.add_argument("--cluster", metavar="YAML", default=None,
                       help="a YAML file whose 'cluster:' section says where to run (see configs/slurm.yaml)")
    if selection:
        select = parser.add_argument_group("selection (a stack is kept when it passes every filter given)")
        select.add_argument("--modality", action="append", default=None, help="e.g. CT (repeatable)")
        select.add_argument("--series-description", metavar="PATTERN", default=None,
                            help="shell-style pattern, case-insensitive, e.g. '*T1*'")
        select.add_argument("--patient", action="append", default=None, help="a Patient ID (repeatable)")
        select.add_argument("--study", action="append", default=None, help="a Study Instance UID (repeatable)")
    parser.add_argument("--follow-links", action="store_true", default=None,
                        help="follow symbolic links that lead out of the export (default: listed, not followed)")
    parser.add_argument("--dry-run", action="store_true", default=None,
                        help="scan and plan, print what would be written, write nothing")
    parser.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS, help="more log output")
    parser.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="no progress bars, no summary: errors only")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medipy", description="Medical images at archive scale.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    parser.add_argument("-q", "--quiet", action="store_true", default=False, help="errors only")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    scan = sub.add_parser("scan", help="inventory of an export (patients, studies, series, stacks, problems)")
    scan.add_argument("export", nargs="?", help="a folder, a DICOMDIR or a file")
    scan.add_argument("--example", action="store_true", help="scan the bundled example instead of EXPORT")
    scan.add_argument("--json", action="store_true", help="print the inventory as JSON")
    _common(scan)

    for name, what, help_ in (("convert", "OUT.zarr", "convert an export to an OME-Zarr store (resumable)"),
                              ("normalize", "OUTDIR", "rewrite an export as a clean DICOM tree with a DICOMDIR")):
        command = sub.add_parser(name, help=help_, description=help_)
        command.add_argument("paths", nargs="+", metavar=f"[EXPORT] {what}",
                             help=f"the export (a folder, a DICOMDIR or a file) and the output {what}")
        command.add_argument("--example", action="store_true",
                             help="use the bundled example (pydicom's test files) as EXPORT")
        command.add_argument("--overwrite", action="store_true", default=None,
                             help="replace an output written by another command")
        if name == "convert":
            command.add_argument("--no-4d", dest="four_d", action="store_false", default=None,
                                 help="each stack its own 3D image (no (t, z, y, x) grouping)")
            command.add_argument("--no-thumbnails", dest="thumbnails", action="store_false", default=None,
                                 help="no thumbnails in report.html")
            command.add_argument("--compression", choices=("lz4", "zstd"), default=None,
                                 help="Blosc codec of the arrays: lz4 (default, fastest) or zstd (~30%% smaller)")
        else:
            command.add_argument("--no-dicomdir", dest="dicomdir", action="store_false", default=None,
                                 help="no DICOMDIR")
        _common(command)

    run = sub.add_parser("run", help="run the pipeline of a YAML run file (see configs/)")
    run.add_argument("config", metavar="CONFIG.yaml")
    run.add_argument("--overwrite", action="store_true", default=None, help="replace an output of another command")
    _common(run)

    info = sub.add_parser("info", help="what a converted store holds")
    info.add_argument("store", metavar="OUT.zarr")
    info.add_argument("--json", action="store_true", help="print as JSON")
    info.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS, help="more log output")
    info.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="errors only")
    return parser


def _configure_logging(verbosity: int, quiet: bool) -> None:
    level = logging.ERROR if quiet else logging.WARNING if verbosity == 0 else \
        logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if verbosity < 2:  # pydicom logs and warns on every odd value; failures are reported per file anyway
        import pydicom  # noqa: F401  (pydicom sets its logger's level when imported: import it first)

        os.environ.setdefault("PYTHONWARNINGS", "ignore::UserWarning")  # spawned worker processes
        logging.getLogger("pydicom").setLevel(logging.ERROR)
        logging.getLogger("py.warnings").setLevel(logging.ERROR)
    if verbosity < 1:  # distributed installs its own INFO handlers
        logging.getLogger("distributed").setLevel(logging.WARNING)
    logging.captureWarnings(True)


def _config(args: argparse.Namespace, parser: argparse.ArgumentParser):
    """The RunConfig of the command line (a run file, then the options given on the command line)."""
    from medipy.engine.cluster import ClusterOptions
    from medipy.pipelines.runfile import EXAMPLE, RunConfig, build_config, load_cluster_section, load_run_file

    if args.command == "run":
        config = load_run_file(args.config)
    else:
        paths = list(getattr(args, "paths", None) or ([args.export] if getattr(args, "export", None) else []))
        wanted = (0 if args.command == "scan" else 1) + (0 if args.example else 1)
        if len(paths) != wanted:
            parser.error(f"{args.command}: expected {'OUT' if args.example else 'EXPORT and OUT'}"
                         if args.command != "scan" else "scan: expected EXPORT (or --example)")
        source = EXAMPLE if args.example else paths[0]
        output = None if args.command == "scan" else paths[-1]
        config = build_config({"pipeline": args.command, "input": source, "output": output}, "command line")
    cluster = load_cluster_section(args.cluster) if args.cluster else config.cluster
    if args.scheduler:
        cluster = ClusterOptions.from_cli(args.scheduler, args.workers or cluster.workers)
    elif args.workers:
        cluster = dataclasses.replace(cluster, workers=args.workers)
    select = config.select
    for field, value in (("modality", args.modality), ("patient", args.patient), ("study", args.study),
                         ("series_description", args.series_description)):
        if value:
            select = dataclasses.replace(select, **{field: tuple(value) if isinstance(value, list) else value})
    changes: dict[str, Any] = {k: getattr(args, k) for k in ("overwrite", "four_d", "thumbnails", "dicomdir",
                                                              "dry_run", "compression", "follow_links")
                               if getattr(args, k, None) is not None}
    if args.quiet:
        changes["progress"] = False
    options = dataclasses.replace(config.options, **changes)
    return RunConfig(config.pipeline, config.input, config.output, cluster, select, options)


def _job_script(config) -> str:
    import dask
    import dask_jobqueue  # noqa: F401  (loads its configuration defaults before they are amended)

    from medipy.engine.cluster import jobqueue_cluster

    # rendering starts a scheduler here: no dashboard on a fixed port (it may be taken on a login node)
    options = {f"jobqueue.{config.cluster.scheduler}.scheduler-options": {"dashboard_address": ":0"}}
    with dask.config.set(options), jobqueue_cluster(config.cluster) as cluster:
        return cluster.job_script()


def _run(config, args: argparse.Namespace) -> int:
    if config.options.dry_run and config.cluster.scheduler in ("slurm", "pbs"):
        print(f"# the job script dask-jobqueue would submit ({config.cluster.jobqueue.jobs} job(s)); nothing run")
        print(_job_script(config))
        return EXIT_OK
    if config.pipeline == "scan":
        from medipy.pipelines.scan import format_table, run

        inventory = run(config)
        if getattr(args, "json", False):
            print(json.dumps(inventory, indent=1, ensure_ascii=False))
        elif not args.quiet:
            print(format_table(inventory))
        return EXIT_FAILURES if inventory["failures"] else EXIT_OK
    if config.pipeline == "convert":
        from medipy.pipelines.convert import run
    else:
        from medipy.pipelines.normalize import run
    report = run(config)
    if not args.quiet:
        print(report.summary())
        if report.dry_run:
            for stack in report.stacks:
                print(f"  {stack['modality'] or '?':<6} {'x'.join(map(str, stack['shape'])):<16} {stack['path']}")
    return EXIT_OK if report.ok else EXIT_FAILURES


def _info(args: argparse.Namespace) -> int:
    from medipy.pipelines.info import describe, format_info

    info = describe(args.store)
    print(json.dumps(info, indent=1, ensure_ascii=False) if args.json else format_info(info))
    return EXIT_OK if info["state"] == "done" and all(s["complete"] for s in info["stacks"]) else EXIT_FAILURES


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``medipy`` command line.

    Parameters
    ----------
    argv
        The arguments (without the program name); ``sys.argv[1:]`` when None.

    Returns
    -------
    int
        0 everything converted, 1 some files or stacks failed, 2 usage or configuration error, 3 the run could
        not be done (locked output, I/O error), 130 interrupted.

    Examples
    --------
    >>> main(["convert", "--example", "medipy-example.zarr"])  # doctest: +SKIP
    0
    """
    parser = _parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose, args.quiet)
    try:
        if args.command == "info":
            return _info(args)
        return _run(_config(args, parser), args)
    except ConfigError as exc:
        logger.error("%s", exc)
        return EXIT_USAGE
    except OutputLockedError as exc:
        logger.error("%s", exc)
        return EXIT_RUN_ERROR
    except (MedipyError, OSError) as exc:
        logger.error("%s", exc)
        return EXIT_RUN_ERROR
    except KeyboardInterrupt:
        logger.error("interrupted: re-run the same command to resume (finished work is kept)")
        return EXIT_INTERRUPTED
