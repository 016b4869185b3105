"""Where the engine runs: options (a frozen dataclass, loadable from YAML) and a context manager.

Supported: dask's ``synchronous``, ``threads`` and ``processes`` schedulers (processes: one persistent
pool for the whole run, started at once, tasks handed out one at a time, not batched onto one worker), a
``distributed`` LocalCluster, an existing scheduler given by ``address``, and dask-jobqueue ``slurm`` /
``pbs`` clusters. Policy is passed, never global: :func:`open_runner` yields a :class:`Runner` whose
``compute`` uses its own scheduler without touching ``dask.config`` for the rest of the process.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from medipy.errors import ConfigError

__all__ = ["ClusterOptions", "JobQueueOptions", "Runner", "jobqueue_cluster", "load_cluster_options",
           "open_runner"]

logger = logging.getLogger(__name__)

LOCAL_KINDS = ("synchronous", "threads", "processes")
KINDS = (*LOCAL_KINDS, "distributed", "address", "slurm", "pbs")
START_METHODS = ("auto", "fork", "forkserver", "spawn")
#: Modules a forked worker inherits from the client rather than importing them on its first task (the
#: scan's; the writer's, zarr first, are imported by the workers that write, in parallel).
FORK_MODULES = ("dask.local", "dask.multiprocessing", "medipy.engine.scan", "medipy.io.dicom.reading",
                "medipy.io.dicom.record")
#: Modules the workers of the ``processes`` scheduler need (imported once per spawned worker, or once in the
#: forkserver): importing them costs ~1 s per process, as much as scanning ~1,000 headers.
WORKER_MODULES = ("dask.local", "medipy.engine.arrays", "medipy.engine.scan", "medipy.engine.zarr_sink",
                  "medipy.io.dicom.reading", "medipy.io.dicom.record")


@dataclass(frozen=True)
class JobQueueOptions:
    """Parameters of a dask-jobqueue cluster (see ``dask_jobqueue.SLURMCluster`` / ``PBSCluster``).

    ``jobs`` is the number of batch jobs to start; the other fields are passed to the cluster class.
    """

    cores: int = 1
    memory: str = "4GB"
    processes: int = 1
    jobs: int = 1
    queue: str | None = None
    account: str | None = None
    walltime: str | None = None
    job_extra_directives: tuple[str, ...] = ()
    job_script_prologue: tuple[str, ...] = ()
    local_directory: str | None = None
    interface: str | None = None


@dataclass(frozen=True)
class ClusterOptions:
    """Which dask scheduler runs the engine.

    Attributes
    ----------
    scheduler
        One of ``synchronous``, ``threads``, ``processes``, ``distributed`` (a LocalCluster), ``address``
        (an existing scheduler), ``slurm``, ``pbs``.
    address
        The scheduler address (``tcp://host:port``) for ``address``.
    workers
        Worker processes (or threads for ``threads``); default: the CPU count.
    threads_per_worker
        Threads of each distributed worker.
    memory_limit
        Memory limit of each LocalCluster worker (e.g. ``"4GB"``), or None for dask's default.
    start_method
        How ``processes`` workers start: ``fork`` (instant: they inherit the client's imported modules),
        ``forkserver`` (the modules are imported once, in the server), ``spawn`` (each worker imports them),
        or ``auto``: ``fork`` on Linux when it is safe (Python < 3.12, where forking a process that runs
        threads is not flagged, or a client without other threads), else ``forkserver`` on POSIX and
        ``spawn`` elsewhere (macOS and Windows cannot fork safely).
    jobqueue
        Batch-system parameters for ``slurm`` and ``pbs``.
    """

    scheduler: str = "processes"
    address: str | None = None
    workers: int | None = None
    threads_per_worker: int = 1
    memory_limit: str | None = None
    start_method: str = "auto"
    jobqueue: JobQueueOptions = field(default_factory=JobQueueOptions)

    def __post_init__(self) -> None:
        if self.scheduler not in KINDS:
            raise ConfigError(f"scheduler {self.scheduler!r} is not one of {', '.join(KINDS)}")
        if self.scheduler == "address" and not self.address:
            raise ConfigError("scheduler 'address' needs an address such as tcp://127.0.0.1:8786")
        if self.start_method not in START_METHODS:
            raise ConfigError(f"start_method {self.start_method!r} is not one of {', '.join(START_METHODS)}")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"workers must be at least 1, not {self.workers}")

    @classmethod
    def from_cli(cls, scheduler: str, workers: int | None = None) -> ClusterOptions:
        """From the ``--scheduler`` value: a scheduler kind, or an address (``tcp://...``, ``host:port``)."""
        if scheduler in KINDS:
            return cls(scheduler=scheduler, workers=workers)
        return cls(scheduler="address", address=scheduler, workers=workers)


def load_cluster_options(path: str | os.PathLike[str]) -> ClusterOptions:
    """Read :class:`ClusterOptions` from the ``cluster:`` mapping of a YAML file.

    Raises
    ------
    ConfigError
        The file has no ``cluster`` mapping, an unknown key or a value of the wrong type (the message names
        the key and the file).

    Examples
    --------
    A SLURM run file::

        cluster:
          scheduler: slurm
          jobqueue: {cores: 8, memory: 32GB, jobs: 4, queue: normal, walltime: "02:00:00"}
    """
    from medipy.config import load_cluster_section

    return load_cluster_section(path)


def jobqueue_cluster(options: ClusterOptions):
    """The dask-jobqueue cluster object of ``slurm``/``pbs`` options (no job is submitted yet)."""
    import dask_jobqueue

    q = options.jobqueue
    cls = {"slurm": dask_jobqueue.SLURMCluster, "pbs": dask_jobqueue.PBSCluster}[options.scheduler]
    kwargs: dict[str, Any] = {"cores": q.cores, "memory": q.memory, "processes": q.processes,
                              "job_extra_directives": list(q.job_extra_directives),
                              "job_script_prologue": list(q.job_script_prologue)}
    for name in ("queue", "account", "walltime", "local_directory", "interface"):
        if getattr(q, name) is not None:
            kwargs[name] = getattr(q, name)
    return cls(**kwargs)


@dataclass
class Runner:
    """A scheduler for one run: ``compute(*collections)`` and the number of parallel ``workers``."""

    kind: str
    workers: int
    client: Any = None
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def shuffle(self) -> str:
        """How to shuffle scan results into series: ``disk`` on one machine (workers share the client's disk,
        see :func:`medipy.engine.shuffle.plan_files`), ``tasks`` (dask's task shuffle) on a cluster."""
        return "tasks" if self.client is not None else "disk"

    def compute(self, *collections: Any) -> tuple[Any, ...]:
        """Compute dask collections with this runner's scheduler (like :func:`dask.compute`)."""
        import dask

        if self.client is not None:
            return tuple(dask.compute(*collections, scheduler=self.client))
        if self.kind == "processes":
            # dask runs a collection's finalize (a bag's concatenation of its partitions) as one more task,
            # which the process scheduler ships to a worker and back with every result: compute the
            # partitions in the pool, finalize them here.
            from dask.local import get_sync

            persisted = dask.persist(*collections, **self.kwargs)
            return tuple(dask.compute(*persisted, scheduler=get_sync))
        return tuple(dask.compute(*collections, **self.kwargs))


def _warm_up(modules: tuple[str, ...] = WORKER_MODULES) -> None:
    """Import the worker modules once per worker process (not once per task)."""
    import importlib

    for name in modules:
        importlib.import_module(name)


def _limit_threads() -> None:
    """One core per worker process: Blosc's own threads would only contend with the other workers."""
    from numcodecs import blosc

    blosc.use_threads = False  # numcodecs then compresses with one thread, outside Blosc's global pool


def _init_worker() -> None:
    """Set up one spawned worker process of the ``processes`` scheduler: modules imported, one core."""
    _warm_up()
    _limit_threads()


def _ready(_: int) -> int:
    return os.getpid()


def start_method(requested: str = "auto") -> str:
    """The multiprocessing start method for ``requested`` (see :attr:`ClusterOptions.start_method`)."""
    if requested != "auto":
        return requested
    if sys.platform.startswith("linux") and (sys.version_info < (3, 12) or threading.active_count() == 1):
        return "fork"
    return "forkserver" if os.name == "posix" and sys.platform != "darwin" else "spawn"


@contextlib.contextmanager
def _process_pool(count: int, requested: str) -> Iterator[ProcessPoolExecutor]:
    """A pool of ``count`` worker processes, all started (and their modules imported) before it is used."""
    method = start_method(requested)
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload(list(WORKER_MODULES))
    # forked children inherit what the client has imported and import the rest on first use, in parallel;
    # spawned ones import everything once, when they start
    initializer = _limit_threads if method == "fork" else _init_worker
    if method == "fork":
        _warm_up(FORK_MODULES)
    with ProcessPoolExecutor(count, mp_context=context, initializer=initializer) as pool:
        list(pool.map(_ready, range(count)))  # start every worker now, not on the first tasks of a run
        logger.debug("%d worker processes started (%s)", count, method)
        yield pool


@contextlib.contextmanager
def open_runner(options: ClusterOptions | None = None) -> Iterator[Runner]:
    """Start (and always stop) what ``options`` describe; yield a :class:`Runner`.

    Examples
    --------
    >>> with open_runner(ClusterOptions(scheduler="synchronous")) as runner:
    ...     runner.workers
    1
    """
    options = options or ClusterOptions()
    count = options.workers or os.cpu_count() or 1
    # schedulers are passed as functions: given by name, dask imports distributed (~0.5 s) to look for a client
    if options.scheduler == "synchronous":
        from dask.local import get_sync

        yield Runner("synchronous", 1, kwargs={"scheduler": get_sync})
    elif options.scheduler == "threads":
        from dask.threaded import get as threaded_get

        yield Runner("threads", count, kwargs={"scheduler": threaded_get, "num_workers": count})
    elif options.scheduler == "processes":
        from dask.multiprocessing import get as multiprocessing_get

        with _process_pool(count, options.start_method) as pool:
            yield Runner("processes", count, kwargs={"scheduler": multiprocessing_get, "pool": pool,
                                                     "chunksize": 1})
    else:
        yield from _distributed(options, count)


def _distributed(options: ClusterOptions, count: int) -> Iterator[Runner]:
    from distributed import Client, LocalCluster

    with contextlib.ExitStack() as stack:
        if options.scheduler == "distributed":
            kwargs: dict[str, Any] = {"n_workers": count, "threads_per_worker": options.threads_per_worker,
                                      "processes": True, "dashboard_address": None}
            if options.memory_limit:
                kwargs["memory_limit"] = options.memory_limit
            cluster = stack.enter_context(LocalCluster(**kwargs))
            client = stack.enter_context(Client(cluster, set_as_default=False))
        elif options.scheduler == "address":
            client = stack.enter_context(Client(options.address, set_as_default=False))
        else:
            cluster = stack.enter_context(jobqueue_cluster(options))
            cluster.scale(jobs=options.jobqueue.jobs)
            client = stack.enter_context(Client(cluster, set_as_default=False))
            client.wait_for_workers(1)
        threads = sum(client.nthreads().values())
        logger.info("dask %s scheduler at %s, %d worker threads", options.scheduler,
                    client.scheduler.address, threads)
        yield Runner(options.scheduler, max(1, threads or count), client=client)
