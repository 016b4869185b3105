"""The parallel DICOM writer: a bag of DataSets (or of file paths) becomes a clean DICOM tree and a DICOMDIR.

Every file is written by :func:`medipy.io.dicom.write` (UTF-8, Specific Character Set "ISO_IR 192", public
elements only, valid File Meta, atomic). The work is done in two steps:

1. **Parallel** (:func:`write_partition`, one task per bag partition, any scheduler): each item is read (if it
   is a path: only the path travels between processes) and written under a temporary, unique name in a
   staging folder inside the output folder. A bad item becomes a :class:`Failure`; nothing partial remains.
   The task returns small records (the UIDs and names the tree is made of).
2. **Serial** (:func:`finalize`): duplicates (one SOP Instance UID given twice) are dropped, the first in bag
   order kept; the names are decided from all the records at once, so that collisions are resolved
   deterministically whatever the scheduler; each staged file is renamed (same file system: no copy) to
   ``<Patient>/<Study>/<Series>/<Instance>``; then the DICOMDIR is built.

Layout decision. A DICOMDIR may only reference File IDs whose components have at most 8 characters among
``A-Z``, ``0-9`` and ``_`` (PS3.10 8.2 and 8.5; Referenced File ID is a CS). Rather than keep two copies of an
archive (a readable tree and a DICOMDIR-ed copy), the tree itself is named so that the DICOMDIR references it:
with the default :class:`~medipy.engine.naming.NamingPolicy` every component is a conformant File ID made from
the Patient ID, "Study ID + Study Description", "Series Number + Series Description" and the SOP Instance UID
(with a hash suffix whenever the value had to be altered or truncated). Human-readable names (64 characters,
``.dcm`` files, :meth:`NamingPolicy.readable`) are available without a DICOMDIR (``dicomdir=False``).

The DICOMDIR is written by :func:`medipy.io.dicom.dicomdir_writing.write_dicomdir` (pydicom's record
creators, offsets computed in one pass: pydicom's FileSet takes time quadratic in the number of files). Type 1
record attributes missing from a file (Patient ID, Study Date/Time, Study ID, Modality, Series/Instance Number,
Study/Series Instance UID) get a placeholder in the record only; placeholder UIDs derive from the folder names
(deterministic).
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.uid import generate_uid

from medipy.engine.naming import NamingPolicy, tree_names
from medipy.errors import ConfigError, DicomError, UnsafePathError
from medipy.io.dicom.dicomdir_writing import write_dicomdir
from medipy.io.dicom.reading import read
from medipy.io.dicom.writing import write

__all__ = ["Duplicate", "Failure", "StagedFile", "WritePolicy", "WriteReport", "WrittenFile", "finalize",
           "write_bag", "write_partition"]

logger = logging.getLogger(__name__)

# Placeholders of Type 1 directory record attributes missing from an instance (the record only).
_RECORD_DEFAULTS = {"PatientID": "UNKNOWN", "StudyDate": "19000101", "StudyTime": "000000", "StudyID": "0",
                    "Modality": "OT", "SeriesNumber": "0", "InstanceNumber": "0"}


@dataclass(frozen=True)
class WritePolicy:
    """Options of the writer.

    Parameters
    ----------
    naming
        How folder and file names are made (default: PS3.10 conformant File IDs).
    dicomdir
        Write a DICOMDIR at the root of the output folder; needs a conformant ``naming``.
    fileset_id
        File-set ID (0004,1130) of the DICOMDIR (CS, 16 characters at most).

    Raises
    ------
    ConfigError
        ``dicomdir`` with a naming that is not PS3.10 conformant (use ``dicomdir=False`` with
        ``NamingPolicy.readable()``), or an invalid ``fileset_id``.
    """

    naming: NamingPolicy = field(default_factory=NamingPolicy)
    dicomdir: bool = True
    fileset_id: str = "MEDIPY"

    def __post_init__(self) -> None:
        if self.dicomdir and not self.naming.dicom_conformant:
            raise ConfigError("WritePolicy: a DICOMDIR can only reference PS3.10 File IDs (8 characters of "
                              "A-Z, 0-9, _, no extension); use the default NamingPolicy() or dicomdir=False")
        if len(self.fileset_id) > 16 or not self.fileset_id.replace("_", "").replace(" ", "").isalnum():
            raise ConfigError(f"WritePolicy.fileset_id {self.fileset_id!r}: at most 16 of A-Z, 0-9, _, space")


@dataclass(frozen=True)
class StagedFile:
    """An instance written to the staging folder by :func:`write_partition` (small and picklable)."""

    order: tuple[int, int]  # (partition, position): bag order
    source: str  # the input path, or a description of the dataset
    staged: str  # the file name in the staging folder
    sop_instance_uid: str
    patient: tuple[str, str]  # (key, value the name is made from)
    study: tuple[str, str]
    series: tuple[str, str]


@dataclass(frozen=True)
class Failure:
    """An item that could not be written (or referenced in the DICOMDIR), and why."""

    source: str
    reason: str


@dataclass(frozen=True)
class WrittenFile:
    """A file of the output tree: its path relative to the output folder (``/`` separators)."""

    path: str
    sop_instance_uid: str
    source: str


@dataclass(frozen=True)
class Duplicate:
    """An item whose SOP Instance UID was already written: it was not written again."""

    source: str
    sop_instance_uid: str
    kept: str  # the path (relative to the output folder) of the file that was kept


@dataclass(frozen=True)
class WriteReport:
    """What :func:`write_bag` / :func:`finalize` did."""

    out_dir: str
    written: tuple[WrittenFile, ...]
    duplicates: tuple[Duplicate, ...]
    failures: tuple[Failure, ...]
    dicomdir: str | None


def _text(ds: Dataset, *keywords: str) -> str:
    """The values of ``keywords`` as one string (a multi-valued element as DICOM writes it, with ``\\``)."""
    values = [ds.get(keyword) or "" for keyword in keywords]
    texts = ("\\".join(map(str, v)) if isinstance(v, MultiValue | list) else str(v) for v in values)
    return " ".join(text.strip() for text in texts).strip()


def _label(item: Any, order: tuple[int, int]) -> str:
    if isinstance(item, str | os.PathLike):
        return os.fspath(item)
    return str(getattr(item, "path", None) or f"dataset #{order[1]} of partition {order[0]}")


def _stage_one(item: Any, target: Path, naming: NamingPolicy, order: tuple[int, int]) -> StagedFile:
    source = _label(item, order)
    if not isinstance(item, str | os.PathLike | Dataset):
        raise TypeError(f"expected a DataSet or a path, got {type(item).__name__}")
    ds = read(item) if isinstance(item, str | os.PathLike) else item
    file_meta = getattr(ds, "file_meta", None)
    sop_uid = _text(ds, "SOPInstanceUID") or (_text(file_meta, "MediaStorageSOPInstanceUID") if file_meta else "")
    if not sop_uid:
        raise DicomError("has no SOP Instance UID (0008,0018); it cannot be named nor written", source)
    study, series = _text(ds, "StudyInstanceUID"), _text(ds, "SeriesInstanceUID")
    by_uid = naming.folders == "uid"
    write(ds, target)
    return StagedFile(order, source, target.name, sop_uid, (_text(ds, "PatientID"), _text(ds, "PatientID")),
                      (study, study if by_uid else _text(ds, "StudyID", "StudyDescription") or study),
                      (series, series if by_uid else _text(ds, "SeriesNumber", "SeriesDescription") or series))


def write_partition(items: Iterable[Any], staging_dir: str | os.PathLike[str], policy: WritePolicy,
                    partition: int = 0) -> list[StagedFile | Failure]:
    """Write the items of one partition into the staging folder (the parallel step).

    Parameters
    ----------
    items
        DataSets (any pydicom Dataset) and/or paths of DICOM files (read on the worker with
        :func:`medipy.io.dicom.read`).
    staging_dir
        The staging folder (created if missing); it must be on the file system of the output folder.
    policy
        The writer's options.
    partition
        The index of the partition: staged names and bag order derive from it, so it must be unique.

    Returns
    -------
    list
        One :class:`StagedFile` or :class:`Failure` per item, in order. Nothing is raised for a bad item.
    """
    staging = Path(staging_dir)
    staging.mkdir(parents=True, exist_ok=True)
    out: list[StagedFile | Failure] = []
    for position, item in enumerate(items):
        target = staging / f"{partition:06d}_{position:08d}"
        try:
            out.append(_stage_one(item, target, policy.naming, (partition, position)))
        except Exception as exc:  # noqa: BLE001 - batch work returns records, one bad item never aborts
            source = _label(item, (partition, position))
            reason = getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"
            logger.warning("not written: %s (%s)", source, reason)
            target.unlink(missing_ok=True)
            out.append(Failure(str(source), str(reason)))
    return out


def finalize(records: Iterable[StagedFile | Failure], out_dir: str | os.PathLike[str],
             staging_dir: str | os.PathLike[str], policy: WritePolicy) -> WriteReport:
    """Move the staged files into the tree and write the DICOMDIR (the serial step).

    Parameters
    ----------
    records
        What :func:`write_partition` returned, for every partition.
    out_dir
        The output folder (the staging folder must be inside it).
    staging_dir
        The staging folder; it is removed at the end.
    policy
        The writer's options.

    Returns
    -------
    WriteReport
        Written files (sorted by path), duplicates, failures (items not written, and written files that
        could not be put in the DICOMDIR) and the DICOMDIR path.
    """
    out, staging = Path(out_dir), Path(staging_dir)
    root = out.resolve()
    records = list(records)
    failures = [r for r in records if isinstance(r, Failure)]
    first: dict[str, StagedFile] = {}
    duplicates: list[StagedFile] = []
    for s in sorted((r for r in records if isinstance(r, StagedFile)), key=lambda r: r.order):
        if s.sop_instance_uid in first:
            duplicates.append(s)
            (staging / s.staged).unlink(missing_ok=True)
        else:
            first[s.sop_instance_uid] = s
    levels = [(s.patient, s.study, s.series, (uid, uid)) for uid, s in first.items()]
    plan = dict(zip(first, tree_names(levels, policy.naming, suffix=policy.naming.extension), strict=True))
    written: list[WrittenFile] = []
    for uid, s in first.items():
        relative = "/".join(plan[uid])
        target = out.joinpath(*plan[uid])
        if not target.resolve().is_relative_to(root):  # impossible with safe names; a symbolic link?
            failures.append(Failure(s.source, str(UnsafePathError(f"{target} is outside {root}", relative))))
            continue
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / s.staged, target)
        except OSError as exc:  # e.g. a folder of a previous run has the file's name
            failures.append(Failure(s.source, f"cannot be moved to {target} ({exc})"))
            continue
        written.append(WrittenFile(relative, uid, s.source))
    shutil.rmtree(staging, ignore_errors=True)
    written.sort(key=lambda w: w.path)
    kept = {w.sop_instance_uid: w.path for w in written}
    dups = tuple(Duplicate(d.source, d.sop_instance_uid, kept.get(d.sop_instance_uid, "")) for d in duplicates)
    logger.info("%d duplicate SOP Instance UID(s) not written again: %s", len(dups), [d.source for d in dups])
    dicomdir = None
    if policy.dicomdir and written:
        dicomdir, excluded = _write_dicomdir(out, written, policy)
        failures.extend(excluded)
    logger.info("wrote %d file(s) to %s: %d duplicate(s), %d failure(s)", len(written), out, len(dups),
                len(failures))
    return WriteReport(os.fspath(out), tuple(written), dups, tuple(failures), dicomdir)


def _record_header(path: Path, relative: str) -> Dataset:
    header = dcmread(path, stop_before_pixels=True)
    folders = relative.split("/")
    for keyword, depth in (("StudyInstanceUID", 2), ("SeriesInstanceUID", 3)):
        if not header.get(keyword):  # the same placeholder for every instance of the folder
            setattr(header, keyword, generate_uid(entropy_srcs=["medipy", *folders[:depth]]))
    for keyword, meta_keyword in (("SOPInstanceUID", "MediaStorageSOPInstanceUID"),
                                  ("SOPClassUID", "MediaStorageSOPClassUID")):
        if not header.get(keyword):
            setattr(header, keyword, header.file_meta[meta_keyword].value)
    for keyword, default in _RECORD_DEFAULTS.items():
        if not header.get(keyword):
            setattr(header, keyword, default)
    return header


def _write_dicomdir(out: Path, written: Sequence[WrittenFile],
                    policy: WritePolicy) -> tuple[str | None, list[Failure]]:
    """Write ``out/DICOMDIR`` indexing the written tree (:func:`medipy.io.dicom.dicomdir_writing.write_dicomdir`)."""
    excluded: list[Failure] = []

    def headers() -> Iterator[tuple[list[str], Dataset]]:
        for w in written:
            try:
                header = _record_header(out / w.path, w.path)
            except Exception as exc:  # noqa: BLE001 - the file is written; one bad record never aborts the rest
                excluded.append(Failure(w.path, f"written but not in the DICOMDIR ({exc})"))
                continue
            yield w.path.split("/"), header

    target = out / "DICOMDIR"
    try:
        left_out = write_dicomdir(target, headers(), fileset_id=policy.fileset_id or "")
    except Exception as exc:
        target.unlink(missing_ok=True)
        raise DicomError(f"cannot be written ({type(exc).__name__}: {exc}); the tree itself is complete",
                         target) from exc
    excluded += [Failure("/".join(c), f"written but not in the DICOMDIR ({reason})") for c, reason in left_out]
    if len(excluded) == len(written):
        target.unlink(missing_ok=True)
        return None, excluded
    logger.info("wrote %s (%d instance(s))", target, len(written) - len(excluded))
    return os.fspath(target), excluded


def write_bag(bag: Any, out_dir: str | os.PathLike[str], *, policy: WritePolicy | None = None,
              scheduler: str | None = None) -> WriteReport:
    """Write a dask bag of DataSets and/or file paths as a DICOM tree with a DICOMDIR.

    Parameters
    ----------
    bag
        A :class:`dask.bag.Bag` (or any iterable, written as one partition) of DataSets and/or paths. Paths
        are read on the workers, so that only paths and small records travel between processes.
    out_dir
        The output folder (created if missing). Files of a previous run with the same names are replaced.
    policy
        The writer's options (default :class:`WritePolicy`).
    scheduler
        A dask scheduler name (``"synchronous"``, ``"threads"``, ``"processes"``); by default the active one
        (a :class:`distributed.Client` if one is set up).

    Returns
    -------
    WriteReport
        The written files, duplicates, failures and the DICOMDIR path.

    Raises
    ------
    DicomError
        The DICOMDIR cannot be written (the tree is complete; the report is lost: re-run with
        ``dicomdir=False`` to get it).

    Examples
    --------
    >>> import dask.bag as db  # doctest: +SKIP
    >>> report = write_bag(db.from_sequence(paths, npartitions=8), "clean")  # doctest: +SKIP
    >>> len(report.written), report.dicomdir  # doctest: +SKIP
    (120, 'clean/DICOMDIR')
    """
    import dask
    from dask.bag import Bag

    policy = policy if policy is not None else WritePolicy()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    staging = out / f".medipy-staging-{secrets.token_hex(6)}"
    try:
        if isinstance(bag, Bag):
            tasks = [dask.delayed(write_partition, pure=False)(part, os.fspath(staging), policy, index)
                     for index, part in enumerate(bag.to_delayed())]
            results = dask.compute(*tasks, scheduler=scheduler) if tasks else ()
        else:
            results = (write_partition(bag, staging, policy, 0),)
        return finalize([r for part in results for r in part], out, staging, policy)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
