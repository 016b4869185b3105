"""Property and fuzz tests: valid datasets round trip through write and read; mutated files give medipy errors.

The strategies build small valid datasets (text in several Specific Character Sets, numbers, UIDs, pixels of
random size, depth and sign, geometry), written by pydicom in one of three transfer syntaxes. Mutations (byte
flips, truncations, deleted elements) go through read, stacks, image and write: a medipy error or a result,
never another exception, never a hang. ``MEDIPY_FUZZ=long`` runs many more examples (see SECURITY.md).
"""

from __future__ import annotations

import os
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

import medipy.io.dicom
from medipy.engine.naming import NamingPolicy, assign_names, safe_component
from medipy.errors import MedipyError

PROFILE = settings.get_profile(os.environ.get("MEDIPY_FUZZ_PROFILE", "medipy-fuzz-fast"))
SECONDS = 20  # one example (read, stacks, image, write of a < 20 KB file) never takes that long

# Specific Character Set -> a Python codec covering it: text is drawn from the characters it encodes
CHARSETS = {
    "": "ascii",
    "ISO_IR 100": "latin_1",
    "ISO_IR 101": "iso8859_2",
    "ISO_IR 144": "iso8859_5",
    "ISO_IR 126": "iso8859_7",
    "ISO_IR 192": "utf_8",
    "GB18030": "gb18030",
}
_SAFE_ASCII = string.ascii_letters + string.digits + " .-_()"  # no DICOM delimiter (\\ ^ =) nor control


def _alphabet(codec: str) -> str:
    if codec in ("utf_8", "gb18030"):
        extra = "éèçàüößøåñЖжДλΩ中文字医学影像患者"
    else:
        extra = "".join(bytes([b]).decode(codec, errors="ignore") for b in range(0xA0, 0x100))
    return _SAFE_ASCII + "".join(c for c in extra if c.isprintable() and not c.isspace())


def _text(alphabet: str, size: int) -> st.SearchStrategy[str]:
    return st.text(alphabet, min_size=1, max_size=size).map(str.strip).filter(bool)


UIDS = st.lists(st.integers(0, 99999), min_size=3, max_size=8).map(lambda parts: "1.2." + ".".join(map(str, parts)))
DECIMALS = st.integers(-99999, 99999).map(lambda n: f"{n / 100:g}")
ORIENTATIONS = st.sampled_from([(1, 0, 0, 0, 1, 0), (0, 1, 0, 0, 0, -1), (1, 0, 0, 0, 0, -1),
                                (0.866025, 0.5, 0, -0.5, 0.866025, 0)])
SYNTAXES = st.sampled_from([ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian])


