"""Resumable outputs: one run at a time (a lock file), and the state of a run (which command, finished or not).

An output (a zarr store or a DICOM tree) holds, while a run writes into it:

- ``.medipy.lock``: created with ``O_CREAT | O_EXCL`` (atomic on local and NFSv3+ file systems), holding the
  pid, host and start time of the run. A second run is refused while the first is alive; a lock whose process
  is gone from this host (killed, machine restarted) is stale: it is replaced, with a warning;
- ``.medipy-run.json``: the run's fingerprint (pipeline, input, selection, options that change the result)
  and its state, ``running`` then ``done``. A re-run of the same command resumes a ``running`` output and
  does nothing on a ``done`` one; another command is refused rather than mixed into the output.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import threading
import time
from pathlib import Path
from typing import Any

from medipy.errors import ConfigError, OutputLockedError

__all__ = ["LOCK_NAME", "STATE_NAME", "OutputLock", "differences", "mark_done", "read_state", "remove_leftovers",
           "write_state", "write_text_atomic"]

logger = logging.getLogger(__name__)

LOCK_NAME = ".medipy.lock"
STATE_NAME = ".medipy-run.json"
# files a killed run may leave: medipy's atomic writes (``name.<pid>.tmp``) and zarr's (``name.<uuid4 hex>.partial``)
_LEFTOVER = re.compile(r"\.(\d+\.tmp|[0-9a-f]{32}\.partial)$")


def _alive(pid: int, started: float) -> bool:
    """True if process ``pid`` runs on this host and is not a newer process that reused the pid."""
    import psutil

    try:
        process = psutil.Process(pid)
        return process.create_time() <= started + 1.0 and process.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False


class OutputLock:
    """An exclusive lock on an output folder, held for the duration of a ``with`` block.

    Parameters
    ----------
    output
        The output folder (created if missing).
    command
        A description of the run (shown to a second run that is refused).

    Raises
    ------
    OutputLockedError
        Another live run holds the lock (or a run on another host, which cannot be checked).

    Examples
    --------
    >>> with OutputLock("out.zarr", "medipy convert export out.zarr"):  # doctest: +SKIP
    ...     ...
    """

    def __init__(self, output: str | os.PathLike[str], command: str = "medipy") -> None:
        self.output = Path(output)
        self.path = self.output / LOCK_NAME
        self.command = command
        self._held = False

    def _owner(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def acquire(self) -> None:
        """Take the lock, replacing a stale one (see the class description)."""
        self.output.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._check_stale()
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                           "command": self.command}, handle)
            self._held = True
            return
        raise OutputLockedError(f"{self.path}: could not take the lock (other runs keep taking it)")

    def _check_stale(self) -> None:
        owner = self._owner()
        pid, host, started = owner.get("pid"), owner.get("host"), owner.get("started", 0.0)
        if not owner:  # being written right now, or garbage: give the writer a moment
            time.sleep(0.2)
            owner = self._owner()
            if not owner:
                logger.warning("%s: unreadable lock file replaced", self.path)
                self.path.unlink(missing_ok=True)
                return
            pid, host, started = owner.get("pid"), owner.get("host"), owner.get("started", 0.0)
        if host == socket.gethostname() and isinstance(pid, int) and not _alive(pid, float(started)):
            logger.warning("%s: stale lock of process %s on %s (no longer running) replaced; resuming", self.path,
                           pid, host)
            self.path.unlink(missing_ok=True)
            return
        where = "this host" if host == socket.gethostname() else f"host {host} (cannot be checked from here)"
        raise OutputLockedError(
            f"{self.output} is being written by another medipy run (pid {pid} on {where}, "
            f"command: {owner.get('command', '?')}); wait for it to finish or choose another output. If that run "
            f"is gone, delete {self.path}")

    def release(self) -> None:
        """Give the lock back (only if this object holds it)."""
        if self._held:
            self.path.unlink(missing_ok=True)
            self._held = False

    def __enter__(self) -> OutputLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def read_state(output: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The run state of an output (``{"fingerprint": ..., "state": ...}``), or None if there is none."""
    path = Path(output) / STATE_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: unreadable run state ({exc}); delete it and re-run with --overwrite") from exc
    return data if isinstance(data, dict) else None


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write a UTF-8 text file whole or not at all: into ``<path>.<pid>.<thread>.tmp``, then renamed over
    ``path`` (a ``.tmp`` left by a killed process is removed by :func:`remove_leftovers`). Processes and
    threads writing the same file at once each write their own temporary file; the last rename wins."""
    partial = f"{os.fspath(path)}.{os.getpid()}.{threading.get_ident()}.tmp"
    with open(partial, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(partial, path)


def write_state(output: str | os.PathLike[str], fingerprint: dict[str, Any], state: str) -> None:
    """Record the run state atomically (``running`` or ``done``)."""
    write_text_atomic(Path(output) / STATE_NAME,
                      json.dumps({"fingerprint": fingerprint, "state": state}, indent=1, sort_keys=True))


def mark_done(output: str | os.PathLike[str], fingerprint: dict[str, Any]) -> None:
    """Record a finished run: the temporary files of workers killed during it (their tasks were run again
    elsewhere) are deleted first (:func:`remove_leftovers`), then the state is set to ``done``.

    Parameters
    ----------
    output
        The output folder (held by this run's :class:`OutputLock`).
    fingerprint
        What the run wrote (see :func:`write_state`).
    """
    remove_leftovers(output)
    write_state(output, fingerprint, "done")


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The keys whose values differ between two fingerprints."""
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def remove_leftovers(output: str | os.PathLike[str]) -> int:
    """Delete the temporary files an interrupted run left in ``output`` (call it holding the lock).

    These are the half-written files of atomic writes: ``<name>.<pid>.<thread>.tmp`` (run state, reports,
    zarr documents written by medipy) and ``<name>.<uuid>.partial`` (shards, and files of zarr's LocalStore);
    the files they were to replace are untouched.

    Parameters
    ----------
    output
        The output folder.

    Returns
    -------
    int
        The number of files deleted.
    """
    removed = 0
    for folder, _, files in os.walk(output):
        for name in files:
            if _LEFTOVER.search(name):
                path = os.path.join(folder, name)
                try:
                    os.unlink(path)
                    removed += 1
                except FileNotFoundError:
                    pass
    if removed:
        logger.info("%s: %d temporary file(s) of an interrupted run deleted", output, removed)
    return removed
