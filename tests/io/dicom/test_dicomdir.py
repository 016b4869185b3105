"""DICOMDIR hierarchy (offsets or order), SERIES records, referenced file resolution and loading."""

from __future__ import annotations

import os
import pickle
import shutil
from collections import Counter
from pathlib import Path

import pydicom
import pytest

from medipy.errors import MissingReferencedFileError, UnsafePathError
from medipy.io.dicom.dataset import DataSet
from medipy.io.dicom.dicomdir import (
    load_dicomdir_records,
    record_study_uid,
    resolve_referenced_file,
    series_records,
)
from medipy.io.dicom.reading import read

DIRTESTS = "pydicom/test_files/dicomdirtests"
# Number of IMAGE records of each SERIES record, in hierarchy order (the same for every variant)
SERIES_SIZES = [1, 1, 1, 4, 2, 5, 1, 1, 1, 3, 1, 3, 7]
COUNTS = {"PATIENT": 2, "STUDY": 6, "SERIES": 13, "IMAGE": 31}


def _records(dataset: DataSet) -> list[DataSet]:
    out = []
    pending = list(reversed(dataset.children))
    while pending:
        record = pending.pop()
        out.append(record)
        pending.extend(reversed(record.children))
    return out


def _writable_copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, copy_function=shutil.copyfile)
    for folder, _, _ in os.walk(target):
        os.chmod(folder, 0o755)
    return target


@pytest.mark.parametrize("name", ["DICOMDIR", "DICOMDIR-bigEnd", "DICOMDIR-implicit", "DICOMDIR-nooffset",
                                  "DICOMDIR-reordered", "DICOMDIR-nopatient"])
def test_hierarchy(testdata: Path, name: str) -> None:
    path = testdata / DIRTESTS / name
    dicomdir = read(path)
    records = _records(dicomdir)
    assert len(records) == len(dicomdir.DirectoryRecordSequence) == 52
    kinds = Counter(str(record.DirectoryRecordType) for record in records)
    expected = dict(COUNTS)
    if name == "DICOMDIR-nopatient":  # its PATIENT records have an invalid type
        expected["UNKNOWN"] = expected.pop("PATIENT")
    assert kinds == expected
    assert all(isinstance(record, DataSet) and record.path == str(path) for record in records)
    assert all(isinstance(item, DataSet) for item in dicomdir.DirectoryRecordSequence)
    series = series_records(dicomdir)
    assert [len(serie.children) for serie in series] == SERIES_SIZES
    for serie in series:
        assert serie.parent.DirectoryRecordType == "STUDY"
        assert serie.parent.parent.parent is None
        assert all(child.parent is serie for child in serie.children)
        assert {str(child.DirectoryRecordType) for child in serie.children} == {"IMAGE"}
        assert record_study_uid(serie) == serie.parent.StudyInstanceUID
        assert record_study_uid(serie.children[0]) == serie.parent.StudyInstanceUID
    assert all(root.parent is None for root in dicomdir.children)


def test_empty_dicomdir(testdata: Path) -> None:
    dicomdir = read(testdata / DIRTESTS / "DICOMDIR-empty.dcm")
    assert dicomdir.children == []
    assert series_records(dicomdir) == []


def test_tiny_alpha(testdata: Path) -> None:
    path = testdata / DIRTESTS / "TINY_ALPHA/DICOMDIR"
    dicomdir = read(path)
    assert Counter(str(r.DirectoryRecordType) for r in _records(dicomdir)) == {
        "PATIENT": 1, "STUDY": 1, "SERIES": 1, "IMAGE": 50}
    [serie] = series_records(dicomdir)
    assert len(serie.children) == 50
    datasets = load_dicomdir_records([serie])
    assert len(datasets) == 50
    assert [ds.SOPInstanceUID for ds in datasets] == [
        child.ReferencedSOPInstanceUIDInFile for child in serie.children]
    assert {ds.SeriesInstanceUID for ds in datasets} == {serie.SeriesInstanceUID}


def test_fallback_to_record_order(testdata: Path, tmp_path: Path) -> None:
    """Offsets that point nowhere: the hierarchy comes from the record order and levels."""
    ds = pydicom.dcmread(testdata / DIRTESTS / "DICOMDIR")
    for item in ds.DirectoryRecordSequence:
        item.OffsetOfTheNextDirectoryRecord = 12345
        item.OffsetOfReferencedLowerLevelDirectoryEntity = 12345
    path = tmp_path / "DICOMDIR"
    ds.save_as(path)
    dicomdir = read(path)
    assert [len(serie.children) for serie in series_records(dicomdir)] == SERIES_SIZES
    assert Counter(str(r.DirectoryRecordType) for r in _records(dicomdir)) == COUNTS


def test_pickle_record(testdata: Path) -> None:
    serie = series_records(read(testdata / DIRTESTS / "DICOMDIR"))[-1]
    back = pickle.loads(pickle.dumps(serie))
    assert len(back.children) == 7
    assert back.children[0].parent is back
    assert back.path == serie.path


