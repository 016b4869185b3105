"""The examples of the public contract (shared/API.md), run as written on real data."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

import medipy.io.dicom
from medipy.errors import SeveralStacksError


def test_one_series(testdata):
    filenames = sorted((testdata / "dcmqi/ct-3slice").glob("*.dcm"))
    datasets = [medipy.io.dicom.read(f) for f in filenames]
    image = medipy.io.dicom.image(datasets)
    assert image.shape == (3, 512, 512)
    reference = pydicom.dcmread(filenames[0])
    assert image.dtype.kind == "i"  # slope 1, integral intercept: integers kept
    np.testing.assert_allclose(image.spacing[1:], [float(v) for v in reference.PixelSpacing])
    positions = sorted(float(pydicom.dcmread(f).ImagePositionPatient[2]) for f in filenames)
    assert image.origin[0] == pytest.approx(positions[0])
    first = [f for f in filenames if float(pydicom.dcmread(f).ImagePositionPatient[2]) == positions[0]][0]
    ds = pydicom.dcmread(first)
    expected = ds.pixel_array.astype(np.int64) * int(ds.RescaleSlope) + int(ds.RescaleIntercept)
    np.testing.assert_array_equal(image.data[0], expected)


def test_several_series(testdata, capsys):
    filenames = sorted((testdata / "pydicom/test_files/dicomdirtests/98892001/CT5N").iterdir())
    filenames += sorted((testdata / "dicom2nifti/hitachi/anatomical/001").iterdir())
    filenames += sorted((testdata / "dcmqi/ct-3slice").iterdir())
    datasets = [medipy.io.dicom.read(f) for f in filenames]
    series = medipy.io.dicom.series(datasets)
    for serie in series:
        uid, description = medipy.io.dicom.uid_and_description(serie)
        print(description)
    image = medipy.io.dicom.image(series[0])
    printed = capsys.readouterr().out.splitlines()
    assert sorted(len(s) for s in series) == [3, 4, 5]
    assert printed == [str(s[0].get("SeriesDescription", "") or s[0].get("ProtocolName", "")
                           or "(no description)") for s in series]
    assert [str(s[0].StudyInstanceUID) for s in series] == sorted(str(s[0].StudyInstanceUID) for s in series)
    assert image.shape[0] == len(series[0])


def test_dicomdir(testdata, capsys):
    base_directory = testdata / "pydicom/test_files/dicomdirtests"
    filenames = [base_directory / "DICOMDIR"]
    datasets = [medipy.io.dicom.read(f) for f in filenames]
    series = medipy.io.dicom.series(datasets)
    for serie in series:
        uid, description = medipy.io.dicom.uid_and_description(serie, base_directory)
        print(description)
    assert capsys.readouterr().out.splitlines()[:2] == ["Scout", "SmartScore - Gated 0.5 sec"]
    serie = medipy.io.dicom.load_dicomdir_records(series[1])
    image = medipy.io.dicom.image(serie)
    assert image.shape == (5, 16, 16)  # the 5-slice CT5N
    np.testing.assert_allclose(image.spacing[0], 2.5, atol=1e-4)


def test_general_case_several_stacks(testdata):
    base_directory = testdata / "pydicom/test_files/dicomdirtests"
    series = medipy.io.dicom.series([medipy.io.dicom.read(base_directory / "DICOMDIR")])
    # the MR localizers of 98892003/MR2: three orientations in one series
    index = next(i for i, s in enumerate(series)
                 if medipy.io.dicom.uid_and_description(s)[0].endswith("18148.0.17"))
    serie = medipy.io.dicom.load_dicomdir_records(series[index])
    with pytest.raises(SeveralStacksError, match="stacks"):
        medipy.io.dicom.image(serie)
    stacks = medipy.io.dicom.stacks(serie)
    assert len(stacks) == 3
    stack = medipy.io.dicom.stacks(serie)[0]
    image = medipy.io.dicom.image(stack)
    assert image.shape[0] == 1


def test_writing(tmp_path):
    dataset = medipy.io.dicom.DataSet()
    dataset.PatientName = "Doe^John"
    dataset.SOPClassUID = pydicom.uid.SecondaryCaptureImageStorage
    dataset.SOPInstanceUID = pydicom.uid.generate_uid()
    medipy.io.dicom.write(dataset, tmp_path / "foo.dcm")
    written = pydicom.dcmread(tmp_path / "foo.dcm")
    assert written.SpecificCharacterSet == "ISO_IR 192"
    assert str(written.PatientName) == "Doe^John"
