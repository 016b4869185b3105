"""Plain values of simple string elements: what plain_value gives is what pydicom's own element holds, and the
engine's records (made from plain values) equal the records of the same files read by pydicom alone."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.dataelem import RawDataElement, convert_raw_data_element
from pydicom.tag import Tag

from medipy.engine.scan import ScannedFile, list_files, scan_files
from medipy.io.dicom.plain_values import plain_value, plain_values_enabled, public_vr, transfer_syntax_of
from medipy.io.dicom.record import dataset_records


def _plain(value):
    """pydicom's element value as plain str / int / float (a list for several values)."""
    many = not isinstance(value, str | bytes | int | float)

    def one(v):
        if isinstance(v, int):
            return int(v)
        if isinstance(v, float):
            return float(v)
        return str(v)

    return [one(v) for v in value] if many else one(value)


def _same(ours, theirs) -> bool:
    if type(ours) is not type(theirs):
        return False
    if isinstance(ours, list):
        return len(ours) == len(theirs) and all(_same(a, b) for a, b in zip(ours, theirs, strict=True))
    return ours == theirs or ours != ours and theirs != theirs  # NaN equals NaN here


def _files(testdata: Path) -> list[Path]:
    files = sorted((testdata / "pydicom/test_files").glob("*.dcm"))  # encodings, VRs, modalities
    files += sorted((testdata / "pydicom/charset_files").glob("*.dcm"))  # ISO 2022 escapes, UTF-8, GB18030...
    files += sorted((testdata / "dcmqi/ct-3slice").iterdir())
    files += sorted((testdata / "dcm_qa_nih/In/20180918Si/mr_0003").glob("*.dcm"))
    return files


def test_plain_values_are_pydicoms_values_over_real_files(testdata: Path) -> None:
    assert plain_values_enabled()  # pydicom's default configuration
    handled = declined = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom on the corpus' deliberately odd files
        for path in _files(testdata):
            try:
                ds = pydicom.dcmread(path, force=True, defer_size=4096)
            except Exception:  # noqa: BLE001 - the corpus' broken files
                continue
            charset = ds._character_set
            for tag, raw in list(ds._dict.items()):
                if not isinstance(raw, RawDataElement) or raw.value is None or tag.is_private:
                    continue
                vr = public_vr(int(tag), raw.VR)
                if vr is None or not raw.value:
                    continue
                ours = plain_value(vr, raw.value)
                if ours is None:
                    declined += 1
                    continue
                element = convert_raw_data_element(raw, encoding=charset, ds=ds)
                assert _same(ours, _plain(element.value)), (path.name, tag, raw.value, ours, element.value)
                handled += 1
    assert handled > 2000, handled
    assert declined < handled / 10, (handled, declined)


