"""Diffusion encoding from the standard attributes and the Siemens, GE and Philips private tags.

The files are generated (no diffusion series of GE or Philips is in ../shared/testdata): a b = 0 volume and two
diffusion-weighted volumes of 2 slices each, with the encoding written where each vendor writes it.
"""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

import medipy.io.dicom
from medipy.errors import ExportError
from medipy.io.dicom.diffusion import diffusion_of
from medipy.io.dicom.series4d import diffusion_table, series_images
from medipy.io.nifti import to_nifti

SERIES = "1.2.826.0.1.3680043.8.498.1"
# (b-value, direction as the vendor writes it): b = 0 first, then two directions
ENCODINGS = [(0.0, (0.0, 0.0, 0.0)), (1000.0, (0.0, 3.0, 4.0)), (1000.0, (1.0, 0.0, 0.0))]


def _slice(z: float, instance: int) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.2", SERIES
    ds.PatientID, ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "DWI", "MR", 5, instance
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = [0.0, 0.0, z]
    ds.PixelSpacing, ds.SliceThickness = [2.0, 2.0], 2.0
    ds.Rows = ds.Columns = 4
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = np.full((4, 4), instance, "<u2").tobytes()
    return ds


def _standard(ds: Dataset, b: float, g: tuple[float, float, float]) -> None:
    ds.DiffusionBValue = b
    if b:
        ds.DiffusionGradientOrientation = list(g)


def _standard_sequence(ds: Dataset, b: float, g: tuple[float, float, float]) -> None:
    ds.DiffusionBValue = b
    if b:
        item = Dataset()
        item.DiffusionGradientOrientation = list(g)
        ds.DiffusionGradientDirectionSequence = Sequence([item])


def _siemens(ds: Dataset, b: float, g: tuple[float, float, float]) -> None:
    block = ds.private_block(0x0019, "SIEMENS MR HEADER", create=True)
    block.add_new(0x0C, "IS", str(int(b)))
    if b:
        block.add_new(0x0E, "FD", list(g))


def _ge(ds: Dataset, b: float, g: tuple[float, float, float]) -> None:
    # b-value as the first value of slop_int_6..9, offset by 1e9 as some GE releases write it
    ds.private_block(0x0043, "GEMS_PARM_01", create=True).add_new(0x39, "IS", [str(int(b) + 10**9), "8", "0", "0"])
    block = ds.private_block(0x0019, "GEMS_ACQU_01", create=True)
    for offset, value in zip((0xBB, 0xBC, 0xBD), g, strict=True):
        block.add_new(offset, "DS", str(value))


def _philips(ds: Dataset, b: float, g: tuple[float, float, float]) -> None:
    ds.private_block(0x2001, "Philips Imaging DD 001", create=True).add_new(0x03, "FL", b)
    block = ds.private_block(0x2005, "Philips MR Imaging DD 001", create=True)
    for offset, value in zip((0xB0, 0xB1, 0xB2), g, strict=True):
        block.add_new(offset, "FL", value)


VENDORS = {"standard": _standard, "standard-sequence": _standard_sequence, "siemens": _siemens, "ge": _ge,
           "philips": _philips}


def _write_series(folder, vendor: str, *, crossed: bool = False) -> list[str]:
    """Write the series; ``crossed``: the two weighted volumes swap instance numbers at the second position, so
    that only their directions (not their acquisition order) tell their slices apart."""
    folder.mkdir()
    paths = []
    for volume, (b, g) in enumerate(ENCODINGS):
        for k in range(2):
            instance = 2 * (3 - volume if crossed and k == 1 and volume else volume) + k + 1
            ds = _slice(2.0 * k, instance)
            VENDORS[vendor](ds, b, g)
            path = folder / f"IM{instance:03d}.dcm"
            ds.save_as(path, enforce_file_format=True)
            paths.append(str(path))
    return paths


