"""Pixel decoding failures and geometry findings on damaged real files."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate, generate_frames

import medipy.io.dicom
from medipy.errors import PixelDecodeError, SeveralStacksError


def test_corrupt_jpeg2000_names_file_syntax_and_plugin(testdata, tmp_path):
    ds = pydicom.dcmread(testdata / "dcm_qa_ts/In/9.dcm")
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    ds.PixelData = encapsulate([frame[:40] + b"\x00" * (len(frame) - 40)])  # header kept, codestream zeroed
    path = tmp_path / "corrupt_j2k.dcm"
    ds.save_as(path)
    dataset = medipy.io.dicom.read(path)
    with pytest.raises(PixelDecodeError) as info:
        medipy.io.dicom.image([dataset])
    message = str(info.value)
    assert str(path) in message
    assert "JPEG 2000" in message
    assert "pylibjpeg-openjpeg" in message


def test_missing_middle_slice_is_reported(testdata):
    folder = testdata / "derived_broken/series_with_missing_slice"
    image = medipy.io.dicom.image([medipy.io.dicom.read(p) for p in sorted(folder.iterdir())])
    assert image.shape[0] == 3
    assert any("1 missing slice" in w for w in image.metadata["geometry_warnings"])
    assert sorted(image.metadata["slice_gaps"]) == pytest.approx([4.0, 8.0], abs=1e-3)


def test_gantry_tilt_is_reported_and_geometry_follows_positions(testdata):
    folder = testdata / "dicom2nifti/failing/gantrytilting/001"
    datasets = [medipy.io.dicom.read(p) for p in sorted(folder.iterdir())]
    image = medipy.io.dicom.image(datasets)
    assert image.metadata["gantry_tilt"] == pytest.approx(14.0, abs=0.05)  # dicom2nifti: a 14 degree tilt
    positions = sorted((np.array([float(v) for v in d.ImagePositionPatient]) for d in datasets),
                       key=lambda p: p[2])
    for k, position in enumerate(positions):
        np.testing.assert_allclose((image.lps_affine @ [k, 0, 0, 1])[:3], position, atol=1e-3)


def test_several_stacks_error_tells_to_call_stacks(testdata):
    folder = testdata / "dcm_qa_table/In/GE/Exam1486_Laser794mm/01_3_Plane_Localizer_FF"
    datasets = [medipy.io.dicom.read(p) for p in sorted(folder.iterdir())]
    with pytest.raises(SeveralStacksError, match=r"3 stacks.*stacks\(\)"):
        medipy.io.dicom.image(datasets)


def test_dicomdir_records_must_be_loaded_first(testdata):
    dicomdir = medipy.io.dicom.read(testdata / "pydicom/test_files/dicomdirtests/DICOMDIR")
    serie = medipy.io.dicom.series([dicomdir])[0]
    with pytest.raises(ValueError, match="load_dicomdir_records"):
        medipy.io.dicom.image(serie)
