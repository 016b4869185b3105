"""The parallel DICOM writer: real files through every scheduler, hostile names, failures, DICOMDIR."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import dask.bag as db
import numpy as np
import pytest
from pydicom.uid import SecondaryCaptureImageStorage

from medipy.engine.naming import NamingPolicy, assign_names, safe_component
from medipy.engine.writer import Failure, StagedFile, WritePolicy, finalize, write_bag, write_partition
from medipy.errors import ConfigError
from medipy.io.dicom import DataSet, load_dicomdir_records, read, series

CONFORMANT = re.compile(r"^[A-Z0-9_]{1,8}$")
PORTABLE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$")
HOSTILE = ["../../etc/passwd", "/etc/passwd", "a\x00b/../c", "..", ".", "", "x" * 300, "\\\\server\\share",
           "CON", "nul.txt", ".hidden", "Dürer^Albrecht", "-rf"]
BROKEN = "derived_broken/truncated_in_header.dcm"


def _inputs(testdata: Path) -> list[str]:
    folders = ["pydicom/charset_files", "dicom2nifti/hitachi/anatomical/001", "dcmqi/ct-3slice"]
    files = [p for folder in folders for p in sorted((testdata / folder).iterdir()) if p.suffix != ".txt"]
    return [str(p) for p in files] + [str(testdata / BROKEN)]


def _sop_uid(ds: DataSet) -> str:
    return ds.get("SOPInstanceUID") or ds.file_meta.MediaStorageSOPInstanceUID


def _tree(out: Path) -> dict[str, str]:
    return {p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*")) if p.is_file() and p.name != "DICOMDIR"}


@pytest.fixture(scope="module")
def reference(testdata: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("sync")
    report = write_bag(db.from_sequence(_inputs(testdata), npartitions=4), out, scheduler="synchronous")
    return out, report


def test_every_file_is_utf8_public_with_the_same_pixels_and_names(reference, testdata: Path) -> None:
    out, report = reference
    assert len(report.written) == len(_inputs(testdata)) - 1 - len(report.duplicates) == 21
    for written in report.written:
        ds, source = read(out / written.path), read(written.source)
        assert ds.SpecificCharacterSet == "ISO_IR 192"
        assert not [elem.tag for elem in ds.iterall() if elem.tag.is_private]
        assert str(ds.get("PatientName", "")) == str(source.get("PatientName", ""))
        assert _sop_uid(ds) == written.sop_instance_uid
        if "PixelData" in source:
            np.testing.assert_array_equal(ds.pixel_array, source.pixel_array)


def test_tree_layout_is_conformant_and_grouped(reference) -> None:
    out, report = reference
    for written in report.written:
        parts = written.path.split("/")
        assert len(parts) == 4
        assert all(CONFORMANT.match(part) for part in parts), written.path
    by_series = {}
    for written in report.written:
        ds = read(out / written.path, stop_before_pixels=True)
        by_series.setdefault(ds.get("SeriesInstanceUID"), set()).add(written.path.rsplit("/", 1)[0])
    assert all(len(folders) == 1 for folders in by_series.values())
    ct = [w.path for w in report.written if "ct-3slice" in w.source]
    assert len(ct) == 3
    assert {p.rsplit("/", 1)[0] for p in ct} == {"99000/1/2"}


def test_duplicates_and_broken_input_are_reported(reference, testdata: Path) -> None:
    _, report = reference
    assert [f.source for f in report.failures] == [str(testdata / BROKEN)]
    assert "truncated" in report.failures[0].reason
    # the charset samples share SOP Instance UIDs: e.g. chrFren.dcm and chrFrenMulti.dcm
    assert {Path(d.source).name for d in report.duplicates} == {
        "chrFrenMulti.dcm", "chrJapMultiExplicitIR6.dcm", "chrSQEncoding1.dcm"}
    kept = {w.path for w in report.written}
    assert all(d.kept in kept for d in report.duplicates)
    assert len({w.sop_instance_uid for w in report.written}) == len(report.written)


def test_dicomdir_references_every_written_file(reference, fileset_paths) -> None:
    out, report = reference
    assert report.dicomdir == str(out / "DICOMDIR")
    assert fileset_paths(out / "DICOMDIR") == [w.path for w in report.written]
    records = series([read(out / "DICOMDIR")], keep_only_images=False)
    loaded = [ds for serie in records for ds in load_dicomdir_records(serie)]
    assert sorted(_sop_uid(ds) for ds in loaded) == sorted(w.sop_instance_uid for w in report.written)


def test_threads_and_processes_give_the_same_tree(reference, testdata: Path, tmp_path: Path) -> None:
    out, report = reference
    for scheduler in ("threads", "processes"):
        again = write_bag(db.from_sequence(_inputs(testdata), npartitions=3), tmp_path / scheduler,
                          scheduler=scheduler)
        assert _tree(tmp_path / scheduler) == _tree(out), scheduler
        assert again.written == report.written
        assert again.failures == report.failures


def test_distributed_cluster_gives_the_same_tree(reference, testdata: Path, tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    out, report = reference
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0") \
            as cluster, distributed.Client(cluster):
        datasets = db.from_sequence(_inputs(testdata), npartitions=5)
        again = write_bag(datasets, tmp_path)
    assert _tree(tmp_path) == _tree(out)
    assert again.written == report.written


def _hostile_datasets() -> list[DataSet]:
    out = []
    for index, value in enumerate(HOSTILE):
        ds = DataSet()
        ds.SOPClassUID = SecondaryCaptureImageStorage
        ds.SOPInstanceUID = f"{value}{index}"
        ds.PatientID, ds.StudyID, ds.StudyDescription = value, value, value
        ds.StudyInstanceUID = f"../study/{value}"
        ds.SeriesInstanceUID = f"{value}/series"
        ds.SeriesDescription, ds.SeriesNumber = value, index
        ds.PatientName = "Hostile^Test"
        out.append(ds)
    return out


@pytest.mark.parametrize("policy", [WritePolicy(), WritePolicy(naming=NamingPolicy.readable(), dicomdir=False),
                                    WritePolicy(naming=NamingPolicy(folders="uid"))],
                         ids=["conformant", "readable", "by-uid"])
def test_hostile_values_never_escape(policy: WritePolicy, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (tmp_path / "etc").mkdir()
    report = write_bag(db.from_sequence(_hostile_datasets(), npartitions=2), out, policy=policy,
                       scheduler="synchronous")
    assert len(report.written) == len(HOSTILE)
    # a backslash makes a UID multi-valued: written, but pydicom cannot make a directory record of it
    assert [f.source for f in report.failures] == ([w.path for w in report.written
                                                    if "\\" in w.sop_instance_uid] if policy.dicomdir else [])
    assert all("not in the DICOMDIR" in f.reason for f in report.failures)
    assert not list((tmp_path / "etc").iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["etc", "out"]
    pattern = CONFORMANT if policy.naming.dicom_conformant else PORTABLE
    files = [p for p in out.rglob("*") if p.is_file() and p.name != "DICOMDIR"]
    assert len(files) == len(HOSTILE)
    for written in report.written:
        assert all(pattern.match(part) for part in written.path.split("/")), written.path
        assert (out / written.path).resolve().is_relative_to(out.resolve())
    assert (report.dicomdir is not None) == policy.dicomdir


def test_partition_functions_work_without_dask(testdata: Path, tmp_path: Path) -> None:
    staging = tmp_path / "out" / ".staging"
    bad = DataSet()
    bad.PatientID = "no SOP UID"
    records = write_partition([testdata / "dcmqi/ct-3slice/01.dcm", bad, 42], staging, WritePolicy(), 7)
    assert isinstance(records[0], StagedFile)
    assert records[0].order == (7, 0)
    assert [type(r) for r in records[1:]] == [Failure, Failure]
    assert "SOP Instance UID" in records[1].reason
    assert "int" in records[2].reason
    assert len(list(staging.iterdir())) == 1  # nothing partial left for the failures
    report = finalize(records, tmp_path / "out", staging, WritePolicy(dicomdir=False))
    assert [w.path for w in report.written] == ["99000/1/2/1_2JYH5"]
    assert not staging.exists()


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("policy", [NamingPolicy(), NamingPolicy.readable()], ids=["dicom", "portable"])
def test_safe_component(value: str, policy: NamingPolicy) -> None:
    name = safe_component(value, policy)
    pattern = CONFORMANT if policy.alphabet == "dicom" else PORTABLE
    assert pattern.match(name)
    assert name not in (".", "..")
    assert len(name) <= policy.max_length
    assert name == safe_component(value, policy)


def test_collisions_are_resolved_deterministically() -> None:
    policy = NamingPolicy.readable()
    pairs = [("k1", "abc"), ("k2", "ABC"), ("k3", "abc"), ("k4", "x" * 300)]
    names = assign_names(pairs, policy, suffix=".dcm")
    assert len({n.casefold() for n in names.values()}) == 4
    assert names == assign_names(reversed(pairs), policy, suffix=".dcm")
    assert names["k1"] == "abc.dcm"
    assert names["k4"].endswith(".dcm")
    assert len(names["k4"]) == 64


def test_a_dicomdir_needs_conformant_names() -> None:
    with pytest.raises(ConfigError, match="PS3.10"):
        WritePolicy(naming=NamingPolicy.readable())
    with pytest.raises(ConfigError, match="hash_length"):
        NamingPolicy(max_length=4, hash_length=4)
