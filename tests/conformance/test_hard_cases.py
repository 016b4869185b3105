"""The harder cases of issue 6, pinned one by one: 4D assembly, enhanced files, gantry tilt, missing slices,
not-a-volume, and the NIfTI export that lets users diff medipy against their dcm2niix pipelines."""

from __future__ import annotations

import gzip
import json

import nibabel
import numpy as np
import pytest

import medipy.io.dicom
from medipy.errors import ExportError, GeometryError
from medipy.io.dicom.resample import resample_regular
from medipy.io.dicom.series4d import diffusion_table, image4d, series_images
from medipy.io.nifti import fsl_bvecs, nifti_affine, to_nifti

FAILING = "dicom2nifti/Ref_dcm2niix_local/failing-"


def images_of(harness, testdata, folder):
    return list(harness.medipy_images(str(testdata / folder)))


@pytest.mark.parametrize(("folder", "reference", "shape"), [
    ("dcm_qa_nih/In/20180918GE/mr_0004", "dcm_qa_nih/Ref/DCM2NIIX_regression_test_4.nii", (10, 15, 64, 64)),
    ("dcm_qa_nih/In/20180918GE/mr_0005", "dcm_qa_nih/Ref/DCM2NIIX_regression_test_5.nii", (10, 15, 64, 64)),
    ("dcm_qa_table/In/GE/Exam1486_Laser794mm/02_Ax_fMRI_FF_I11.1_S15.9", "dcm_qa_table/Ref/GE_1486_2_Ax_fMRI.nii",
     (5, 10, 64, 64)),
    ("dcm_qa_enh/In/Siemens/XA10", "dcm_qa_enh/Ref/Siemens_REST1_w_SMS_PF7-8_6.nii", (4, 6, 64, 64)),
])
def test_time_series_is_one_4d_image_in_dcm2niix_order(testdata, harness, folder, reference, shape):
    images = images_of(harness, testdata, folder)
    assert [image.shape for image in images] == [shape]
    assert images[0].metadata["volume_axis"] == "time"
    assert len(images[0].metadata["volumes"]) == shape[0]
    assert harness.compare(images[0], testdata / reference)[0] == "agree"


def test_stacks_keep_one_3d_volume_each(testdata):
    folder = testdata / "dcm_qa_table/In/GE/Exam1486_Laser794mm/02_Ax_fMRI_FF_I11.1_S15.9"
    serie = [medipy.io.dicom.read(p) for p in sorted(folder.iterdir())]
    stacks = medipy.io.dicom.stacks(serie)
    assert [len(s) for s in stacks] == [10] * 5
    fmri = image4d(stacks)
    np.testing.assert_array_equal(fmri.data[3], medipy.io.dicom.image(stacks[3]).data)


def test_philips_magnitude_and_field_map_in_one_file(testdata, harness):
    magnitude, field_map = images_of(harness, testdata, "dcm_qa_enh/In/Philips")
    assert magnitude.shape == field_map.shape == (32, 64, 64)
    assert magnitude.metadata["FrameType"][-1] == "M"
    assert field_map.metadata["FrameType"][-1] == "FIELD_MAP"
    e1 = testdata / "dcm_qa_enh/Ref/Philips_WIP_B0_NS_801_e1.nii"
    e2 = testdata / "dcm_qa_enh/Ref/Philips_WIP_B0_NS_801_e2_fieldmaphz.nii"
    verdict, affine_mm, voxel = harness.compare(field_map, e2)
    assert verdict == "agree"
    assert voxel < 0.01
    verdict, affine_mm, _ = harness.compare(magnitude, e1)
    assert verdict == "voxel values"
    assert affine_mm < 1e-3
    ours = np.asarray(magnitude.data, float)
    theirs = nibabel.load(str(e1)).get_fdata()
    ratio = theirs.max() / ours.max()
    np.testing.assert_allclose(ratio, 1 / (1.27985347985347 * 8.44864e-06), rtol=1e-4)  # 1 / (RS x SS)


def test_gantry_tilt_is_sheared_exactly_and_resamples_as_dcm2niix(testdata, harness):
    (image,) = images_of(harness, testdata, "dicom2nifti/failing/gantrytilting/001")
    assert image.metadata["gantry_tilt"] == pytest.approx(14.0, abs=1e-3)
    assert any("gantry tilt" in w for w in image.metadata["geometry_warnings"])
    np.testing.assert_allclose(image.lps_affine[:3, 0], [0.0, 0.0, 5.0], atol=1e-6)  # true slice step
    verdict, affine_mm, voxel = harness.compare(image, testdata / f"{FAILING}gantrytilting/4_.nii.gz")
    assert verdict == "affine"
    assert 0.4 < affine_mm < 0.5
    assert voxel == 0
    regular = resample_regular(image)
    assert regular.shape == (4, 521, 512)
    assert regular.metadata["resampled"] == ["tilt"]
    assert regular.metadata["gantry_tilt"] == 0.0
    verdict, affine_mm, voxel = harness.compare(regular, testdata / f"{FAILING}gantrytilting/4__Tilt_1.nii.gz")
    assert (verdict, voxel) == ("agree", 0.0)
    assert affine_mm < 1e-4


