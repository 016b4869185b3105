"""medipy.io.dicom.reading.read on the real corpus: odd-but-valid files read, broken and non-DICOM files fail
with the specific medipy error, never a bare pydicom/struct/EOF error."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian

from medipy.errors import BrokenDicomError, NotDicomError
from medipy.io.dicom.dataset import DataSet
from medipy.io.dicom.reading import read

PYDICOM = "pydicom/test_files"
XA30_GZ = "derived_broken/2001001_1.3.12.2.1107.5.2.43.67093.30000023011319484937100000267.dcm.gz"

# (file, what the message says it looks like)
NOT_DICOM = [
    ("derived_broken/empty.dcm", "empty"),
    ("derived_broken/preamble_only.dcm", "only the 128-byte preamble"),
    ("derived_broken/text_named.dcm", "a text file"),
    ("derived_broken/nifti_named.dcm", "NIfTI-1"),
    ("derived_broken/DICOMDIR", "JSON"),
    (XA30_GZ, "gzip"),
    (f"{PYDICOM}/zipMR.gz", "gzip"),
    (f"{PYDICOM}/README.txt", "a text file"),
    (f"{PYDICOM}/test1.json", "JSON"),
    (f"{PYDICOM}/crayons.icc", "ICC"),
    (f"{PYDICOM}/rtplan.dump", "a text file"),
    ("nibabel_nicom/siemens_dwi_0.dcm.gz", "gzip"),
    ("nibabel_nicom/csa2_b0.bin", "unrecognised binary data"),
    ("dcm_qa_ts/Ref/1.nii", "NIfTI-1"),
]

# (file, what the message names), all really truncated (pydicom itself reads them silently)
BROKEN = [
    ("derived_broken/truncated_in_header.dcm", "(0008,0080) is truncated"),
    ("derived_broken/truncated_in_pixeldata.dcm", "(7FE0,0010) is truncated"),
    ("derived_broken/series_with_truncated_slice/IMG0003.dcm", "(7FE0,0010) is truncated"),
    (f"{PYDICOM}/MR_truncated.dcm", "(7FE0,0010) is truncated"),
    (f"{PYDICOM}/rtplan_truncated.dcm", "(300A,00B0) is truncated"),
    ("pydicom_data/emri_small_jpeg_2k_lossless_too_short.dcm", "sequence delimiter"),
]

# (file, PatientName, Rows, SOPInstanceUID): odd but valid files
GOOD = [
    ("derived_broken/no_preamble_meta_kept.dcm", "Anonymous", 38, None),
    ("derived_broken/no_preamble_no_meta.dcm", "Anonymous", 38, None),
    ("derived_broken/series_with_truncated_slice/IMG0001.dcm", "Anonymous", 38, None),
    ("derived_broken/series_with_truncated_slice/IMG0002.dcm", "Anonymous", 38, None),
    ("derived_broken/series_with_missing_slice/001.dcm", "dicom2nifti", 64, None),
    ("derived_broken/series_with_missing_slice/003.dcm", "dicom2nifti", 64, None),
    ("derived_broken/series_with_missing_slice/004.dcm", "dicom2nifti", 64, None),
    (f"{PYDICOM}/no_meta.dcm", "CompressedSamples^CT1", 128,
     "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"),  # one stray byte before the dataset
    (f"{PYDICOM}/ExplVR_LitEndNoMeta.dcm", None, None, "1.2.333.4444.5.6.7.8"),
    (f"{PYDICOM}/ExplVR_BigEndNoMeta.dcm", None, None, "1.2.333.4444.5.6.7.8"),
    (f"{PYDICOM}/meta_missing_tsyntax.dcm", None, None, None),
    (f"{PYDICOM}/no_meta_group_length.dcm", None, None, None),
    (f"{PYDICOM}/image_dfl.dcm", "^^^^", 512, "1.3.6.1.4.1.5962.1.1.0.0.0.977067309.6001.0"),
    (f"{PYDICOM}/MR_small_bigendian.dcm", "CompressedSamples^MR1", 64,
     "1.3.6.1.4.1.5962.1.1.4.1.1.20040826185059.5457"),
    (f"{PYDICOM}/ExplVR_BigEnd.dcm", "Anonymized", 60,
     "1.2.840.1136190195280574824680000700.3.0.1.19970424140438"),
    (f"{PYDICOM}/badVR.dcm", "Lastname^Firstname", 10, "1.9.999.999.99.9.9999.9999.20030818153516"),
    (f"{PYDICOM}/JPEG2000-embedded-sequence-delimiter.dcm", "CompressedSamples^NM1", 1024,
     "1.3.6.1.4.1.5962.1.1.8.1.3.20040826185059.5457"),
    (f"{PYDICOM}/UN_sequence.dcm", None, None, None),
    (f"{PYDICOM}/empty_charset_LEI.dcm", None, None, None),
    ("pydicom_data/bad_sequence.dcm", "2e2884fea560", 512, None),
]


@pytest.mark.parametrize(("name", "looks_like"), NOT_DICOM)
def test_not_dicom(testdata: Path, name: str, looks_like: str) -> None:
    path = testdata / name
    with pytest.raises(NotDicomError) as info:
        read(path)
    assert type(info.value) is NotDicomError
    assert str(path) in str(info.value)
    assert info.value.path == str(path)
    assert looks_like in str(info.value)


@pytest.mark.parametrize(("name", "where"), BROKEN)
def test_broken(testdata: Path, name: str, where: str) -> None:
    path = testdata / name
    with pytest.raises(BrokenDicomError) as info:
        read(path)
    assert type(info.value) is BrokenDicomError
    assert str(path) in str(info.value)
    assert where in str(info.value)
    assert info.value.__cause__ is not None or "truncated" in str(info.value)


@pytest.mark.parametrize(("name", "rows"), [
    ("derived_broken/truncated_in_pixeldata.dcm", 512),
    (f"{PYDICOM}/MR_truncated.dcm", 64),
    ("pydicom_data/emri_small_jpeg_2k_lossless_too_short.dcm", 64),
])
def test_truncated_pixel_data_reads_without_pixels(testdata: Path, name: str, rows: int) -> None:
    ds = read(testdata / name, stop_before_pixels=True)
    assert ds.Rows == rows
    assert "PixelData" not in ds


def test_truncated_header_is_broken_even_without_pixels(testdata: Path) -> None:
    with pytest.raises(BrokenDicomError):
        read(testdata / "derived_broken/truncated_in_header.dcm", stop_before_pixels=True)


@pytest.mark.parametrize(("name", "patient_name", "rows", "sop_instance_uid"), GOOD)
def test_odd_but_valid(testdata: Path, name: str, patient_name: str | None, rows: int | None,
                       sop_instance_uid: str | None) -> None:
    path = testdata / name
    ds = read(path)
    assert isinstance(ds, DataSet)
    assert ds.path == str(path)
    assert (None if "PatientName" not in ds else str(ds.PatientName)) == patient_name
    assert ds.get("Rows") == rows
    if sop_instance_uid is not None:
        assert ds.SOPInstanceUID == sop_instance_uid
    assert len(ds) > 0


def test_big_endian_pixels_equal_little_endian(testdata: Path) -> None:
    big = read(testdata / PYDICOM / "MR_small_bigendian.dcm")
    little = read(testdata / PYDICOM / "MR_small.dcm")
    assert big.transfer_syntax == ExplicitVRBigEndian
    np.testing.assert_array_equal(big.pixel_array, little.pixel_array)


def test_deflate(testdata: Path) -> None:
    ds = read(testdata / PYDICOM / "image_dfl.dcm")
    assert ds.transfer_syntax == DeflatedExplicitVRLittleEndian
    assert ds.pixel_array.shape == (512, 512)


def test_file_meta_and_preamble_kept(testdata: Path) -> None:
    ds = read(testdata / PYDICOM / "CT_small.dcm")
    assert ds.preamble[:4] == b"II*\x00"  # this file's preamble is a TIFF header
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.PatientName == "CompressedSamples^CT1"


def test_no_preamble_has_no_preamble(testdata: Path) -> None:
    ds = read(testdata / "derived_broken/no_preamble_meta_kept.dcm")
    assert getattr(ds, "preamble", None) is None
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2"


@pytest.mark.parametrize("number", range(2, 10))
def test_every_transfer_syntax_decodes_identically(testdata: Path, number: int) -> None:
    reference = read(testdata / "dcm_qa_ts/In/1.dcm").pixel_array
    ds = read(testdata / f"dcm_qa_ts/In/{number}.dcm")
    assert reference.shape == (384, 384)
    np.testing.assert_array_equal(ds.pixel_array, reference)


def test_defer_size_loads_on_access(testdata: Path) -> None:
    path = testdata / PYDICOM / "CT_small.dcm"
    deferred = read(path, defer_size=1024)
    assert deferred.PatientName == "CompressedSamples^CT1"
    np.testing.assert_array_equal(deferred.pixel_array, read(path).pixel_array)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read(tmp_path / "nothing.dcm")


def test_pickle(testdata: Path) -> None:
    ds = read(testdata / PYDICOM / "MR_small.dcm")
    back = pickle.loads(pickle.dumps(ds))
    assert back.path == ds.path
    assert back.PatientName == ds.PatientName
    np.testing.assert_array_equal(back.pixel_array, ds.pixel_array)


@pytest.mark.parametrize("source", ["dcmqi/23x38x3/image/IMG0001.dcm", f"{PYDICOM}/rtplan.dcm",
                                    f"{PYDICOM}/MR_small_bigendian.dcm", f"{PYDICOM}/image_dfl.dcm"])
def test_any_truncation_gives_a_medipy_error(testdata: Path, tmp_path: Path, source: str) -> None:
    """Cut a real file at many places: it reads (cut between elements is undetectable) or fails with
    NotDicomError/BrokenDicomError, never another exception."""
    data = (testdata / source).read_bytes()
    failures = 0
    for cut in range(0, len(data), max(1, len(data) // 60)):
        path = tmp_path / f"cut_{cut}.dcm"
        path.write_bytes(data[:cut])
        try:
            read(path)
        except (NotDicomError, BrokenDicomError):
            failures += 1
    assert failures > 0


# --- the scan's parse from a window of the file's first bytes (reading._read_windowed) -----------------------


def _native_file(path: Path, *, implicit: bool = False, before_pixels: bytes | None = None,
                 trailing: bool = False, rows: int = 256) -> np.ndarray:
    """A CT-like file with native pixels (a ``before_pixels`` private OB value and a trailing padding element
    when asked); returns its pixels."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

    pixels = (np.arange(rows * rows, dtype=np.int16).reshape(rows, rows) % 2000) - 1000
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName, ds.Modality, ds.SeriesInstanceUID = "Test^Window", "CT", generate_uid()
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.ImagePositionPatient, ds.ImageOrientationPatient = [0, 0, 0], [1, 0, 0, 0, 1, 0]
    ds.Rows = ds.Columns = rows
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    if before_pixels is not None:
        ds.add_new(0x00290010, "LO", "MEDIPY TEST")
        ds.add_new(0x00291010, "OB", before_pixels)
    ds.PixelData = pixels.tobytes()
    if trailing:
        ds.add_new(0xFFFCFFFC, "OB", b"\0" * 64)  # Data Set Trailing Padding
    ds.save_as(path, enforce_file_format=True)
    return pixels


