"""image() and stacks() against the dcm2niix / dicom2nifti reference conversions, through world coordinates.

Each row pairs real DICOM input with its reference NIfTI: shape, geometry (every voxel centre maps within
1e-3 voxel of a reference voxel centre) and voxels (after rescale) must agree. 4D references are compared
volume by volume with the stacks of the series, in order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import medipy.io.dicom

NON_DICOM = {".txt", ".json", ".nii", ".gz", ".png", ".jpg", ".log", ".md"}


def dicom_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() not in NON_DICOM)


def read_stacks(folder: Path) -> list[list[medipy.io.dicom.DataSet]]:
    datasets = [medipy.io.dicom.read(p) for p in dicom_files(folder)]
    series = medipy.io.dicom.series(datasets)
    assert len(series) == 1
    return medipy.io.dicom.stacks(series[0])


# (input folder, reference, expected stack count, volumes compared with the reference; None = 3D)
REFERENCES = [
    ("dcmqi/ct-3slice", "dcmqi/Ref_dcm2niix_local/ct-3slice/2_.nii.gz", 1, None),
    ("dcmqi/23x38x3/image", "dcmqi/Ref_dcm2niix_local/23x38x3-image/123456_Image_23x38x3.nii.gz", 1, None),
    ("dcmqi/23x38x3/multiframe",
     "dcmqi/Ref_dcm2niix_local/23x38x3-multiframe/123456_Multiframe_image_23x38x3.nii.gz", 1, None),
    ("dcmqi/24x38x3/image", "dcmqi/Ref_dcm2niix_local/24x38x3-image/123456_Image_24x38x3.nii.gz", 1, None),
    ("dcmqi/24x38x3/multiframe",
     "dcmqi/Ref_dcm2niix_local/24x38x3-multiframe/123456_Multiframe_image_24x38x3.nii.gz", 1, None),
    ("pydicom/test_files/dicomdirtests/98892001/CT5N",
     "pydicom/Ref_dcm2niix_local/dicomdirtests-CT5N/5_SmartScore_-_Gated_0.5_sec.nii.gz", 1, None),
    ("dicom2nifti/generic/compressed_jpeg/001", "dicom2nifti/generic/compressed_jpeg/001_ground_truth.nii.gz",
     1, None),
    ("dicom2nifti/generic/compressed_j2k/001", "dicom2nifti/generic/compressed_j2k/001_ground_truth.nii.gz",
     1, None),
    ("dicom2nifti/generic/anatomical/002_non_isotropic",
     "dicom2nifti/generic/anatomical/002_non_isotropic_ground_truth.nii.gz", 1, None),
    ("dicom2nifti/hitachi/anatomical/001", "dicom2nifti/hitachi/anatomical/001_ground_truth.nii.gz", 1, None),
    ("dicom2nifti/hitachi/anatomical/001_implicit",
     "dicom2nifti/hitachi/anatomical/001_implicit_ground_truth.nii.gz", 1, None),
    ("dicom2nifti/philips_enhanced/fmri/001", "dicom2nifti/philips_enhanced/fmri/001_ground_truth.nii.gz", 4, 4),
    ("dicom2nifti/philips_enhanced/fmri/001_implicit",
     "dicom2nifti/philips_enhanced/fmri/001_implicit_ground_truth.nii.gz", 4, 4),
    ("dcm_qa_enh/In/Siemens/XA10", "dcm_qa_enh/Ref/Siemens_REST1_w_SMS_PF7-8_6.nii", 4, 4),
    ("dcm_qa_nih/In/20180918GE/mr_0004", "dcm_qa_nih/Ref/DCM2NIIX_regression_test_4.nii", 10, 10),
    ("dcm_qa_nih/In/20180918GE/mr_0005", "dcm_qa_nih/Ref/DCM2NIIX_regression_test_5.nii", 10, 10),
    ("dcm_qa_nih/In/20180918Si/mr_0003", "dcm_qa_nih/Ref/EPI_PE=AP_3.nii", 2, 2),
    ("dcm_qa_nih/In/20180918Si/mr_0004", "dcm_qa_nih/Ref/EPI_PE=PA_4.nii", 2, 2),
    ("dcm_qa_nih/In/20180918Si/mr_0005", "dcm_qa_nih/Ref/EPI_PE=RL_5.nii", 2, 2),
    ("dcm_qa_nih/In/20180918Si/mr_0006", "dcm_qa_nih/Ref/EPI_PE=LR_6.nii", 2, 2),
    ("dcm_qa_table/In/GE/Exam1486_Laser794mm/02_Ax_fMRI_FF_I11.1_S15.9", "dcm_qa_table/Ref/GE_1486_2_Ax_fMRI.nii",
     5, 5),
]


@pytest.mark.parametrize(("folder", "reference", "n_stacks", "volumes"), REFERENCES,
                         ids=[row[0] for row in REFERENCES])
def test_image_matches_reference(testdata, nifti_mismatch, folder, reference, n_stacks, volumes):
    stacks = read_stacks(testdata / folder)
    assert len(stacks) == n_stacks
    for volume in range(volumes or 1):
        image = medipy.io.dicom.image(stacks[volume])
        geometry_error, voxel_error = nifti_mismatch(image, testdata / reference, volume)
        assert geometry_error < 1e-3
        assert voxel_error <= 1e-4 * max(1.0, float(np.abs(image.data).max()))


@pytest.mark.parametrize("syntax", range(1, 10))
def test_every_transfer_syntax_decodes_identically(testdata, nifti_mismatch, syntax):
    """dcm_qa_ts: one Siemens mosaic in 9 transfer syntaxes; all equal the explicit-LE voxels and Ref/."""
    reference = medipy.io.dicom.image([medipy.io.dicom.read(testdata / "dcm_qa_ts/In/1.dcm")])
    image = medipy.io.dicom.image([medipy.io.dicom.read(testdata / f"dcm_qa_ts/In/{syntax}.dcm")])
    assert image.shape == (35, 64, 64)
    np.testing.assert_array_equal(image.data, reference.data)
    np.testing.assert_allclose(image.lps_affine, reference.lps_affine, atol=1e-6)
    geometry_error, voxel_error = nifti_mismatch(image, testdata / f"dcm_qa_ts/Ref/{syntax}.nii")
    assert geometry_error < 1e-3
    assert voxel_error == 0


@pytest.mark.parametrize("size", ["23x38x3", "24x38x3"])
def test_classic_and_multiframe_give_identical_images(testdata, size):
    classic = medipy.io.dicom.image(read_stacks(testdata / f"dcmqi/{size}/image")[0])
    enhanced = medipy.io.dicom.image(read_stacks(testdata / f"dcmqi/{size}/multiframe")[0])
    np.testing.assert_array_equal(classic.data, enhanced.data)
    assert classic.dtype == enhanced.dtype
    np.testing.assert_allclose(classic.origin, enhanced.origin, atol=1e-4)
    np.testing.assert_allclose(classic.spacing, enhanced.spacing, atol=1e-6)
    np.testing.assert_allclose(classic.direction, enhanced.direction, atol=1e-6)


def _matching_references(image, references, nifti_mismatch):
    matches = []
    for reference in references:
        try:
            geometry_error, voxel_error = nifti_mismatch(image, reference)
        except AssertionError:  # other shape, or maps outside that reference
            continue
        if geometry_error < 1e-3 and voxel_error == 0:
            matches.append(reference.name)
    return matches


def test_ge_three_plane_localizer_gives_three_stacks_of_seven(testdata, nifti_mismatch):
    folder = testdata / "dcm_qa_table/In/GE/Exam1486_Laser794mm/01_3_Plane_Localizer_FF"
    stacks = read_stacks(folder)
    assert [len(s) for s in stacks] == [7, 7, 7]
    references = sorted((testdata / "dcm_qa_table/Ref_dcm2niix_local/01_3_Plane_Localizer_FF").glob("*.nii.gz"))
    normals = set()
    for stack in stacks:
        image = medipy.io.dicom.image(stack)
        assert len(_matching_references(image, references, nifti_mismatch)) == 1
        normals.add(tuple(np.round(np.abs(image.direction[:, 0]))))
    assert normals == {(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)}  # axial, coronal, sagittal


@pytest.mark.parametrize(("series", "sizes"), [("2001", [2, 1, 1, 1]), ("3001", [1, 1, 1]), ("4001", [1, 1, 1])])
def test_xa30_scouts_split_as_dcm2niix(testdata, nifti_mismatch, series, sizes):
    stacks = read_stacks(testdata / f"dcm_qa_xa30i/In/{series}_AAHead_Scout")
    assert [len(s) for s in stacks] == sizes
    references = sorted((testdata / "dcm_qa_xa30i/Ref").glob(f"{series}_*.nii.gz"))
    matched = [_matching_references(medipy.io.dicom.image(s), references, nifti_mismatch) for s in stacks]
    assert all(len(m) == 1 for m in matched)
    assert len({m[0] for m in matched}) == len(stacks)  # each stack its own reference


def test_philips_magnitude_and_field_map_are_separate_stacks(testdata, nifti_mismatch):
    stacks = read_stacks(testdata / "dcm_qa_enh/In/Philips")
    assert [len(s) for s in stacks] == [32, 32]
    frame_types = [{str(frame.FrameType[3]) for frame in stack} for stack in stacks]
    assert frame_types == [{"M"}, {"FIELD_MAP"}]
    for stack in stacks:  # geometry of both equals dcm2niix's (values differ: dcm2niix uses Philips scaling)
        image = medipy.io.dicom.image(stack)
        geometry_error, _ = nifti_mismatch(image, testdata / "dcm_qa_enh/Ref/Philips_WIP_B0_NS_801_e1.nii")
        assert geometry_error < 1e-3
