"""Walk an export: the files to scan, in a deterministic order, without leaving the input or hanging on it.

An export is hostile input (see SECURITY.md): it may hold symbolic links that point out of it, link loops,
folders the process may not read, FIFOs, sockets and devices. :func:`walk_folder` answers each with a
:class:`~medipy.engine.scan.FileIssue` instead of an exception, a hang or a read outside the input:

- entries are listed with :func:`os.scandir` and sorted by name (a folder's files, then its sub-folders, as
  :func:`os.walk` with sorted names), so the order never depends on the file system;
- a symbolic link is followed only when its target stays inside the input root (the root itself is resolved
  once); a link that leaves it is an ``unreadable`` issue unless ``follow_links=True``;
- a link loop (a link to an enclosing folder, or a chain the kernel refuses with ``ELOOP``) and a dangling link
  are ``unreadable`` issues; a folder or file reached twice (two links, a link and its target) is listed once,
  at its first path in sorted order, keyed by (device, inode);
- a folder that cannot be listed is an ``unreadable`` issue naming it; its siblings are still walked;
- FIFOs, sockets and devices are never opened: they are ``not-dicom`` issues.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from medipy.engine.scan import FileIssue, IssueKind

__all__ = ["WalkResult", "collect_files", "walk_folder"]

logger = logging.getLogger(__name__)


@dataclass
class WalkResult:
    """The files found under an input, and the entries that are not scanned (with the reason).

    Attributes
    ----------
    paths
        Files to scan: unique, in a deterministic order, as paths under the input (links not resolved).
    issues
        Entries refused by the walk: links leaving the input, link loops, dangling links, unreadable folders
        (kind ``unreadable``); FIFOs, sockets and devices (kind ``not-dicom``).
    """

    paths: list[str] = field(default_factory=list)
    issues: list[FileIssue] = field(default_factory=list)


def _special_kind(mode: int) -> str | None:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return None


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(os.path.join(root, ""))


class _Walker:
    def __init__(self, root: str, follow_links: bool) -> None:
        self.root = os.path.realpath(root)
        self.follow_links = follow_links
        self.seen: set[tuple[int, int]] = set()
        self.result = WalkResult()

    def issue(self, path: str, kind: str, reason: str) -> None:
        logger.debug("%s: %s", path, reason)
        self.result.issues.append(FileIssue(path, kind, reason))

    def walk(self, folder: str, ancestors: frozenset[tuple[int, int]]) -> None:
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            self.issue(folder, IssueKind.UNREADABLE,
                       f"folder cannot be listed ({type(exc).__name__}: {exc.strerror or exc})")
            return
        folders: list[tuple[str, tuple[int, int]]] = []
        for entry in entries:  # files first, then sub-folders, as os.walk lists them
            folder_key = self.entry(entry.path, entry, ancestors)
            if folder_key is not None:
                folders.append((entry.path, folder_key))
        for path, key in folders:
            self.walk(path, ancestors | {key})

    def entry(self, path: str, entry: os.DirEntry | None, ancestors: frozenset[tuple[int, int]]
              ) -> tuple[int, int] | None:
        """List a file or record an issue; returns the (device, inode) of a folder to walk."""
        try:
            is_link = entry.is_symlink() if entry is not None else os.path.islink(path)
            if is_link and not self._link_allowed(path):
                return None
            info = os.stat(path)  # follows a link (allowed above)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                self.issue(path, IssueKind.UNREADABLE, "symbolic link loop; not followed")
            elif exc.errno == errno.ENOENT:
                self.issue(path, IssueKind.UNREADABLE, "dangling symbolic link (its target does not exist)")
            else:
                self.issue(path, IssueKind.UNREADABLE, f"{type(exc).__name__}: {exc.strerror or exc}")
            return None
        key = (info.st_dev, info.st_ino)
        if stat.S_ISDIR(info.st_mode):
            if key in ancestors:
                self.issue(path, IssueKind.UNREADABLE,
                           "symbolic link loop (it points at an enclosing folder); not followed")
                return None
            if key in self.seen:
                logger.debug("%s: folder already walked through another path", path)
                return None
            self.seen.add(key)
            return key
        if stat.S_ISREG(info.st_mode):
            if key in self.seen:
                logger.debug("%s: file already listed through another path", path)
                return None
            self.seen.add(key)
            self.result.paths.append(path)
            return None
        what = _special_kind(info.st_mode) or "not a regular file"
        self.issue(path, IssueKind.NOT_DICOM, f"{what}, not a file; never opened")
        return None

    def _link_allowed(self, path: str) -> bool:
        """True if the link at ``path`` may be followed; else records why not."""
        target = os.path.realpath(path)
        if self.follow_links or _inside(target, self.root):
            return True
        if not os.path.lexists(target) and not os.path.exists(path):
            # realpath of a dangling or looping link: let os.stat say which
            return True
        self.issue(path, IssueKind.UNREADABLE,
                   "symbolic link leading out of the input; not followed (allow it with follow_links=True)")
        return False


def walk_folder(root: str | os.PathLike[str], *, follow_links: bool = False) -> WalkResult:
    """The files under ``root`` (recursively, sorted), and the entries refused (see the module description).

    Parameters
    ----------
    root
        The input folder. If it is itself a symbolic link, it is resolved once: the operator chose it.
    follow_links
        Also follow symbolic links whose target is outside ``root`` (links inside it are always followed;
        loops are never followed).

    Returns
    -------
    WalkResult
        Paths under ``root`` as given (not resolved), and issues naming the entry and the reason.

    Raises
    ------
    FileNotFoundError
        ``root`` does not exist.
    NotADirectoryError
        ``root`` is not a folder.

    Examples
    --------
    >>> result = walk_folder("export")  # doctest: +SKIP
    >>> [(i.path, i.reason) for i in result.issues]  # doctest: +SKIP
    [('export/out', 'symbolic link leading out of the input; not followed (allow it with follow_links=True)')]
    """
    folder = os.fspath(root)
    if not os.path.exists(folder):
        raise FileNotFoundError(f"{folder}: no such file or folder to scan")
    if not os.path.isdir(folder):
        raise NotADirectoryError(f"{folder}: not a folder")
    walker = _Walker(folder, follow_links)
    info = os.stat(folder)
    key = (info.st_dev, info.st_ino)
    walker.seen.add(key)
    walker.walk(folder, frozenset({key}))
    return walker.result


def collect_files(source: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], *,
                  follow_links: bool = False) -> WalkResult:
    """The files to scan: a folder tree, a DICOMDIR, one file, or an iterable of files and folders.

    Folders are walked with :func:`walk_folder`; a DICOMDIR given alone is replaced by the files it references
    (confined to its folder, see :func:`medipy.io.dicom.dicomdir.resolve_referenced_file`); a file given
    explicitly is kept as given (the operator chose it), unless it is a FIFO, a socket or a device.

    Parameters
    ----------
    source
        A folder, a DICOMDIR file, one file, or an iterable of files and folders.
    follow_links
        See :func:`walk_folder`.

    Returns
    -------
    WalkResult
        Unique paths in a deterministic order, and the entries refused.

    Raises
    ------
    FileNotFoundError
        A given path does not exist.
    """
    from medipy.engine.scan import _dicomdir_files
    from medipy.errors import DicomError

    single = isinstance(source, str | os.PathLike)
    items: list[str | os.PathLike[str]] = [source] if isinstance(source, str | os.PathLike) else list(source)
    result = WalkResult()
    for item in items:
        path = os.fspath(item)
        if os.path.isdir(path):
            walked = walk_folder(path, follow_links=follow_links)
            result.paths.extend(walked.paths)
            result.issues.extend(walked.issues)
        elif os.path.isfile(path):
            if single and Path(path).name.upper() == "DICOMDIR":
                try:
                    result.paths.extend(_dicomdir_files(path))
                    continue
                except DicomError:
                    pass  # not a usable DICOMDIR: scanned as a file, and reported by the scan
            result.paths.append(path)
        elif os.path.exists(path):
            what = _special_kind(os.stat(path).st_mode) or "not a regular file"
            result.issues.append(FileIssue(path, IssueKind.NOT_DICOM, f"{what}, not a file; never opened"))
        else:
            raise FileNotFoundError(f"{path}: no such file or folder to scan")
    result.paths = list(dict.fromkeys(result.paths))
    return result
