"""write(): UTF-8 text, public elements only, valid File Meta, atomic, caller's dataset untouched."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.filewriter import validate_file_meta
from pydicom.uid import ExplicitVRLittleEndian

import medipy.io.dicom.writing as writing
from medipy.errors import DicomError
from medipy.io.dicom.dataset import DataSet
from medipy.io.dicom.reading import read
from medipy.io.dicom.writing import IMPLEMENTATION_CLASS_UID, write

CHARSETS = "pydicom/charset_files"
TEXT_VRS = {"SH", "LO", "ST", "LT", "UC", "UT", "PN"}

# Patient's Name of each file, decoded (FileInfo.txt of the folder lists the encoded bytes)
PATIENT_NAMES = {
    "chrArab.dcm": "قباني^لنزار",
    "chrFren.dcm": "Buc^Jérôme",
    "chrFrenMulti.dcm": "Buc^Jérôme",
    "chrGerm.dcm": "Äneas^Rüdiger",
    "chrGreek.dcm": "Διονυσιος",
    "chrH31.dcm": "Yamada^Tarou=山田^太郎=やまだ^たろう",
    "chrH32.dcm": "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう",
    "chrHbrw.dcm": "שרון^דבורה",
    "chrI2.dcm": "Hong^Gildong=洪^吉洞=홍^길동",
    "chrJapMulti.dcm": "やまだ^たろう",
    "chrJapMultiExplicitIR6.dcm": "やまだ^たろう",
    "chrKoreanMulti.dcm": "김희중",
    "chrRuss.dcm": "Люкceмбypг",
    "chrX1.dcm": "Wang^XiaoDong=王^小東",
    "chrX2.dcm": "Wang^XiaoDong=王^小东",
}


def _texts(ds: Dataset) -> list[tuple[str, str]]:
    """(tag, decoded value) of every public text element, sequences included."""
    return [(str(elem.tag), str(elem.value)) for elem in ds.iterall()
            if elem.VR in TEXT_VRS and not elem.tag.is_private]


def test_charset_table_covers_folder(testdata: Path) -> None:
    names = {path.name for path in (testdata / CHARSETS).glob("*.dcm")}
    assert names == set(PATIENT_NAMES) | {"chrSQEncoding.dcm", "chrSQEncoding1.dcm"}


@pytest.mark.parametrize(("name", "patient_name"), sorted(PATIENT_NAMES.items()))
def test_charset_round_trip(testdata: Path, tmp_path: Path, name: str, patient_name: str) -> None:
    ds = read(testdata / CHARSETS / name)
    assert str(ds.PatientName) == patient_name
    out = tmp_path / name
    write(ds, out)
    back = pydicom.dcmread(out)
    assert back.SpecificCharacterSet == "ISO_IR 192"
    assert str(back.PatientName) == patient_name
    raw = pydicom.dcmread(out).get_item("PatientName").value
    assert raw.rstrip(b" ") == patient_name.encode("utf-8")
    assert _texts(back) == _texts(ds)


@pytest.mark.parametrize("name", ["chrSQEncoding.dcm", "chrSQEncoding1.dcm"])
def test_sequence_with_own_charset(testdata: Path, tmp_path: Path, name: str) -> None:
    ds = read(testdata / CHARSETS / name)
    write(ds, tmp_path / name)
    back = pydicom.dcmread(tmp_path / name)
    item = back.RequestedProcedureCodeSequence[0]
    assert str(item.PatientName) == "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう"
    assert item.get("SpecificCharacterSet", "ISO_IR 192") == "ISO_IR 192"
    assert str(back.RequestingPhysician) == "Doctor^Who^^MD"
    assert _texts(back) == _texts(ds)


@pytest.mark.parametrize("name", ["pydicom_data/MR-SIEMENS-DICOM-WithOverlays.dcm", "nibabel_nicom/0.dcm",
                                  "nibabel_nicom/csa_slice_norm.dcm", "pydicom/test_files/priv_SQ.dcm"])
def test_private_elements_dropped(testdata: Path, tmp_path: Path, name: str) -> None:
    ds = read(testdata / name)
    private_before = [elem.tag for elem in ds.iterall() if elem.tag.is_private]
    assert private_before
    if "SOPClassUID" not in ds:  # priv_SQ.dcm is a bare dataset
        ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.7", "1.2.3.4"
    out = tmp_path / "out.dcm"
    write(ds, out)
    back = pydicom.dcmread(out)
    assert [elem.tag for elem in back.iterall() if elem.tag.group % 2] == []
    public = [str(elem.tag) for elem in ds.iterall()
              if not elem.tag.group % 2 and elem.tag.element != 0 and elem.tag != 0x00080005]
    assert public
    assert set(public) <= {str(elem.tag) for elem in back.iterall()}


def test_private_inside_public_sequence_dropped(tmp_path: Path) -> None:
    ds = DataSet()
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.7", "1.2.3.4"
    item = Dataset()
    item.CodeValue = "X"
    block = item.private_block(0x0029, "ACME 1.0", create=True)
    block.add_new(0x01, "LO", "secret")
    ds.ReferencedImageSequence = [item]
    write(ds, tmp_path / "out.dcm")
    back = pydicom.dcmread(tmp_path / "out.dcm")
    assert list(back.ReferencedImageSequence[0].keys()) == [pydicom.tag.Tag("CodeValue")]


def test_file_meta_valid(testdata: Path, tmp_path: Path) -> None:
    ds = read(testdata / "pydicom/test_files/MR_small_implicit.dcm")
    write(ds, tmp_path / "out.dcm")
    back = pydicom.dcmread(tmp_path / "out.dcm")  # no force: a conformant Part 10 file
    assert back.preamble == b"\x00" * 128
    validate_file_meta(back.file_meta, enforce_standard=True)
    assert back.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert back.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID
    assert back.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert back.file_meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
    assert back.file_meta.ImplementationVersionName.startswith("MEDIPY")
    np.testing.assert_array_equal(back.pixel_array, ds.pixel_array)


@pytest.mark.parametrize("name", ["dcm_qa_ts/In/4.dcm", "dcm_qa_ts/In/5.dcm", "dcm_qa_ts/In/7.dcm",
                                  "dcm_qa_ts/In/9.dcm", "pydicom/test_files/MR_small_RLE.dcm",
                                  "pydicom_data/693_J2KR.dcm", "deid_data/humans/ctbrain1.dcm"])
def test_compressed_keeps_transfer_syntax(testdata: Path, tmp_path: Path, name: str) -> None:
    ds = read(testdata / name)
    write(ds, tmp_path / "out.dcm")
    back = read(tmp_path / "out.dcm")
    assert back.transfer_syntax == ds.transfer_syntax
    assert pydicom.uid.UID(back.transfer_syntax).is_compressed
    np.testing.assert_array_equal(back.pixel_array, ds.pixel_array)


@pytest.mark.parametrize("name", ["dcm_qa_ts/In/2.dcm", "dcm_qa_ts/In/3.dcm",
                                  "pydicom/test_files/MR_small_bigendian.dcm",
                                  "pydicom/test_files/image_dfl.dcm",
                                  "pydicom_data/emri_small_big_endian.dcm"])
def test_uncompressed_becomes_explicit_little_endian(testdata: Path, tmp_path: Path, name: str) -> None:
    ds = read(testdata / name)
    write(ds, tmp_path / "out.dcm")
    back = read(tmp_path / "out.dcm")
    assert back.transfer_syntax == ExplicitVRLittleEndian
    np.testing.assert_array_equal(back.pixel_array, ds.pixel_array)
    assert back.Rows == ds.Rows
    assert str(back.PatientName) == str(ds.PatientName)


def test_caller_dataset_unchanged(testdata: Path, tmp_path: Path) -> None:
    ds = read(testdata / CHARSETS / "chrH32.dcm")
    before = copy.deepcopy(ds)
    meta_before = copy.deepcopy(ds.file_meta)
    write(ds, tmp_path / "out.dcm")
    assert ds == before
    assert ds.file_meta == meta_before
    assert ds.SpecificCharacterSet == ["ISO 2022 IR 13", "ISO 2022 IR 87"]
    assert ds.path == str(testdata / CHARSETS / "chrH32.dcm")


def test_caller_private_elements_kept(testdata: Path, tmp_path: Path) -> None:
    ds = read(testdata / "nibabel_nicom/0.dcm")
    count = sum(1 for elem in ds.iterall() if elem.tag.is_private)
    write(ds, tmp_path / "out.dcm")
    assert sum(1 for elem in ds.iterall() if elem.tag.is_private) == count


def test_new_dataset(tmp_path: Path) -> None:
    ds = DataSet()
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.7", "1.2.3.4.5"
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = "Buc^Jérôme"
    ds.StudyDescription = b"Cr\xe2ne"  # bytes in the dataset's charset
    write(ds, tmp_path / "new.dcm")
    back = pydicom.dcmread(tmp_path / "new.dcm")
    assert str(back.PatientName) == "Buc^Jérôme"
    assert back.StudyDescription == "Crâne"
    assert back.SpecificCharacterSet == "ISO_IR 192"


def test_missing_sop_class(tmp_path: Path) -> None:
    ds = DataSet()
    ds.PatientName = "Doe^John"
    with pytest.raises(DicomError, match="SOPClassUID") as info:
        write(ds, tmp_path / "out.dcm")
    assert str(tmp_path / "out.dcm") in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_missing_folder(tmp_path: Path) -> None:
    ds = DataSet()
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.7", "1.2.3.4.5"
    target = tmp_path / "nope" / "out.dcm"
    with pytest.raises(DicomError) as info:
        write(ds, target)
    assert str(target) in str(info.value)


@pytest.mark.parametrize("existing", [False, True])
def test_interrupted_write_leaves_nothing(testdata: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          existing: bool) -> None:
    ds = read(testdata / "pydicom/test_files/CT_small.dcm")
    target = tmp_path / "out.dcm"
    if existing:
        target.write_bytes(b"previous content")
    real_dcmwrite = writing.dcmwrite

    def crashing_dcmwrite(fp, dataset, **kwargs):
        real_dcmwrite(fp, dataset, **kwargs)  # the whole file is written to the temporary file...
        fp.flush()
        assert fp.tell() > 1000
        raise OSError("disk full")  # ...then the crash comes before the rename

    monkeypatch.setattr(writing, "dcmwrite", crashing_dcmwrite)
    with pytest.raises(DicomError, match="disk full") as info:
        write(ds, target)
    assert isinstance(info.value.__cause__, OSError)
    assert str(target) in str(info.value)
    if existing:
        assert [p.name for p in tmp_path.iterdir()] == ["out.dcm"]
        assert target.read_bytes() == b"previous content"
    else:
        assert list(tmp_path.iterdir()) == []


def test_interrupted_midway(testdata: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The serialisation fails halfway through the elements (inside pydicom's writer)."""
    ds = read(testdata / "pydicom/test_files/CT_small.dcm")
    calls = {"n": 0}
    real = pydicom.filewriter.write_data_element

    def failing(fp, elem, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 40:
            raise ValueError("boom")
        return real(fp, elem, *args, **kwargs)

    monkeypatch.setattr(pydicom.filewriter, "write_data_element", failing)
    with pytest.raises(DicomError, match="boom"):
        write(ds, tmp_path / "out.dcm")
    assert calls["n"] == 40
    assert list(tmp_path.iterdir()) == []


def test_overwrite(testdata: Path, tmp_path: Path) -> None:
    target = tmp_path / "out.dcm"
    write(read(testdata / "pydicom/test_files/CT_small.dcm"), target)
    write(read(testdata / "pydicom/test_files/MR_small.dcm"), target)
    assert pydicom.dcmread(target).Modality == "MR"
    assert [p.name for p in tmp_path.iterdir()] == ["out.dcm"]


def test_text_bytes_decoded_with_iso2022(testdata: Path, tmp_path: Path) -> None:
    """A text value still in bytes is decoded with the dataset's code extensions (escape sequences)."""
    source = pydicom.dcmread(testdata / CHARSETS / "chrH32.dcm")
    encoded = source.get_item("PatientName").value
    ds = DataSet()
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.7", "1.2.3.4.5"
    ds.SpecificCharacterSet = ["ISO 2022 IR 13", "ISO 2022 IR 87"]
    ds.add_new("StudyDescription", "LO", encoded)
    write(ds, tmp_path / "out.dcm")
    assert pydicom.dcmread(tmp_path / "out.dcm").StudyDescription == PATIENT_NAMES["chrH32.dcm"]
    assert ds.StudyDescription == encoded
