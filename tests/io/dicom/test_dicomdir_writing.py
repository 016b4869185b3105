"""The linear DICOMDIR writer against pydicom's FileSet: the same records, in the same order, at offsets
pydicom follows; files whose records cannot be made are left out, as FileSet refuses them."""

from __future__ import annotations

import copy
import io
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.fileset import FileSet
from pydicom.uid import generate_uid

from medipy.io.dicom import load_dicomdir_records, read, series
from medipy.io.dicom.dicomdir_writing import record_type, write_dicomdir

# images (single- and multi-frame, big endian, compressed), RT plan, RT dose, SR
SOURCES = ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "rtdose.dcm", "test-SR.dcm", "MR_small_bigendian.dcm",
           "SC_rgb_rle_2frame.dcm", "examples_overlay.dcm", "JPEG2000.dcm"]


def _instances(testdata: Path, folder: Path) -> list[tuple[list[str], pydicom.Dataset]]:
    """The corpus files (Type 1 record attributes they lack filled in, as medipy's writer does), plus two more
    slices of the CT series (the last without Study ID: no record), copied under conformant File IDs."""
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        headers = [pydicom.dcmread(testdata / "pydicom/test_files" / n, stop_before_pixels=True) for n in SOURCES]
    for ds in headers:
        for keyword, value in (("PatientID", "ANON"), ("StudyDate", "20000101"), ("StudyTime", "000000"),
                               ("StudyID", "1"), ("SeriesNumber", 1), ("InstanceNumber", 1)):
            if not ds.get(keyword):
                setattr(ds, keyword, value)
    for number in (2, 3):
        extra = copy.deepcopy(headers[0])
        extra.SOPInstanceUID = extra.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        extra.InstanceNumber = number
        headers.append(extra)
    del headers[-1].StudyID
    for index, ds in enumerate(headers):
        components = ["P", f"S{index % 3}", f"F{index:03d}"]
        (folder / "P" / components[1]).mkdir(parents=True, exist_ok=True)
        ds.save_as(folder.joinpath(*components), enforce_file_format=True)
        out.append((components, ds))
    return out


def _records(dicomdir: pydicom.Dataset) -> list[dict]:
    """Directory records without what depends on the layout: offsets and Referenced File IDs."""
    layout = {0x00041400, 0x00041420, 0x00041500}
    return [{e.tag: e.value for e in record if e.tag not in layout} for record in dicomdir.DirectoryRecordSequence]


def test_records_equal_pydicom_filesets_and_offsets_are_followed(testdata: Path, tmp_path: Path,
                                                                  fileset_paths) -> None:
    instances = _instances(testdata, tmp_path / "tree")
    reference = FileSet()
    refused, seen = set(), set()
    for components, ds in instances:
        try:
            reference.add(ds)
        except ValueError:  # a Type 1 attribute of its records is missing
            refused.add("/".join(components))
            continue
        if ds.SOPInstanceUID in seen:  # FileSet keeps the first (MR_small_bigendian is MR_small)
            refused.add("/".join(components))
        seen.add(ds.SOPInstanceUID)
    scratch = tmp_path / "scratch"
    reference.write(scratch)
    stage = reference._stage["t"]
    stage.cleanup()

    left_out = write_dicomdir(tmp_path / "tree" / "DICOMDIR", instances, fileset_id="MEDIPY")
    assert {"/".join(c) for c, _ in left_out} == refused
    assert all(any(w in reason for w in ("missing", "empty", "same SOP Instance UID")) for _, reason in left_out)
    ours = read(tmp_path / "tree" / "DICOMDIR")
    theirs = pydicom.dcmread(scratch / "DICOMDIR")
    assert _records(ours) == _records(theirs)
    again = io.BytesIO()  # pydicom re-encodes what it read into the same bytes: records framed as it would
    pydicom.dcmread(tmp_path / "tree" / "DICOMDIR").save_as(again, enforce_file_format=True)
    assert again.getvalue() == (tmp_path / "tree" / "DICOMDIR").read_bytes()
    assert {r.DirectoryRecordType for r in ours.DirectoryRecordSequence} >= {
        "PATIENT", "STUDY", "SERIES", "IMAGE", "RT PLAN", "RT DOSE", "SR DOCUMENT"}
    kept = sorted("/".join(c) for c, _ in instances if "/".join(c) not in refused)
    assert fileset_paths(tmp_path / "tree" / "DICOMDIR") == kept  # pydicom walks the tree by our offsets
    loaded = [ds for s in series([ours], keep_only_images=False) for ds in load_dicomdir_records(s)]
    by_uid = {ds.SOPInstanceUID: ds for _, ds in instances}
    assert len(loaded) == len(kept)
    for ds in loaded:  # medipy's own reader, file by file
        assert ds.SOPInstanceUID in by_uid
        assert ds.SeriesInstanceUID == by_uid[ds.SOPInstanceUID].SeriesInstanceUID