@st.composite
def pixels(draw: st.DrawFn) -> tuple[np.ndarray, dict[str, Any]]:
    """A small greyscale array and the Image Pixel attributes that describe it."""
    bits = draw(st.sampled_from([8, 16, 32]))
    signed = draw(st.booleans())
    stored = draw(st.integers(max(bits // 2, 1), bits))
    frames = draw(st.integers(1, 3))
    shape = (frames, draw(st.integers(1, 12)), draw(st.integers(1, 12)))
    low, high = (-(1 << (stored - 1)), (1 << (stored - 1)) - 1) if signed else (0, (1 << stored) - 1)
    seed = draw(st.integers(0, 2**32 - 1))
    values = np.random.default_rng(seed).integers(low, high, size=shape, endpoint=True)
    array = values.astype(f"{'i' if signed else 'u'}{bits // 8}")
    attributes = {"Rows": shape[1], "Columns": shape[2], "BitsAllocated": bits, "BitsStored": stored,
                  "HighBit": stored - 1, "PixelRepresentation": int(signed), "SamplesPerPixel": 1,
                  "PhotometricInterpretation": "MONOCHROME2"}
    if frames > 1:
        attributes["NumberOfFrames"] = frames
    return (array if frames > 1 else array[0]), attributes


@st.composite
def datasets(draw: st.DrawFn) -> Dataset:
    """A valid small image dataset with random public text, numbers, UIDs, pixels and geometry."""
    charset = draw(st.sampled_from(sorted(CHARSETS)))
    alphabet = _alphabet(CHARSETS[charset])
    ds = Dataset()
    if charset:
        ds.SpecificCharacterSet = charset
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture
    ds.SOPInstanceUID = draw(UIDS)
    ds.StudyInstanceUID = draw(UIDS)
    ds.SeriesInstanceUID = draw(UIDS)
    ds.Modality = draw(st.sampled_from(["OT", "CT", "MR"]))
    ds.PatientName = "^".join(draw(st.lists(_text(alphabet, 12), min_size=1, max_size=3)))
    ds.PatientID = draw(_text(_SAFE_ASCII, 16))
    ds.StudyDescription = draw(_text(alphabet, 64))
    ds.SeriesDescription = draw(_text(alphabet, 64))
    ds.InstitutionName = draw(_text(alphabet, 64))
    ds.ImageComments = draw(_text(alphabet, 200))
    ds.StudyDate = f"{draw(st.integers(1950, 2030))}{draw(st.integers(1, 12)):02d}{draw(st.integers(1, 28)):02d}"
    ds.SeriesNumber = draw(st.integers(0, 9999))
    ds.InstanceNumber = draw(st.integers(1, 9999))
    if draw(st.booleans()):
        ds.ImagePositionPatient = [draw(DECIMALS) for _ in range(3)]
        ds.ImageOrientationPatient = list(draw(ORIENTATIONS))
        ds.PixelSpacing = [draw(st.integers(1, 500).map(lambda n: f"{n / 100:g}")) for _ in range(2)]
    if draw(st.booleans()):
        ds.RescaleSlope = draw(st.sampled_from(["1", "0.5", "2", "1.25"]))
        ds.RescaleIntercept = draw(st.sampled_from(["0", "-1024", "10.5"]))
    array, attributes = draw(pixels())
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    ds.PixelData = array.tobytes()  # re-encoded for big endian when written
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = draw(SYNTAXES)
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.expected_array = array  # plain attribute, never written
    return ds


def _save(ds: Dataset, path: Path) -> None:
    """Write with pydicom in the dataset's own transfer syntax (pixels byte-swapped for big endian)."""
    copy = Dataset(ds)
    copy.file_meta = ds.file_meta
    array = ds.expected_array
    big = ds.file_meta.TransferSyntaxUID == ExplicitVRBigEndian
    copy.PixelData = array.astype(array.dtype.newbyteorder(">" if big else "<")).tobytes()
    copy["PixelData"].VR = "OB" if array.dtype.itemsize == 1 else "OW"
    copy.save_as(path, enforce_file_format=True)


def _public(ds: Dataset) -> dict[str, Any]:
    """Public top-level values as comparable Python values (text decoded), without the character set."""
    out: dict[str, Any] = {}
    for element in ds:
        if element.tag.is_private or element.tag.group == 0x0002 or element.keyword in ("", "SpecificCharacterSet",
                                                                                          "PixelData"):
            continue
        value = element.value
        if isinstance(value, MultiValue | list):
            value = [str(v) for v in value]
        elif element.VR in ("PN", "DS", "IS") or isinstance(value, str):
            value = str(value)
        out[element.keyword] = value
    return out


# --- round trips -------------------------------------------------------------------------------------------

@PROFILE
@given(datasets())
def test_read_write_read_round_trip(tmp_path: Path, ds: Dataset) -> None:
    source, target = tmp_path / "source.dcm", tmp_path / "written.dcm"
    _save(ds, source)
    first = medipy.io.dicom.read(source)
    medipy.io.dicom.write(first, target)
    second = medipy.io.dicom.read(target)
    assert second.SpecificCharacterSet == "ISO_IR 192"
    assert second.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert _public(second) == _public(first)
    assert str(second.PatientName) == str(ds.PatientName)
    assert second.SeriesDescription == ds.SeriesDescription
    np.testing.assert_array_equal(second.pixel_array, ds.expected_array)
    np.testing.assert_array_equal(medipy.io.dicom.image([second]).data, medipy.io.dicom.image([first]).data)


@PROFILE
@given(datasets())
def test_image_of_generated_dataset(tmp_path: Path, ds: Dataset) -> None:
    path = tmp_path / "source.dcm"
    _save(ds, path)
    image = medipy.io.dicom.image(medipy.io.dicom.stacks([medipy.io.dicom.read(path)])[0])
    expected = ds.expected_array.reshape((-1, *ds.expected_array.shape[-2:]))
    slope, intercept = float(ds.get("RescaleSlope", 1)), float(ds.get("RescaleIntercept", 0))
    np.testing.assert_allclose(image.data, expected * slope + intercept, rtol=1e-6)
    assert np.all(np.isfinite(image.lps_affine))


# --- mutations -----------------------------------------------------------------------------------------------

def _exercise(path: Path, out: Path) -> None:
    """read, stacks, image, uid_and_description and write: any medipy error is a fine outcome."""
    try:
        ds = medipy.io.dicom.read(path)
        medipy.io.dicom.uid_and_description([ds])
        for stack in medipy.io.dicom.stacks([ds]):
            medipy.io.dicom.image(stack)
        medipy.io.dicom.write(ds, out)
        medipy.io.dicom.read(out)
    except MedipyError as exc:
        named = str(path) in str(exc) or str(out) in str(exc)
    else:
        named = True
    assert named, "the error message does not name the file"


MUTATIONS = st.one_of(
    st.tuples(st.just("flip"), st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)),
                                        min_size=1, max_size=8)),
    st.tuples(st.just("truncate"), st.floats(0, 1, exclude_max=True)),
    st.tuples(st.just("insert"), st.tuples(st.floats(0, 1), st.binary(min_size=1, max_size=16))),
)


