"""Hostile and broken input through the serial API (read, series, stacks, image, write, load_dicomdir_records).

Every case is built in ``tmp_path`` from pydicom's bundled example files or the shared corpus, and must end in
one specific medipy error whose message names the file, or in a usable result with its findings in the
metadata; never a bare IndexError, struct.error, MemoryError or numpy ValueError, never a hang or a huge
allocation.
"""

from __future__ import annotations

import json
import os
import random
import re
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import ImplicitVRLittleEndian, generate_uid

import medipy.io.dicom
from medipy.errors import (
    BrokenDicomError,
    MissingReferencedFileError,
    NotDicomError,
    NotImageError,
    PixelDecodeError,
    SeveralStacksError,
    UnsafePathError,
)
from medipy.io.dicom.dicomdir import series_records

CT = "CT_small.dcm"  # 128x128, 16-bit, explicit VR little endian, with geometry
J2K = "examples_jpeg2k.dcm"  # 480x640 RGB, JPEG 2000 lossless
MB = 1 << 20


def _ct_stack(source: Path, folder: Path, count: int = 3, **changes: object) -> list[Path]:
    """``count`` slices of CT_small 5 mm apart along z (own SOP Instance UIDs), ``changes`` applied to all."""
    folder.mkdir(exist_ok=True)
    paths = []
    for index in range(count):
        ds = pydicom.dcmread(source)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[str(index)])
        ds.InstanceNumber = index + 1
        ds.ImagePositionPatient = [0.0, 0.0, 5.0 * index]
        for keyword, value in changes.items():
            setattr(ds, keyword, value)
        path = folder / f"slice{index}.dcm"
        ds.save_as(path)
        paths.append(path)
    return paths


def _read_all(paths: list[Path]) -> list[medipy.io.dicom.DataSet]:
    return [medipy.io.dicom.read(path) for path in paths]


# --- not DICOM --------------------------------------------------------------------------------------------

def test_zero_length_file(tmp_path: Path, raises_naming: Callable) -> None:
    path = tmp_path / "empty.dcm"
    path.write_bytes(b"")
    with raises_naming(NotDicomError, path, match="empty"):
        medipy.io.dicom.read(path)


def test_preamble_only(example_path: Callable, tmp_path: Path, raises_naming: Callable) -> None:
    path = tmp_path / "preamble.dcm"
    path.write_bytes(example_path(CT).read_bytes()[:132])
    with raises_naming(NotDicomError, path, match="only the 128-byte preamble"):
        medipy.io.dicom.read(path)


@pytest.mark.parametrize("size", [1, 7, 131, 132, 133, 4096, 65536])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_bytes_named_dcm(tmp_path: Path, raises_naming: Callable, size: int, seed: int) -> None:
    path = tmp_path / "random.dcm"
    path.write_bytes(random.Random(seed * 1000 + size).randbytes(size))
    with raises_naming(NotDicomError, path, match="not a DICOM file"):
        medipy.io.dicom.read(path)


def test_random_bytes_after_dicom_preamble(tmp_path: Path, raises_naming: Callable) -> None:
    path = tmp_path / "random_after_dicm.dcm"
    path.write_bytes(b"\x00" * 128 + b"DICM" + random.Random(3).randbytes(4096))
    with raises_naming(BrokenDicomError, path, match="no parsable element"):
        medipy.io.dicom.read(path)