def _same_dataset(ours, theirs) -> None:
    """Same elements (raw or not, VR, length, value, where the value is), meta, encoding and file name."""
    def elements(ds):
        return [(int(e.tag), e.VR, getattr(e, "length", None), e.value, getattr(e, "value_tell", None))
                for e in ds._dict.values()]

    assert elements(ours) == elements(theirs)
    # File Meta: the same values (pydicom's parse converts some while looking for the encoding, ours later)
    assert [(e.tag, e.VR, e.value) for e in ours.file_meta] == [(e.tag, e.VR, e.value) for e in theirs.file_meta]
    assert ours.preamble == theirs.preamble
    assert ours.original_encoding == theirs.original_encoding
    assert ours.original_character_set == theirs.original_character_set
    assert ours.filename == theirs.filename
    assert ours.timestamp == theirs.timestamp
    # every other attribute of both objects too (the usual file's datasets are not made by their constructors)
    for mine, pydicoms in ((ours, theirs), (ours.file_meta, theirs.file_meta)):
        assert type(mine) is type(pydicoms)
        assert ({k: v for k, v in vars(mine).items() if k not in ("_dict", "file_meta")}
                == {k: v for k, v in vars(pydicoms).items() if k not in ("_dict", "file_meta")})


def _parse_both(path: Path):
    import pydicom

    from medipy.io.dicom.reading import parse_file

    ours = parse_file(str(path), defer_size=1024, check="lengths")
    theirs = pydicom.dcmread(str(path), defer_size=1024, force=True)
    return ours, theirs