@pytest.mark.parametrize("vendor", ["standard", "standard-sequence", "siemens", "philips"])
def test_patient_frame_gradients_are_read_as_lps(tmp_path, vendor):
    paths = _write_series(tmp_path / vendor, vendor)
    encodings = [diffusion_of(medipy.io.dicom.read(p)) for p in paths]
    assert [e.b_value for e in encodings] == [0.0, 0.0, 1000.0, 1000.0, 1000.0, 1000.0]
    assert [e.gradient for e in encodings] == [None, None, (0.0, 0.6, 0.8), (0.0, 0.6, 0.8), (1.0, 0.0, 0.0),
                                               (1.0, 0.0, 0.0)]
    assert all(e.gradient_logical is None for e in encodings)

    (image,) = series_images(medipy.io.dicom.series([medipy.io.dicom.read(p) for p in paths])[0])
    assert image.shape == (3, 2, 4, 4)
    assert image.metadata["volume_axis"] == "channel"
    assert [float(image.data[t, 0, 0, 0]) for t in range(3)] == [1.0, 3.0, 5.0]
    table = diffusion_table(image)
    np.testing.assert_array_equal(table.bvals, [0.0, 1000.0, 1000.0])
    np.testing.assert_allclose(table.bvecs_lps, [[0, 0, 0], [0, 0.6, 0.8], [1, 0, 0]])
    # axial, identity directions: image axes (z, y, x) are LPS (z, y, x)
    np.testing.assert_allclose(table.bvecs_image, [[0, 0, 0], [0.8, 0.6, 0], [0, 0, 1]], atol=1e-12)
    assert table.bvecs_logical is None
    files = to_nifti(image, tmp_path / f"{vendor}.nii", bval_bvec=True)
    assert files.bval.read_text().split() == ["0", "1000", "1000"]
    assert np.loadtxt(files.bvec).shape == (3, 3)


def test_ge_gradients_stay_in_their_logical_frame(tmp_path):
    """GE records directions along its frequency, phase and slice axes: never given as LPS, never exported."""
    paths = _write_series(tmp_path / "ge", "ge", crossed=True)
    encodings = [diffusion_of(medipy.io.dicom.read(p)) for p in paths]
    assert [e.b_value for e in encodings] == [0.0, 0.0, 1000.0, 1000.0, 1000.0, 1000.0]  # 1e9 offset removed
    assert all(e.gradient is None for e in encodings)
    assert [e.gradient_logical for e in encodings] == [None, None, (0.0, 0.6, 0.8), (0.0, 0.6, 0.8),
                                                       (1.0, 0.0, 0.0), (1.0, 0.0, 0.0)]

    datasets = [medipy.io.dicom.read(p) for p in paths]
    (serie,) = medipy.io.dicom.series(datasets)
    stacks = medipy.io.dicom.stacks(serie)
    assert [len(s) for s in stacks] == [2, 2, 2]
    # the directions split volumes, as LPS ones do (acquisition order alone would cross them)
    assert [{diffusion_of(ds).gradient_logical for ds in s} for s in stacks] == [
        {None}, {(0.0, 0.6, 0.8)}, {(1.0, 0.0, 0.0)}]
    (image,) = series_images(serie)
    assert image.metadata["volume_axis"] == "channel"
    assert [v["gradient_logical"] for v in image.metadata["volumes"]] == [None, [0.0, 0.6, 0.8], [1.0, 0.0, 0.0]]
    assert all(v["gradient_lps"] is None for v in image.metadata["volumes"])
    table = diffusion_table(image)
    np.testing.assert_array_equal(table.bvals, [0.0, 1000.0, 1000.0])
    assert table.bvecs_lps is None
    assert table.bvecs_image is None
    np.testing.assert_allclose(table.bvecs_logical, [[0, 0, 0], [0, 0.6, 0.8], [1, 0, 0]])
    with pytest.raises(ExportError, match="frequency, phase and slice"):
        to_nifti(image, tmp_path / "ge.nii", bval_bvec=True)
    assert not list(tmp_path.glob("ge.*"))  # refused before anything is written
    assert to_nifti(image, tmp_path / "ge.nii").bvec is None


def test_ge_fmri_private_b_value_without_gradient_is_not_diffusion(tmp_path):
    """slop_int_6 (0043,xx39) has other meanings outside diffusion: without the gradient tags it is ignored."""
    ds = _slice(0.0, 1)
    ds.private_block(0x0043, "GEMS_PARM_01", create=True).add_new(0x39, "IS", ["0", "8", "0", "0"])
    assert diffusion_of(ds) == (None, None, None)


def test_zero_or_unreadable_directions_give_none():
    ds = _slice(0.0, 1)
    _standard(ds, 1000.0, (0.0, 0.0, 0.0))
    assert diffusion_of(ds) == (1000.0, None, None)  # a null vector is not a direction
    ds = _slice(0.0, 1)
    _philips(ds, 700.0, (float("nan"), 0.0, 1.0))
    assert diffusion_of(ds) == (700.0, None, None)