def _mutate(data: bytes, mutation: tuple[str, Any]) -> bytes:
    kind, argument = mutation
    if kind == "truncate":
        return data[:int(len(data) * argument)]
    if kind == "insert":
        at = int(len(data) * argument[0])
        return data[:at] + argument[1] + data[at:]
    mutable = bytearray(data)
    for where, byte in argument:
        mutable[int(len(mutable) * where)] = byte
    return bytes(mutable)


@PROFILE
@given(datasets(), MUTATIONS)
def test_mutated_generated_file(tmp_path: Path, time_limit: Callable, ds: Dataset,
                                mutation: tuple[str, Any]) -> None:
    path = tmp_path / "mutated.dcm"
    _save(ds, path)
    path.write_bytes(_mutate(path.read_bytes(), mutation))
    with time_limit(SECONDS):
        _exercise(path, tmp_path / "out.dcm")


# small real files in several encodings: explicit/implicit/big endian, RLE, JPEG, JPEG 2000, deflate, multi-frame
REAL_FILES = ["CT_small.dcm", "MR_small_bigendian.dcm", "MR_small_implicit.dcm", "MR_small_RLE.dcm",
              "JPEG2000.dcm", "SC_rgb_jpeg_dcmtk.dcm", "image_dfl.dcm", "rtdose.dcm", "MR_small_jp2klossless.dcm"]


@PROFILE
@given(st.sampled_from(REAL_FILES), MUTATIONS)
def test_mutated_real_file(tmp_path: Path, example_path: Callable, time_limit: Callable, name: str,
                           mutation: tuple[str, Any]) -> None:
    path = tmp_path / "mutated.dcm"
    path.write_bytes(_mutate(example_path(name).read_bytes(), mutation))
    with time_limit(SECONDS):
        _exercise(path, tmp_path / "out.dcm")


@PROFILE
@given(datasets(), st.data())
def test_deleted_elements(tmp_path: Path, ds: Dataset, data: st.DataObject) -> None:
    keywords = [e.keyword for e in ds if e.keyword]
    for keyword in data.draw(st.lists(st.sampled_from(keywords), min_size=1, max_size=4, unique=True)):
        delattr(ds, keyword)
    path = tmp_path / "deleted.dcm"
    if "PixelData" in ds:
        _save(ds, path)
    else:
        ds.save_as(path, enforce_file_format=False)
    _exercise(path, tmp_path / "out.dcm")


@PROFILE
@given(st.binary(max_size=2048))
def test_random_bytes(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "random.dcm"
    path.write_bytes(data)
    _exercise(path, tmp_path / "out.dcm")


# --- names made from hostile values (medipy.engine.naming) ---------------------------------------------------

HOSTILE = st.one_of(st.text(max_size=300), st.sampled_from(["..", ".", "../../x", "/etc/passwd", "a\x00b", "CON",
                                                            "DICOMDIR", "nul.txt", " ", "-rf", "x" * 5000]))


@PROFILE
@given(HOSTILE, st.sampled_from([NamingPolicy(), NamingPolicy.readable()]))
def test_safe_component(value: str, policy: NamingPolicy) -> None:
    name = safe_component(value, policy)
    assert 1 <= len(name) <= policy.max_length
    assert name not in (".", "..")
    assert not name.startswith((".", "-"))
    allowed = set(string.ascii_uppercase + string.digits + "_")
    if policy.alphabet == "portable":
        allowed |= set(string.ascii_lowercase + ".-")
    assert set(name) <= allowed
    assert safe_component(value, policy) == name


@PROFILE
@given(st.dictionaries(st.text(max_size=20), HOSTILE, max_size=20))
def test_assign_names_unique_and_order_free(values: dict[str, str]) -> None:
    names = assign_names(values.items(), NamingPolicy())
    assert sorted(names) == sorted(values)
    assert len({name.casefold() for name in names.values()}) == len(names)
    assert assign_names(reversed(values.items()), NamingPolicy()) == names