@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
@pytest.mark.parametrize("header", ["short", "long"])
def test_windowed_parse_of_native_pixels_is_pydicoms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     implicit: bool, header: str) -> None:
    """A short header is held by the window's first step, a longer one (~20 KB, as with private vendor
    elements) by its second: both parsed from the window, the same dataset as pydicom's."""
    import pydicom

    from medipy.io.dicom import reading

    path = tmp_path / "native.dcm"
    pixels = _native_file(path, implicit=implicit, before_pixels=None if header == "short" else b"\x07" * 20000)
    assert path.stat().st_size > reading.WINDOW_BYTES  # the window holds the header only
    theirs = pydicom.dcmread(str(path), defer_size=1024, force=True)

    def refused(*args, **kwargs):
        raise AssertionError("the header was parsed from the file, not from the window")

    searched: list[int] = []  # the window's length at each look for the Pixel Data
    find = reading._native_pixels_at
    monkeypatch.setattr(reading, "_native_pixels_at", lambda data, size: searched.append(len(data)) or find(data, size))
    monkeypatch.setattr(reading.pydicom, "dcmread", refused)
    ours = reading.parse_file(str(path), defer_size=1024, check="lengths")
    monkeypatch.undo()
    steps = [reading.FIRST_WINDOW_BYTES] if header == "short" else [reading.FIRST_WINDOW_BYTES, reading.WINDOW_BYTES]
    assert searched == steps
    _same_dataset(ours, theirs)
    assert ours.buffer is None
    np.testing.assert_array_equal(ours.pixel_array, pixels)  # the deferred value, read from the file by name
    assert ours.PatientName == "Test^Window"