def test_missing_slice_is_reported_and_resampled_to_an_even_grid(testdata, harness):
    (gapped,) = images_of(harness, testdata, "derived_broken/series_with_missing_slice")
    (whole,) = images_of(harness, testdata, "dicom2nifti/hitachi/anatomical/001")
    assert gapped.shape[0] == 3
    assert whole.shape[0] == 4
    assert any("1 missing slice(s) likely" in w for w in gapped.metadata["geometry_warnings"])
    regular = resample_regular(gapped)
    assert regular.metadata["resampled"] == ["equidistant"]
    assert regular.shape == whole.shape
    np.testing.assert_allclose(regular.lps_affine, whole.lps_affine, atol=1e-3)
    # 002.dcm is the third slice along the normal: the others are kept, the gap is interpolated
    np.testing.assert_array_equal(regular.data[[0, 1, 3]], whole.data[[0, 1, 3]])
    middle = np.round((whole.data[1].astype(float) + whole.data[3]) / 2)
    np.testing.assert_allclose(regular.data[2], middle, atol=1)  # gaps 4.000004 / 8.000001 mm: not exactly 1/2


def test_not_a_volume_is_one_4d_image(testdata, harness):
    folder = testdata / "dicom2nifti/failing/notavolume/001"
    serie = [medipy.io.dicom.read(p) for p in sorted(folder.iterdir())]
    assert [len(s) for s in medipy.io.dicom.stacks(serie)] == [1, 1, 1, 1]
    (image,) = images_of(harness, testdata, "dicom2nifti/failing/notavolume/001")
    assert image.shape == (4, 1, 512, 512)
    assert [v["acquisition_number"] for v in image.metadata["volumes"]] == [12, 13, 14, 15]
    verdict, affine_mm, _ = harness.compare(image, testdata / f"{FAILING}notavolume/4_.nii.gz")
    assert verdict == "volume order"
    assert affine_mm < 1e-3
    stacked = image4d([serie[:1], serie[1:2]])
    assert stacked.shape == (2, 1, 512, 512)


def test_repeated_positions_have_no_regular_grid(testdata):
    ds = medipy.io.dicom.read(testdata / "dicom2nifti/hitachi/anatomical/001/001.dcm")
    image = medipy.io.dicom.image([ds])
    image = type(image)(np.stack([image.data[0]] * 2), image.origin, image.spacing, image.direction,
                        {"per_slice": {"ImagePositionPatient": [list(ds.ImagePositionPatient)] * 2}})
    with pytest.raises(GeometryError):
        resample_regular(image)


def test_echoes_stay_separate_unless_combined(testdata):
    folder = testdata / "dcm_qa_nih/In/20180918Si/mr_0003"
    serie = [medipy.io.dicom.read(p) for p in sorted(folder.glob("*.dcm"))]
    for echo, ds in enumerate(serie, start=1):
        ds.EchoNumbers, ds.EchoTime = echo, 10.0 * echo
    assert [im.shape for im in series_images(serie)] == [(5, 72, 72), (5, 72, 72)]
    (combined,) = series_images(serie, combine_echoes=True)
    assert combined.shape == (2, 5, 72, 72)
    assert [v["echo_number"] for v in combined.metadata["volumes"]] == [1, 2]


def test_nifti_export_round_trips_through_world_coordinates(testdata, harness, tmp_path):
    (fmri,) = images_of(harness, testdata, "dcm_qa_nih/In/20180918GE/mr_0004")
    files = to_nifti(fmri, tmp_path / "fmri.nii.gz")
    verdict, affine_mm, voxel = harness.compare(fmri, files.nifti)
    assert (verdict, voxel) == ("agree", 0.0)
    assert affine_mm < 1e-4
    sidecar = json.loads(files.sidecar.read_text())
    assert sidecar["EchoTime"] == pytest.approx(0.03)
    assert sidecar["RepetitionTime"] == pytest.approx(5.0)
    assert sidecar["VolumeAxis"] == "time"
    assert "PatientName" not in sidecar
    with pytest.raises(ExportError):
        to_nifti(fmri, tmp_path / "fmri2", bval_bvec=True)
    (tilted,) = images_of(harness, testdata, "dicom2nifti/failing/gantrytilting/001")
    written = nibabel.load(str(to_nifti(tilted, tmp_path / "tilt.nii").nifti))
    assert int(written.header["qform_code"]) == 0  # a qform cannot hold the shear
    np.testing.assert_allclose(written.get_sform(), nifti_affine(tilted), atol=1e-4)


def test_diffusion_encoding_and_fsl_export(testdata, tmp_path):
    path = tmp_path / "dwi.dcm"
    path.write_bytes(gzip.decompress((testdata / "nibabel_nicom/siemens_dwi_1000.dcm.gz").read_bytes()))
    (image,) = series_images([medipy.io.dicom.read(path)])
    table = diffusion_table(image)
    assert table.bvals.tolist() == [1000.0]
    np.testing.assert_allclose(table.bvecs_lps[0], [0.999974, 0.00505, -0.00505], atol=1e-5)
    # image coordinates: components along the index axes (z, y, x); the gradient runs along the rows (x)
    np.testing.assert_allclose(np.abs(table.bvecs_image[0]), [0.00502, 0.00508, 0.99997], atol=1e-4)
    files = to_nifti(image, tmp_path / "dwi.nii", bval_bvec=True)
    assert files.bval.read_text().split() == ["1000"]
    bvec = np.loadtxt(files.bvec)
    np.testing.assert_allclose(bvec, fsl_bvecs(table.bvecs_lps, nifti_affine(image))[:, 0], atol=1e-6)
    assert abs(bvec[0]) == pytest.approx(0.999974, abs=1e-5)