def test_non_dicom_file_named_dicomdir(testdata: Path, tmp_path: Path, raises_naming: Callable) -> None:
    path = tmp_path / "DICOMDIR"
    path.write_bytes((testdata / "derived_broken/DICOMDIR").read_bytes())  # a JSON sidecar
    with raises_naming(NotDicomError, path, match="JSON"):
        medipy.io.dicom.read(path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes (POSIX)")
def test_fifo_is_refused_without_blocking(tmp_path: Path, raises_naming: Callable, time_limit: Callable) -> None:
    path = tmp_path / "pipe.dcm"
    os.mkfifo(path)
    with time_limit(5), raises_naming(NotDicomError, path, match="not a regular file"):
        medipy.io.dicom.read(path)


# --- truncated ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("keep", [140, 300, 700, 1000])  # inside an element header or value (CT_small)
@pytest.mark.parametrize("stop_before_pixels", [False, True])
def test_truncated_header(example_path: Callable, tmp_path: Path, raises_naming: Callable, keep: int,
                          stop_before_pixels: bool) -> None:
    path = tmp_path / "cut_header.dcm"
    path.write_bytes(example_path(CT).read_bytes()[:keep])
    with raises_naming(BrokenDicomError, path, match="truncated"):
        medipy.io.dicom.read(path, stop_before_pixels=stop_before_pixels)


def test_truncated_native_pixel_data(example_path: Callable, tmp_path: Path, raises_naming: Callable) -> None:
    data = example_path(CT).read_bytes()
    path = tmp_path / "cut_pixels.dcm"
    path.write_bytes(data[:len(data) - 5000])
    with raises_naming(BrokenDicomError, path, match=r"\(7FE0,0010\) is truncated"):
        medipy.io.dicom.read(path)
    header = medipy.io.dicom.read(path, stop_before_pixels=True)  # the header alone is fine
    with raises_naming(PixelDecodeError, path, match="no Pixel Data"):
        medipy.io.dicom.image([header])


@pytest.mark.parametrize("fraction", [0.01, 0.5, 0.999])
def test_truncated_compressed_fragments(example_path: Callable, tmp_path: Path, raises_naming: Callable,
                                        fraction: float) -> None:
    data = example_path(J2K).read_bytes()
    start = data.index(b"\xe0\x7f\x10\x00")  # Pixel Data, encapsulated
    path = tmp_path / "cut_fragments.dcm"
    path.write_bytes(data[:start + int((len(data) - start) * fraction)])
    with raises_naming(BrokenDicomError, path, match=r"\(7FE0,0010\).* truncated"):
        medipy.io.dicom.read(path)


def test_short_codestream_in_whole_fragment(example_path: Callable, tmp_path: Path,
                                            raises_naming: Callable) -> None:
    """The file is whole, the JPEG 2000 codestream inside its fragment is cut: a decode error, not a crash."""
    ds = pydicom.dcmread(example_path(J2K))
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    ds.PixelData = encapsulate([frame[:len(frame) // 3]])
    path = tmp_path / "short_codestream.dcm"
    ds.save_as(path)
    with raises_naming(PixelDecodeError, path, match="JPEG 2000"):
        medipy.io.dicom.image([medipy.io.dicom.read(path)])


# --- declared lengths beyond the file ------------------------------------------------------------------------

def _with_long_element(data: bytes, tag_bytes: bytes, length: int) -> bytes:
    """Replace the explicit VR element starting with ``tag_bytes`` by a UN element of ``length``."""
    at = data.index(tag_bytes)
    short_vr = data[at + 4:at + 6] not in (b"OB", b"OW", b"UN", b"SQ", b"UT", b"OF", b"OD", b"OL", b"UC", b"UR")
    header = 8 if short_vr else 12
    return data[:at] + tag_bytes + b"UN\x00\x00" + struct.pack("<L", length) + data[at + header:]


@pytest.mark.parametrize(("tag_bytes", "where"), [(b"\x10\x00\x10\x00", "(0010,0010)"),
                                                   (b"\xe0\x7f\x10\x00", "(7FE0,0010)")])
@pytest.mark.parametrize("defer_size", [None, 1024])
def test_huge_declared_length_fails_fast_without_allocating(
        example_path: Callable, tmp_path: Path, peak_memory: Callable, raises_naming: Callable,
        tag_bytes: bytes, where: str, defer_size: int | None) -> None:
    path = tmp_path / "huge_length.dcm"
    path.write_bytes(_with_long_element(example_path(CT).read_bytes(), tag_bytes, 0xFFFFFFF0))
    assert path.stat().st_size < 50_000
    error, peak = peak_memory(lambda: medipy.io.dicom.read(path, defer_size=defer_size))
    assert peak < 4 * MB, f"{peak / MB:.0f} MB allocated for a {path.stat().st_size} byte file"
    with raises_naming(BrokenDicomError, path, match=re.escape(where)):
        raise error  # type: ignore[misc]
    assert "truncated" in str(error)


def _deflate_bomb(source: Path, path: Path, pixel_bytes: int) -> None:
    """A Deflated Explicit VR Little Endian file whose Pixel Data is ``pixel_bytes`` zeros (~1000:1)."""
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    ds = pydicom.dcmread(source)
    del ds.PixelData
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    small = tmp = path.with_suffix(".small")
    ds.save_as(tmp, enforce_file_format=True)
    raw = small.read_bytes()
    meta_end = 132 + 12 + struct.unpack("<I", raw[140:144])[0]
    body = zlib.decompress(raw[meta_end:], -zlib.MAX_WBITS)  # the dataset, explicit VR little endian
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    with open(path, "wb") as fp:
        fp.write(raw[:meta_end])
        fp.write(packer.compress(body + b"\xe0\x7f\x10\x00OW\x00\x00" + struct.pack("<I", pixel_bytes)))
        zeros = bytes(MB)
        for _ in range(pixel_bytes // MB):
            fp.write(packer.compress(zeros))
        fp.write(packer.flush())
    small.unlink()


def test_deflate_bomb_is_refused_without_inflating_it(example_path: Callable, tmp_path: Path,
                                                      peak_memory: Callable, raises_naming: Callable,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from medipy.engine.scan import IssueKind, scan_file
    from medipy.io.dicom import reading

    path = tmp_path / "bomb.dcm"
    _deflate_bomb(example_path(CT), path, 256 * MB)
    assert path.stat().st_size < 1 * MB
    monkeypatch.setattr(reading, "MAX_INFLATED_BYTES", 64 * MB)  # the default (2 GiB) would take seconds here
    error, peak = peak_memory(lambda: medipy.io.dicom.read(path))
    assert peak < 48 * MB, f"{peak / MB:.0f} MB allocated for a {path.stat().st_size} byte file"
    with raises_naming(BrokenDicomError, path, match="inflates to more than 67108864 bytes"):
        raise error  # type: ignore[misc]
    issue = scan_file(str(path))
    assert issue.kind == IssueKind.BROKEN  # type: ignore[union-attr]
    assert "decompression bomb" in issue.reason  # type: ignore[union-attr]
    monkeypatch.setattr(reading, "MAX_INFLATED_BYTES", 512 * MB)  # below the limit: pydicom reads it whole
    assert medipy.io.dicom.read(path, defer_size=1024).Rows == 128


def test_huge_declared_length_implicit_vr(example_path: Callable, tmp_path: Path, peak_memory: Callable,
                                          raises_naming: Callable) -> None:
    ds = pydicom.dcmread(example_path(CT))
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    path = tmp_path / "implicit.dcm"
    ds.save_as(path)
    data = path.read_bytes()
    at = data.index(b"\x10\x00\x10\x00", 132)  # Patient's Name: tag, then a 4-byte length in implicit VR
    path.write_bytes(data[:at + 4] + struct.pack("<L", 0xFFFFFFF0) + data[at + 8:])
    error, peak = peak_memory(lambda: medipy.io.dicom.read(path))
    assert peak < 4 * MB
    assert isinstance(error, BrokenDicomError)
    assert str(path) in str(error)


# --- Rows x Columns x frames against the Pixel Data ----------------------------------------------------------

@pytest.mark.parametrize("changes", [
    {"Rows": 129},  # header says more pixels than the data holds
    {"Columns": 64},  # ... fewer: pydicom would drop the excess silently
    {"Rows": 127},
    {"NumberOfFrames": 2},
    {"NumberOfFrames": 2**31 - 1},  # would make 2 billion frame headers
    {"Rows": 65535, "Columns": 65535},  # would allocate 8 GB
    {"BitsAllocated": 32},
    {"BitsAllocated": 12},
    {"SamplesPerPixel": 3},
])
def test_pixel_module_inconsistent_with_pixel_data(example_path: Callable, tmp_path: Path, peak_memory: Callable,
                                                   raises_naming: Callable, changes: dict[str, int]) -> None:
    ds = pydicom.dcmread(example_path(CT))
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    path = tmp_path / "inconsistent.dcm"
    ds.save_as(path)
    dataset = medipy.io.dicom.read(path)
    error, peak = peak_memory(lambda: medipy.io.dicom.image(medipy.io.dicom.stacks([dataset])[0]))
    assert peak < 16 * MB
    with raises_naming(PixelDecodeError, path):
        raise error  # type: ignore[misc]


def test_excess_pixel_data_message(example_path: Callable, tmp_path: Path, raises_naming: Callable) -> None:
    ds = pydicom.dcmread(example_path(CT))
    ds.Rows = 64
    path = tmp_path / "excess.dcm"
    ds.save_as(path)
    with raises_naming(PixelDecodeError, path, match="holds 32768 bytes but .* make 16384"):
        medipy.io.dicom.image([medipy.io.dicom.read(path)])


def test_compressed_frame_count_beyond_fragments(example_path: Callable, tmp_path: Path,
                                                 raises_naming: Callable) -> None:
    ds = pydicom.dcmread(example_path(J2K))
    ds.NumberOfFrames = 3
    path = tmp_path / "j2k_frames.dcm"
    ds.save_as(path)
    with raises_naming(PixelDecodeError, path, match="JPEG 2000"):
        medipy.io.dicom.image([medipy.io.dicom.read(path)])


def test_rle_decoder_panic_is_a_pixel_decode_error(example_path: Callable, tmp_path: Path,
                                                   raises_naming: Callable) -> None:
    """pylibjpeg-rle panics (a Rust index out of bounds, a BaseException) on this one-byte corruption."""
    data = bytearray(example_path("MR_small_RLE.dcm").read_bytes())
    data[6019] = 149  # found by test_fuzz.py::test_mutated_real_file
    path = tmp_path / "rle_panic.dcm"
    path.write_bytes(bytes(data))
    with raises_naming(PixelDecodeError, path, match="RLE"):
        medipy.io.dicom.image([medipy.io.dicom.read(path)])


@pytest.mark.parametrize(("old", "new"), [
    (b"1.2.840.10008.1.2.1\x00", b" .2.840.10008.1.2.1\x00"),  # Transfer Syntax UID that is no UID
    (b"1.2.840.10008.1.2.1\x00", b"1.2.840.10008.1.2.9\x00"),  # ... an unknown one
    (b"\x28\x00\x10\x00US\x02\x00", b"\x28\x00\x10\x00LO\x02\x00"),  # Rows read as text
    (b"\x28\x00\x00\x01US\x02\x00", b"\x28\x00\x00\x01SH\x02\x00"),  # Bits Allocated read as text
])
def test_corrupt_pixel_module_values(example_path: Callable, tmp_path: Path, raises_naming: Callable,
                                     old: bytes, new: bytes) -> None:
    data = example_path(CT).read_bytes()
    assert data.count(old) == 1
    path = tmp_path / "corrupt_value.dcm"
    path.write_bytes(data.replace(old, new))
    with raises_naming(PixelDecodeError, path):
        medipy.io.dicom.image([medipy.io.dicom.read(path)])


def test_corrupt_file_meta_vr(example_path: Callable, tmp_path: Path, raises_naming: Callable) -> None:
    """An unknown VR in the File Meta group: refused by read(), not later when the meta is first used."""
    data = example_path(CT).read_bytes()
    path = tmp_path / "meta_vr.dcm"
    path.write_bytes(data.replace(b"\x02\x00\x02\x00UI", b"\x02\x00\x02\x00U\x00", 1))
    with raises_naming(BrokenDicomError, path, match=r"\(0002,0002\)"):
        medipy.io.dicom.read(path)


def test_non_numeric_grid_frame_offsets(example_path: Callable, tmp_path: Path,
                                        caplog: pytest.LogCaptureFixture) -> None:
    """RT Dose frame offsets that are not numbers: positions treated as missing, the dose grid still loads."""
    source = example_path("rtdose.dcm")
    offset = pydicom.dcmread(source, defer_size=0).get_item(0x3004000C, keep_deferred=True).value_tell
    data = bytearray(source.read_bytes())
    data[offset + 1] = 0  # "0.0" -> "0\x000" (found by test_fuzz.py::test_mutated_real_file)
    path = tmp_path / "rtdose.dcm"
    path.write_bytes(bytes(data))
    [stack] = medipy.io.dicom.stacks([medipy.io.dicom.read(path)])
    image = medipy.io.dicom.image(stack)
    assert image.shape == (15, 10, 10)
    assert "duplicate slice positions" in image.metadata["geometry_warnings"]
    assert "per-frame geometry unreadable" in caplog.text


# --- geometry --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("keyword", "warning"), [
    ("ImagePositionPatient", "no valid Image Position"),
    ("ImageOrientationPatient", "no valid Image Orientation"),
    ("PixelSpacing", "no valid Pixel Spacing"),
])
def test_missing_geometry_is_warned(example_path: Callable, tmp_path: Path, keyword: str, warning: str) -> None:
    paths = _ct_stack(example_path(CT), tmp_path / "stack")
    datasets = _read_all(paths)
    for ds in datasets:
        del ds[keyword]
    image = medipy.io.dicom.image(datasets)
    assert image.shape == (3, 128, 128)
    assert any(w.startswith(warning) for w in image.metadata["geometry_warnings"])
    assert np.all(np.isfinite(image.lps_affine))


@pytest.mark.parametrize("keyword", ["ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"])
@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", "1e300", "1e12"])
def test_absurd_geometry_is_treated_as_missing(example_path: Callable, tmp_path: Path, keyword: str,
                                               bad: str) -> None:
    """NaN, infinite or absurd values: the attribute is treated as missing, with a warning; a finite affine."""
    paths = _ct_stack(example_path(CT), tmp_path / "stack")
    datasets = _read_all(paths)
    good = list(datasets[1][keyword].value)
    datasets[1][keyword].value = [bad] + [str(v) for v in good[1:]]
    images = [medipy.io.dicom.image(stack) for stack in medipy.io.dicom.stacks(datasets)]
    assert sum(image.shape[0] for image in images) == 3
    warnings = [w for image in images for w in image.metadata["geometry_warnings"]]
    assert any(w.startswith("no valid") for w in warnings)
    for image in images:
        assert np.all(np.isfinite(image.lps_affine))
        assert np.all(np.isfinite(image.spacing))
        assert np.all(np.asarray(image.spacing) > 0)
        json.dumps(image.metadata, allow_nan=False)  # metadata stays valid JSON (zarr attributes)


def test_absurd_slice_thickness_is_ignored(example_path: Callable, tmp_path: Path) -> None:
    path = tmp_path / "thick.dcm"
    ds = pydicom.dcmread(example_path(CT))
    ds.SliceThickness = ds.SpacingBetweenSlices = "1e300"
    ds.save_as(path)
    image = medipy.io.dicom.image([medipy.io.dicom.read(path)])
    assert image.spacing[0] == 1.0


# --- several stacks, duplicates ----------------------------------------------------------------------------

def test_slices_of_different_sizes(example_path: Callable, tmp_path: Path, raises_naming: Callable) -> None:
    paths = _ct_stack(example_path(CT), tmp_path / "stack", count=4)
    ds = pydicom.dcmread(paths[2])
    ds.PixelData = ds.pixel_array[:64, :96].tobytes()
    ds.Rows, ds.Columns = 64, 96
    ds.save_as(paths[2])
    datasets = _read_all(paths)
    stacks = medipy.io.dicom.stacks(datasets)
    assert sorted(len(stack) for stack in stacks) == [1, 3]
    assert [medipy.io.dicom.image(stack).shape for stack in stacks] == [(3, 128, 128), (1, 64, 96)]
    with raises_naming(SeveralStacksError, paths[0], match=r"2 stacks.*stacks\(\)"):
        medipy.io.dicom.image(datasets)


def _duplicate(paths: list[Path], index: int, folder: Path, **changes: object) -> Path:
    """A copy of slice ``index`` (same SOP Instance UID) with other pixels, in another folder."""
    folder.mkdir()
    ds = pydicom.dcmread(paths[index])
    ds.PixelData = (ds.pixel_array + 7).astype(ds.pixel_array.dtype).tobytes()
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    path = folder / paths[index].name
    ds.save_as(path)
    return path


def test_duplicate_sop_instance_uid_same_position(example_path: Callable, tmp_path: Path) -> None:
    """Two different contents for one instance at one position: never silently dropped nor mixed, two stacks."""
    paths = _ct_stack(example_path(CT), tmp_path / "a")
    copy = _duplicate(paths, 1, tmp_path / "b")
    datasets = _read_all([*paths, copy])
    stacks = medipy.io.dicom.stacks(datasets)
    assert [len(stack) for stack in stacks] == [3, 1]
    assert stacks[1][0].path == str(copy)
    reversed_stacks = medipy.io.dicom.stacks(datasets[::-1])  # which copy goes where: by file, not input order
    assert [[ds.path for ds in stack] for stack in reversed_stacks] == [[ds.path for ds in stack] for stack in stacks]
    with pytest.raises(SeveralStacksError):
        medipy.io.dicom.image(datasets)


def test_duplicate_sop_instance_uid_other_position_is_flagged(example_path: Callable, tmp_path: Path) -> None:
    paths = _ct_stack(example_path(CT), tmp_path / "a")
    copy = _duplicate(paths, 1, tmp_path / "b", ImagePositionPatient=[0.0, 0.0, 15.0], InstanceNumber=4)
    datasets = _read_all([*paths, copy])
    image = medipy.io.dicom.image(datasets)
    assert image.shape == (4, 128, 128)
    uid = str(datasets[1].SOPInstanceUID)
    assert image.metadata["duplicate_sop_instance_uids"] == [uid]
    assert image.metadata["sop_instance_uids"].count(uid) == 2
    clean = medipy.io.dicom.image(datasets[:3])
    assert clean.metadata["duplicate_sop_instance_uids"] == []


# --- DICOMDIR references ---------------------------------------------------------------------------------------

@pytest.fixture
def hostile_dicomdir(testdata: Path, tmp_path: Path) -> Callable[[object], tuple[Path, list]]:
    """A copy of the corpus DICOMDIR in tmp_path/cd whose first SERIES' only IMAGE references ``file_id``."""

    def build(file_id: object) -> tuple[Path, list]:
        ds = pydicom.dcmread(testdata / "pydicom/test_files/dicomdirtests/DICOMDIR")
        image = next(item for item in ds.DirectoryRecordSequence if item.DirectoryRecordType == "IMAGE")
        image.ReferencedFileID = file_id
        (tmp_path / "cd").mkdir(exist_ok=True)
        path = tmp_path / "cd" / "DICOMDIR"
        ds.save_as(path)
        serie = series_records(medipy.io.dicom.read(path))[0]
        assert len(serie.children) == 1
        return path, [serie]

    return build


@pytest.mark.parametrize("file_id", ["..\\SECRET", ["..", "SECRET"], "/etc/passwd", ["SUB", "..", "..", "SECRET"],
                                     ["A\x00B"], ["C:", "SECRET"]])
def test_dicomdir_reference_leaving_its_folder(hostile_dicomdir: Callable, tmp_path: Path,
                                               raises_naming: Callable, file_id: object) -> None:
    (tmp_path / "SECRET").write_bytes(b"outside the DICOMDIR's folder")
    path, serie = hostile_dicomdir(file_id)
    with raises_naming(UnsafePathError, path, match="IMAGE record"):
        medipy.io.dicom.load_dicomdir_records(serie)


@pytest.mark.parametrize("target", ["file", "folder"])
def test_dicomdir_symlink_out_of_its_folder(hostile_dicomdir: Callable, example_path: Callable, tmp_path: Path,
                                            raises_naming: Callable, target: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "IM1").write_bytes(example_path(CT).read_bytes())  # a valid DICOM file, never to be read
    path, serie = hostile_dicomdir(["LINK", "IM1"] if target == "folder" else ["LINK"])
    (path.parent / "LINK").symlink_to(outside if target == "folder" else outside / "IM1")
    with raises_naming(UnsafePathError, path, match="outside the DICOMDIR's folder"):
        medipy.io.dicom.load_dicomdir_records(serie)


def test_dicomdir_symlink_loop(hostile_dicomdir: Callable, raises_naming: Callable) -> None:
    path, serie = hostile_dicomdir(["LOOP"])
    (path.parent / "LOOP").symlink_to("LOOP")
    with raises_naming(UnsafePathError, path, match="cannot be resolved"):
        medipy.io.dicom.load_dicomdir_records(serie)


def test_dicomdir_symlink_inside_its_folder_is_followed(hostile_dicomdir: Callable, example_path: Callable) -> None:
    path, serie = hostile_dicomdir(["LINK"])
    (path.parent / "REAL").write_bytes(example_path(CT).read_bytes())
    (path.parent / "LINK").symlink_to("REAL")
    [dataset] = medipy.io.dicom.load_dicomdir_records(serie)
    assert dataset.Rows == 128


@pytest.mark.parametrize("kind", ["missing", "folder", "fifo"])
def test_dicomdir_reference_to_no_file(hostile_dicomdir: Callable, raises_naming: Callable, time_limit: Callable,
                                       kind: str) -> None:
    path, serie = hostile_dicomdir(["IM1"])
    if kind == "folder":
        (path.parent / "IM1").mkdir()
    elif kind == "fifo":
        if not hasattr(os, "mkfifo"):
            pytest.skip("needs named pipes (POSIX)")
        os.mkfifo(path.parent / "IM1")
    with time_limit(5), raises_naming(MissingReferencedFileError, path, match="IM1"):
        medipy.io.dicom.load_dicomdir_records(serie)


def test_dicomdir_records_are_not_images(hostile_dicomdir: Callable, raises_naming: Callable) -> None:
    path, serie = hostile_dicomdir(["IM1"])
    with raises_naming(NotImageError, path, match="load_dicomdir_records"):
        medipy.io.dicom.image(serie)


# --- names made from hostile values ------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["../../etc/passwd", "/abs/path", "a\x00b", "x" * 1000, "..", "CON"])
def test_hostile_uid_and_description_are_plain_strings(example_path: Callable, tmp_path: Path, value: str) -> None:
    """uid_and_description returns the values as they are (naming them safely is the writer's job)."""
    ds = pydicom.dcmread(example_path(CT))
    ds.SeriesDescription = value
    path = tmp_path / "named.dcm"
    ds.save_as(path)
    uid, description = medipy.io.dicom.uid_and_description([medipy.io.dicom.read(path)])
    assert description == value.strip("\x00 ")
    assert uid == str(ds.SeriesInstanceUID)


@pytest.mark.parametrize("value", ["../../evil", "/tmp/evil", "a\x00b", "9" * 300])
def test_write_never_names_files_from_the_dataset(example_path: Callable, tmp_path: Path, value: str) -> None:
    """write() writes where it is told; hostile UIDs or descriptions never make a path."""
    ds = pydicom.dcmread(example_path(CT))
    ds.SOPInstanceUID = value
    ds.SeriesDescription = value
    out = tmp_path / "out"
    out.mkdir()
    medipy.io.dicom.write(ds, out / "x.dcm")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["out", "x.dcm"]