@pytest.mark.parametrize("case", ["small", "long header", "trailing padding", "false pixel data tag",
                                  "compressed"])
def test_windowed_parse_falls_back_to_pydicoms_parse(tmp_path: Path, testdata: Path, case: str) -> None:
    """Whatever the window cannot hold for sure is parsed from the file, and a file the window holds whole
    ("small") is parsed from it: either way the dataset is pydicom's."""
    from medipy.io.dicom import reading

    path = tmp_path / "file.dcm"
    if case == "small":  # the whole file fits the window
        path.write_bytes((testdata / PYDICOM / "CT_small.dcm").read_bytes())
        assert path.stat().st_size < reading.WINDOW_BYTES
    elif case == "long header":  # the Pixel Data starts past the window
        _native_file(path, before_pixels=bytes(range(256)) * 300)
    elif case == "trailing padding":  # an element after the Pixel Data: it does not end the file
        _native_file(path, trailing=True)
    elif case == "false pixel data tag":  # in the window, a value holding the bytes of a Pixel Data header with
        marker = b"\xe0\x7f\x10\x00OW\x00\x00" + b"LEN!"  # a length to the end of the file; header past it
        _native_file(path, before_pixels=b"\x01" * 100 + marker + b"\x02" * 80000)
        data = path.read_bytes()
        at = data.index(marker)
        data = data.replace(b"LEN!", (len(data) - at - 12).to_bytes(4, "little"))
        path.write_bytes(data)
        assert reading._native_pixels_at(data[:reading.WINDOW_BYTES], len(data)) == at + 12  # found, but false
    else:  # encapsulated Pixel Data of undefined length
        path.write_bytes((testdata / PYDICOM / "MR_small_RLE.dcm").read_bytes())
    ours, theirs = _parse_both(path)
    _same_dataset(ours, theirs)
    if case == "trailing padding":
        assert 0xFFFCFFFC in ours
    np.testing.assert_array_equal(ours.pixel_array, theirs.pixel_array)


