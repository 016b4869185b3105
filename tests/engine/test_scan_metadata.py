"""The DICOM JSON entries of the scan: one batch shares converted elements between files (ElementMemo), and
what it stores must still be, file by file, what pydicom makes of that file alone."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pydicom
import pytest

import medipy.io.dicom
from medipy.engine.scan import ScannedFile, scan_files

_SKIPPED_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN", "SQ"}


def _expected(path: Path) -> dict[str, dict]:
    """Public, non-binary, non-sequence elements of a file as pydicom's own DICOM JSON, file read on its own."""
    ds = medipy.io.dicom.read(path)  # pydicom, and medipy's repairs of files without meta or with stray bytes
    out = {}
    for tag in list(ds.keys()):
        group = tag >> 16
        if group & 1 or group in (0x0002, 0x7FE0) or tag == 0x00280008:
            continue
        try:
            element = ds[tag]
            entry = element.to_json_dict(None, 0)
        except Exception:  # noqa: BLE001 - an undecodable value is left out by the scan as well
            continue
        if element.VR in _SKIPPED_VRS or not element.keyword or len(str(entry.get("Value", ""))) > 4096:
            continue
        out[f"{int(tag):08X}"] = entry
    return out


def _copies(source: Path, folder: Path) -> list[Path]:
    """Files whose elements hold the same bytes under different character sets, one after the other."""
    ds = pydicom.dcmread(source)
    out = []
    # b"Caf\xc3\xa9" in each: "CafÃ©" in Latin-1, "Café" in UTF-8; the memo must not share their values
    for name, charset, patient in [("latin1.dcm", "ISO_IR 100", "CafÃ©"), ("utf8.dcm", "ISO_IR 192", "Café"),
                                   ("latin1_again.dcm", "ISO_IR 100", "CafÃ©")]:
        ds.SpecificCharacterSet = charset
        ds.PatientName = patient
        ds.InstitutionName = patient
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.save_as(folder / name, enforce_file_format=True)
        out.append(folder / name)
    return out


def test_entries_of_a_batch_equal_pydicom_file_by_file(testdata: Path, tmp_path: Path) -> None:
    files = sorted((testdata / "pydicom/test_files").glob("*.dcm"))  # encodings, VRs and modalities mixed
    files += sorted((testdata / "pydicom/charset_files").glob("*.dcm"))  # character sets, ISO 2022 escapes
    files += sorted((testdata / "dcmqi/ct-3slice").iterdir())  # one series: most values shared
    files += sorted((testdata / "dcm_qa_nih/In/20180918Si/mr_0003").glob("*.dcm"))
    files += _copies(testdata / "pydicom/test_files/MR_small.dcm", tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pydicom on the corpus' deliberately odd files
        scanned = [s for s in scan_files([str(f) for f in files]) if isinstance(s, ScannedFile)]
        checked = 0
        for item in scanned:
            if item.records[0].frame is not None:
                continue  # frame headers merge functional groups: not one pydicom dataset
            ours = {tag: json.loads(text) for tag, text in item.headers[0]}
            assert ours == _expected(Path(item.path)), item.path
            checked += 1
    assert checked >= 40
    names = {Path(s.path).name: json.loads(dict(s.headers[0])["00100010"]) for s in scanned
             if Path(s.path).parent == tmp_path}
    assert names["latin1.dcm"]["Value"] == [{"Alphabetic": "CafÃ©"}] == names["latin1_again.dcm"]["Value"]
    assert names["utf8.dcm"]["Value"] == [{"Alphabetic": "Café"}]


@pytest.mark.parametrize("name", ["MR_small_implicit.dcm", "MR_small_bigendian.dcm"])
def test_encodings_with_equal_values_give_equal_entries(testdata: Path, name: str) -> None:
    base, other = scan_files([str(testdata / "pydicom/test_files" / n) for n in ("MR_small.dcm", name)])
    assert isinstance(base, ScannedFile)
    assert isinstance(other, ScannedFile)
    assert dict(base.headers[0]) == dict(other.headers[0])  # same values, other bytes: nothing shared wrongly
    assert {t: json.loads(v) for t, v in other.headers[0]} == _expected(testdata / "pydicom/test_files" / name)


def test_entries_equal_pydicom_over_the_whole_corpus_in_one_batch(testdata: Path) -> None:
    """Every vendor, encoding and character set of the corpus in one batch: nothing shared across encodings."""
    from medipy.engine.scan import list_files

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        checked = 0
        for item in scan_files(list_files(str(testdata))):
            if not isinstance(item, ScannedFile) or item.records[0].frame is not None:
                continue
            ours = {tag: json.loads(text) for tag, text in item.headers[0]}
            assert ours == _expected(Path(item.path)), item.path
            checked += 1
    assert checked > 500, checked


def test_elements_without_a_keyword_are_left_out_as_pydicom_leaves_them(testdata: Path, tmp_path: Path) -> None:
    ds = pydicom.dcmread(testdata / "pydicom/test_files/CT_small.dcm")
    ds.add_new(0x00180061, "DS", "1.5")  # retired, in pydicom's dictionary without a keyword
    path = tmp_path / "no_keyword.dcm"
    ds.save_as(path, enforce_file_format=True)
    (item,) = scan_files([str(path)])
    assert isinstance(item, ScannedFile)
    ours = {tag: json.loads(text) for tag, text in item.headers[0]}
    assert "00180061" not in ours
    assert ours == _expected(path)