def test_the_same_files_give_the_same_dicomdir(testdata: Path, tmp_path: Path) -> None:
    instances = _instances(testdata, tmp_path)
    write_dicomdir(tmp_path / "A", instances)
    write_dicomdir(tmp_path / "B", instances)
    assert (tmp_path / "A").read_bytes() == (tmp_path / "B").read_bytes()
    write_dicomdir(tmp_path / "C", instances[:-2])  # one indexed file less (the last one has no record)
    assert pydicom.dcmread(tmp_path / "C").file_meta.MediaStorageSOPInstanceUID != pydicom.dcmread(
        tmp_path / "A").file_meta.MediaStorageSOPInstanceUID
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize(("name", "expected"), [("CT_small.dcm", "IMAGE"), ("rtplan.dcm", "RT PLAN"),
                                                ("test-SR.dcm", "SR DOCUMENT"), ("rtdose.dcm", "RT DOSE")])
def test_record_types_follow_pydicom(testdata: Path, name: str, expected: str) -> None:
    assert record_type(pydicom.dcmread(testdata / "pydicom/test_files" / name)) == (expected, False)


def test_single_level_instances_are_root_records(testdata: Path, tmp_path: Path, fileset_paths) -> None:
    """A Color Palette (a single-level SOP Class: no patient, study or series) is indexed by a root PALETTE
    record, beside the PATIENT records, as pydicom's FileSet indexes it."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    palette = pydicom.Dataset()
    palette.file_meta = FileMetaDataset()
    palette.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    palette.SOPClassUID = palette.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.39.1"
    palette.SOPInstanceUID = palette.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    palette.ContentLabel, palette.ContentDescription = "HOT_IRON", "Hot iron"
    (tmp_path / "tree" / "PAL").mkdir(parents=True)
    palette.save_as(tmp_path / "tree" / "PAL" / "HOTIRON", enforce_file_format=True)
    image = _instances(testdata, tmp_path / "tree")[0]
    instances = [image, (["PAL", "HOTIRON"], palette)]

    assert write_dicomdir(tmp_path / "tree" / "DICOMDIR", instances) == []
    reference = FileSet()
    for _, ds in instances:
        reference.add(ds)
    reference.write(tmp_path / "scratch")
    reference._stage["t"].cleanup()
    assert _records(read(tmp_path / "tree" / "DICOMDIR")) == _records(
        pydicom.dcmread(tmp_path / "scratch" / "DICOMDIR"))

    ours = pydicom.dcmread(tmp_path / "tree" / "DICOMDIR")
    records = {r.seq_item_tell: r for r in ours.DirectoryRecordSequence}
    roots, offset = [], ours.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity
    while offset:  # the root chain, by the offsets medipy wrote
        roots.append(records[offset])
        offset = records[offset].OffsetOfTheNextDirectoryRecord
    assert sorted(r.DirectoryRecordType for r in roots) == ["PALETTE", "PATIENT"]
    (leaf,) = [r for r in roots if r.DirectoryRecordType == "PALETTE"]
    assert (leaf.ContentLabel, leaf.ReferencedFileID, leaf.OffsetOfReferencedLowerLevelDirectoryEntity) == (
        "HOT_IRON", ["PAL", "HOTIRON"], 0)
    assert fileset_paths(tmp_path / "tree" / "DICOMDIR") == sorted(["/".join(image[0]), "PAL/HOTIRON"])