def test_windowed_parse_is_pydicoms_over_the_whole_corpus(testdata: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every Part 10 file of the corpus (all vendors, encodings, multi-frame, compressed, broken) parsed as the
    scan parses it gives the dataset, or the error, of pydicom's parse from the file."""
    import warnings

    import pydicom

    from medipy.io.dicom import reading

    def from_the_file(fp, head, size, defer_size, mtime=None):
        fp.seek(0)
        return pydicom.dcmread(fp, defer_size=defer_size, force=True)

    def parse(path: Path, window: bool):
        if not window:
            monkeypatch.setattr(reading, "_read_windowed", from_the_file)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return reading.parse_file(str(path), defer_size=1024, check="lengths")
        except (BrokenDicomError, NotDicomError) as exc:
            return f"{type(exc).__name__}: {exc}"
        finally:
            monkeypatch.undo()

    whole = header = 0  # files held whole by the window; files whose header it holds
    for path in sorted(p for p in testdata.rglob("*") if p.is_file()):
        with path.open("rb") as fp:
            head = fp.read(reading.WINDOW_BYTES)
        if head[128:132] != b"DICM" or reading._DEFLATED_UID in head[:512]:
            continue  # parsed from the file as before (no preamble, deflate)
        size = path.stat().st_size
        whole += len(head) >= size
        header += len(head) < size and reading._native_pixels_at(head, size) is not None
        ours, theirs = parse(path, True), parse(path, False)
        if isinstance(theirs, str):
            assert ours == theirs, path
        else:
            _same_dataset(ours, theirs)
    assert whole > 400  # 560 when written
    assert header > 30  # 48


@pytest.mark.parametrize("case", ["command set", "no transfer syntax", "big endian", "native"])
def test_usual_part10_parse_leaves_the_unusual_to_pydicom(tmp_path: Path, testdata: Path,
                                                          monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    """A Command Set, a File Meta without Transfer Syntax, a non-native syntax: read_partial parses them."""
    from pydicom.dataset import Dataset
    from pydicom.filebase import DicomBytesIO
    from pydicom.filereader import read_file_meta_info
    from pydicom.filewriter import write_dataset

    from medipy.io.dicom import reading

    path = tmp_path / "file.dcm"
    _native_file(path, rows=16)
    if case == "command set":  # (0000,0000) and (0000,0110), implicit VR, between File Meta and dataset
        command = Dataset()
        command.CommandGroupLength, command.MessageID = 8, 7
        buffer = DicomBytesIO()
        buffer.is_little_endian, buffer.is_implicit_VR = True, True
        write_dataset(buffer, command)
        data = path.read_bytes()
        meta_end = 132 + 12 + read_file_meta_info(path).FileMetaInformationGroupLength
        path.write_bytes(data[:meta_end] + buffer.getvalue() + data[meta_end:])
    elif case == "no transfer syntax":
        path.write_bytes((testdata / PYDICOM / "meta_missing_tsyntax.dcm").read_bytes())
    elif case == "big endian":
        path.write_bytes((testdata / PYDICOM / "MR_small_bigendian.dcm").read_bytes())
    usual = reading._read_native_part10
    results = []

    def spy(*args):
        results.append(usual(*args))
        return results[-1]

    monkeypatch.setattr(reading, "_read_native_part10", spy)
    ours, theirs = _parse_both(path)
    monkeypatch.undo()
    assert len(results) == 1
    assert (results[0] is not None) == (case == "native")
    _same_dataset(ours, theirs)
    if case == "command set":  # before, refused as "truncated": pydicom lists the Command Set last
        assert ours.MessageID == 7
        assert read(path).MessageID == 7
    if case != "no transfer syntax":  # pydicom cannot tell how to decode those pixels
        np.testing.assert_array_equal(ours.pixel_array, theirs.pixel_array)