@pytest.mark.parametrize(("vr", "data"), [
    ("UI", b"1.2.840.10008.1.2\0"), ("UI", b"1.2.3\\4.5\0"), ("UI", b"1.2.3\\"), ("UI", b"\0\0"),
    ("CS", b"ORIGINAL\\PRIMARY\\AXIAL "), ("CS", b" LEADING"), ("CS", b"  "), ("CS", b"A\\\\B"),
    ("DA", b"20240101"), ("TM", b"101010.123456 "), ("DT", b"20240101101010"), ("AS", b"045Y"),
    ("AE", b" STORESCP \\ OTHER "), ("AE", b"AE\0"),
    ("IS", b" 12 "), ("IS", b"+5"), ("IS", b"-7\\8 "), ("IS", b"1.0"), ("IS", b"1_0"), ("IS", b"1\\\\2"),
    ("IS", b"99999999999"), ("IS", b"12\0"),
    ("DS", b"0.5\\0.5 "), ("DS", b" -125.0"), ("DS", b"1e3"), ("DS", b".5"), ("DS", b"5."), ("DS", b"1E-05"),
    ("DS", b"1e400"), ("DS", b"nan"), ("DS", b"inf"), ("DS", b"1_0"), ("DS", b"1\\\\2"), ("DS", b"0x10"),
    ("LO", b"Caf\xc3\xa9"), ("LO", b"\x1b$BF|K\\\x1b(B"), ("LO", b" head \\ neck \0"), ("SH", b"A\\B"),
    ("LT", b"line one\\still one \0"), ("ST", b"  "), ("UT", b"text \r\n more  "),
])
@pytest.mark.parametrize("charset", [["iso8859"], ["utf_8"], ["shift_jis", "iso2022_jp"]])
def test_plain_values_of_odd_bytes_are_pydicoms_or_declined(vr: str, data: bytes, charset: list[str]) -> None:
    raw = RawDataElement(Tag(0x00100020), vr, len(data), data, 0, False, True)
    ours = plain_value(vr, data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = convert_raw_data_element(raw, encoding=charset).value
    if ours is not None:
        assert _same(ours, _plain(theirs)), (ours, theirs)
    if vr in ("IS", "DS") and data in (b"1.0", b"1_0", b"1\\\\2", b"nan", b"inf", b"0x10", b"99999999999"):
        assert ours is None  # left to pydicom: not well-formed (or not an IS of PS3.5's range)
    if not data.isascii() or b"\x1b" in data:
        assert ours is None  # non-ASCII text, escape sequences: the character set decides, pydicom decodes


def test_only_public_elements_of_their_dictionary_vr_are_plain() -> None:
    assert public_vr(0x00200032, None) == "DS"  # implicit VR: the dictionary's
    assert public_vr(0x00200032, "DS") == "DS"
    assert public_vr(0x00200032, "LO") is None  # a VR the dictionary does not give: pydicom decides
    assert public_vr(0x00200032, "UN") is None
    assert public_vr(0x00100010, None) is None  # PN: components, left to pydicom
    assert public_vr(0x00280010, None) is None  # US: binary
    assert public_vr(0x00091001, "LO") is None  # private
    assert public_vr(0x7FFF0010, "LO") is None  # not in the dictionary
    assert public_vr(0x00180061, "DS") is None  # in the dictionary without a keyword: pydicom's JSON skips it


def test_records_from_plain_values_equal_pydicoms(testdata: Path) -> None:
    """Over the whole corpus (every vendor and encoding in it), one batch per folder as the engine scans."""
    by_folder: dict[str, list[str]] = {}
    for path in list_files(str(testdata)):
        by_folder.setdefault(os.path.dirname(path), []).append(path)
    compared = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for paths in by_folder.values():
            for item in scan_files(paths):  # one batch: values shared and plain alike
                if not isinstance(item, ScannedFile) or item.records[0].frame is not None:
                    continue  # frames: headers of their own, without plain values
                ds = pydicom.dcmread(item.path, force=True, defer_size=1024)
                if ds.file_meta.get("TransferSyntaxUID") is None:
                    continue  # files without meta: medipy's reader repairs those, compared elsewhere
                _, expected = dataset_records(ds, path=item.path)
                assert list(item.records) == expected, item.path
                compared += 1
    assert compared > 400, compared


def test_read_leaves_plain_values_to_pydicom_and_gives_its_values(testdata: Path) -> None:
    import medipy.io.dicom

    files = [p for p in _files(testdata) if "charset" in p.parent.name or p.parent.name == "ct-3slice"]
    compared = raw = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in files:
            ours = medipy.io.dicom.read(path)
            theirs = pydicom.dcmread(path, force=True)
            raw += sum(isinstance(e, RawDataElement) for e in ours._dict.values())  # not converted by the check
            for element in theirs:
                if element.tag == 0x7FE00010:
                    continue
                mine = ours[element.tag]
                assert mine.VR == element.VR, (path.name, element.tag)
                assert mine.value == element.value, (path.name, element.tag)
                assert type(mine.value) is type(element.value), (path.name, element.tag)
                compared += 1
    assert raw > 100, raw  # the check converted the others: values that could fail are still checked at read
    assert compared > 500, compared


def test_transfer_syntax_is_pydicoms_value_without_converting_it(testdata: Path) -> None:
    """Over the corpus' files (every syntax in it), raw (as the scan's parse leaves File Meta) or converted
    (as pydicom's ``dcmread`` leaves it): pydicom's value as str, and a raw element left raw."""
    from medipy.io.dicom.reading import parse_file

    compared = left_raw = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in _files(testdata):
            try:
                ours = parse_file(path, defer_size=1024, check="lengths")
            except Exception:  # noqa: BLE001 - the corpus' broken files
                continue
            theirs = pydicom.dcmread(path, force=True, stop_before_pixels=True)
            expected = theirs.file_meta.get("TransferSyntaxUID")
            was_raw = isinstance(ours.file_meta._dict.get(Tag(0x00020010)), RawDataElement)
            assert transfer_syntax_of(ours) == (None if expected is None else str(expected)), path
            assert transfer_syntax_of(theirs) == transfer_syntax_of(ours), path  # converted already: its value
            if expected is not None:
                assert type(transfer_syntax_of(ours)) is str
                compared += 1
            if was_raw:
                assert isinstance(ours.file_meta._dict[Tag(0x00020010)], RawDataElement), path  # not converted
                left_raw += 1
    assert compared > 50, compared
    assert left_raw > 20, left_raw


@pytest.mark.parametrize(("value", "expected"), [
    (b"1.2.840.10008.1.2\0", "1.2.840.10008.1.2"),  # padded to an even length with NUL (PS3.5 9.1)
    (b"1.2.840.10008.1.2.1 ", "1.2.840.10008.1.2.1"),  # padded with a space, as some writers do
    (b"", ""),  # empty: pydicom's empty value
    (b"1.2.3\\4.5", "['1.2.3', '4.5']"),  # two values (invalid): pydicom's, as str
])
def test_transfer_syntax_of_odd_values_is_pydicoms(value: bytes, expected: str) -> None:
    from pydicom.dataset import Dataset, FileMetaDataset

    meta = FileMetaDataset()
    meta._dict[Tag(0x00020010)] = RawDataElement(Tag(0x00020010), "UI", len(value), value, 0, False, True)
    ds = Dataset()
    ds.file_meta = meta
    assert transfer_syntax_of(ds) == expected
    assert transfer_syntax_of(ds) == str(meta.TransferSyntaxUID)


def test_transfer_syntax_of_a_dataset_without_one_is_none() -> None:
    from pydicom.dataset import Dataset, FileMetaDataset

    ds = Dataset()
    assert transfer_syntax_of(ds) is None  # no File Meta
    ds.file_meta = FileMetaDataset()
    assert transfer_syntax_of(ds) is None  # File Meta without (0002,0010)