def test_load_records(testdata: Path) -> None:
    path = testdata / DIRTESTS / "DICOMDIR"
    serie = series_records(read(path))[-1]
    other = read(testdata / "pydicom/test_files/CT_small.dcm")
    datasets = load_dicomdir_records([serie, other])
    assert datasets[0] is other
    loaded = datasets[1:]
    assert [ds.SOPInstanceUID for ds in loaded] == [c.ReferencedSOPInstanceUIDInFile for c in serie.children]
    assert [Path(ds.path) for ds in loaded] == [
        path.parent.joinpath(*child.ReferencedFileID) for child in serie.children]
    assert {ds.SeriesInstanceUID for ds in loaded} == {serie.SeriesInstanceUID}


def test_load_records_each_file_once(testdata: Path) -> None:
    serie = series_records(read(testdata / DIRTESTS / "DICOMDIR"))[3]
    datasets = load_dicomdir_records([serie, *serie.children])
    assert len(datasets) == 4


def test_case_insensitive_fallback(testdata: Path, tmp_path: Path) -> None:
    root = _writable_copy(testdata / DIRTESTS, tmp_path / "cd")
    for folder, names, files in os.walk(root / "98892003", topdown=False):
        for name in files + names:
            os.rename(Path(folder) / name, Path(folder) / name.lower())
    dicomdir = read(root / "DICOMDIR")
    serie = series_records(dicomdir)[-1]
    assert str(serie.children[0].ReferencedFileID[1]) == "MR700"
    datasets = load_dicomdir_records([serie])
    expected = [child.ReferencedSOPInstanceUIDInFile for child in serie.children]
    assert [ds.SOPInstanceUID for ds in datasets] == expected
    assert all("/mr700/" in ds.path for ds in datasets)


def test_iso9660_version_suffix(tmp_path: Path) -> None:
    (tmp_path / "IMAGES").mkdir()
    (tmp_path / "IMAGES" / "IM0001.;1").write_bytes(b"")
    found = resolve_referenced_file(tmp_path / "DICOMDIR", ["images", "im0001"])
    assert found == tmp_path / "IMAGES/IM0001.;1"


@pytest.mark.parametrize("file_id", [["..", "DICOMDIR"], ["A", "..", "..", "B"], ["/etc/passwd"],
                                     "\\etc\\passwd", ["A/../../B"], ["C:", "x"], []])
def test_unsafe_file_id(tmp_path: Path, file_id: list[str] | str) -> None:
    (tmp_path / "A").mkdir()
    with pytest.raises(UnsafePathError) as info:
        resolve_referenced_file(tmp_path / "DICOMDIR", file_id)
    assert str(tmp_path / "DICOMDIR") in str(info.value)


def test_symlink_outside_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.dcm"
    outside.write_bytes(b"x")
    (tmp_path / "cd").mkdir()
    (tmp_path / "cd" / "LINK").symlink_to(outside)
    with pytest.raises(UnsafePathError, match="outside"):
        resolve_referenced_file(tmp_path / "cd" / "DICOMDIR", ["LINK"])


def test_unsafe_file_id_in_dicomdir(testdata: Path, tmp_path: Path) -> None:
    """A copy of the real DICOMDIR whose first IMAGE record references ../secret.dcm."""
    ds = pydicom.dcmread(testdata / DIRTESTS / "DICOMDIR")
    image = next(i for i in ds.DirectoryRecordSequence if i.DirectoryRecordType == "IMAGE")
    image.ReferencedFileID = ["..", "SECRET"]
    (tmp_path / "SECRET").write_bytes(b"not to be read")
    (tmp_path / "cd").mkdir()
    ds.save_as(tmp_path / "cd" / "DICOMDIR")
    dicomdir = read(tmp_path / "cd" / "DICOMDIR")
    serie = series_records(dicomdir)[0]
    assert list(serie.children[0].ReferencedFileID) == ["..", "SECRET"]
    with pytest.raises(UnsafePathError) as info:
        load_dicomdir_records([serie])
    assert "IMAGE record" in str(info.value)
    assert str(tmp_path / "cd" / "DICOMDIR") in str(info.value)


def test_missing_referenced_file(testdata: Path, tmp_path: Path) -> None:
    root = _writable_copy(testdata / DIRTESTS, tmp_path / "cd")
    serie = series_records(read(root / "DICOMDIR"))[-1]
    missing = root.joinpath(*serie.children[1].ReferencedFileID)
    missing.unlink()
    with pytest.raises(MissingReferencedFileError) as info:
        load_dicomdir_records([serie])
    message = str(info.value)
    assert str(missing) in message
    assert str(root / "DICOMDIR") in message
    assert "IMAGE record at offset" in message
    assert isinstance(info.value, FileNotFoundError)


def test_resolve_existing(testdata: Path) -> None:
    dicomdir = testdata / DIRTESTS / "DICOMDIR"
    expected = dicomdir.parent / "98892001/CT5N/2062"
    assert resolve_referenced_file(dicomdir, ["98892001", "CT5N", "2062"]) == expected
    assert resolve_referenced_file(dicomdir, "98892001\\CT5N\\2062") == expected
    assert resolve_referenced_file(dicomdir.parent, ["98892001", "ct5n", "2062"]) == expected


def test_series_records_of_a_pydicom_dataset(testdata: Path) -> None:
    """A DICOMDIR read by pydicom itself is linked on demand."""
    path = testdata / DIRTESTS / "DICOMDIR"
    series = series_records(pydicom.dcmread(path))
    assert [len(serie.children) for serie in series] == SERIES_SIZES
    assert {serie.path for serie in series} == {str(path)}
    assert record_study_uid(series[0]) == series[0].parent.StudyInstanceUID
