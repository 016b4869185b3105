"""The reference table of the conformance harness: which input of ../shared/testdata pairs with which output.

Each case is one input (a folder of one or more series, or one file) and every reference NIfTI written for
it by dcm2niix (``Ref/`` upstream, ``Ref_dcm2niix_local/`` generated with ``-b y -z y -f %s_%d``) or by
dicom2nifti (``*_ground_truth.nii.gz``). ``resample`` compares medipy's regular-grid option
(:func:`medipy.io.dicom.resample.resample_regular`) instead of the acquired geometry (dcm2niix ``_Tilt``).

``EXPECTED`` lists the (case, reference) pairs that differ on purpose, each with the heading of
``EXPECTED_DIFFERENCES.md`` that gives the reason; the harness fails on any other difference, and on an
expected difference that has gone away.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    """One input and its reference outputs (paths relative to the corpus root)."""

    input: str
    references: tuple[str, ...]
    converter: str = "dcm2niix"
    resample: bool = False

    @property
    def id(self) -> str:
        return self.input + (" [resample]" if self.resample else "")


_NIH = "dcm_qa_nih"
_TABLE = "dcm_qa_table"
_LOCALIZER = "01_3_Plane_Localizer_FF/1_3-Plane_Localizer_i000"
_XA = "dcm_qa_xa30i/Ref/{0}_AAHead_Scout_i{0}00{1}.nii.gz"
_FAILING = "dicom2nifti/Ref_dcm2niix_local/failing-"


def _dicom2nifti(folder: str) -> Case:
    return Case(f"dicom2nifti/{folder}", (f"dicom2nifti/{folder}_ground_truth.nii.gz",), converter="dicom2nifti")


CASES: tuple[Case, ...] = (
    *(Case(f"dcm_qa_ts/In/{n}.dcm", (f"dcm_qa_ts/Ref/{n}.nii",)) for n in range(1, 10)),
    Case(f"{_NIH}/In/20180918GE/mr_0004", (f"{_NIH}/Ref/DCM2NIIX_regression_test_4.nii",)),
    Case(f"{_NIH}/In/20180918GE/mr_0005", (f"{_NIH}/Ref/DCM2NIIX_regression_test_5.nii",)),
    Case(f"{_NIH}/In/20180918Si/mr_0003", (f"{_NIH}/Ref/EPI_PE=AP_3.nii",)),
    Case(f"{_NIH}/In/20180918Si/mr_0004", (f"{_NIH}/Ref/EPI_PE=PA_4.nii",)),
    Case(f"{_NIH}/In/20180918Si/mr_0005", (f"{_NIH}/Ref/EPI_PE=RL_5.nii",)),
    Case(f"{_NIH}/In/20180918Si/mr_0006", (f"{_NIH}/Ref/EPI_PE=LR_6.nii",)),
    Case(f"{_TABLE}/In/GE/Exam1486_Laser794mm/02_Ax_fMRI_FF_I11.1_S15.9", (f"{_TABLE}/Ref/GE_1486_2_Ax_fMRI.nii",)),
    Case(f"{_TABLE}/In/GE/Exam1486_Laser794mm/01_3_Plane_Localizer_FF",
         tuple(f"{_TABLE}/Ref_dcm2niix_local/{_LOCALIZER}{n}.nii.gz" for n in ("01", "08", "15"))),
    Case("dcm_qa_enh/In/Siemens/XA10", ("dcm_qa_enh/Ref/Siemens_REST1_w_SMS_PF7-8_6.nii",)),
    Case("dcm_qa_enh/In/Philips", ("dcm_qa_enh/Ref/Philips_WIP_B0_NS_801_e1.nii",
                                   "dcm_qa_enh/Ref/Philips_WIP_B0_NS_801_e2_fieldmaphz.nii")),
    Case("dcm_qa_xa30i/In/2001_AAHead_Scout", tuple(_XA.format(2001, n) for n in range(1, 5))),
    Case("dcm_qa_xa30i/In/3001_AAHead_Scout", tuple(_XA.format(3001, n) for n in range(1, 4))),
    Case("dcm_qa_xa30i/In/4001_AAHead_Scout", tuple(_XA.format(4001, n) for n in range(1, 4))),
    Case("dcmqi/ct-3slice", ("dcmqi/Ref_dcm2niix_local/ct-3slice/2_.nii.gz",)),
    Case("dcmqi/23x38x3/image", ("dcmqi/Ref_dcm2niix_local/23x38x3-image/123456_Image_23x38x3.nii.gz",)),
    Case("dcmqi/23x38x3/multiframe",
         ("dcmqi/Ref_dcm2niix_local/23x38x3-multiframe/123456_Multiframe_image_23x38x3.nii.gz",)),
    Case("dcmqi/24x38x3/image", ("dcmqi/Ref_dcm2niix_local/24x38x3-image/123456_Image_24x38x3.nii.gz",)),
    Case("dcmqi/24x38x3/multiframe",
         ("dcmqi/Ref_dcm2niix_local/24x38x3-multiframe/123456_Multiframe_image_24x38x3.nii.gz",)),
    Case("pydicom/test_files/dicomdirtests/98892001/CT5N",
         ("pydicom/Ref_dcm2niix_local/dicomdirtests-CT5N/5_SmartScore_-_Gated_0.5_sec.nii.gz",)),
    Case("dicom2nifti/failing/gantrytilting/001", (f"{_FAILING}gantrytilting/4_.nii.gz",)),
    Case("dicom2nifti/failing/gantrytilting/001", (f"{_FAILING}gantrytilting/4__Tilt_1.nii.gz",), resample=True),
    Case("dicom2nifti/failing/notavolume/001", (f"{_FAILING}notavolume/4_.nii.gz",)),
    Case("dicom2nifti/failing/sliceorientation/001",
         (f"{_FAILING}sliceorientation/202_.nii.gz", f"{_FAILING}sliceorientation/501_.nii.gz")),
    _dicom2nifti("generic/compressed_jpeg/001"),
    _dicom2nifti("generic/compressed_j2k/001"),
    _dicom2nifti("generic/anatomical/002_non_isotropic"),
    _dicom2nifti("hitachi/anatomical/001"),
    _dicom2nifti("hitachi/anatomical/001_implicit"),
    _dicom2nifti("philips_enhanced/fmri/001"),
    _dicom2nifti("philips_enhanced/fmri/001_implicit"),
)

#: (case id, reference file name) -> heading of EXPECTED_DIFFERENCES.md giving the reason.
EXPECTED: dict[tuple[str, str], str] = {
    ("dcm_qa_enh/In/Philips", "Philips_WIP_B0_NS_801_e1.nii"): "Philips private floating-point scaling",
    ("dicom2nifti/failing/gantrytilting/001", "4_.nii.gz"): "Gantry tilt: uncorrected dcm2niix affine",
    ("dicom2nifti/failing/notavolume/001", "4_.nii.gz"): "Not a volume: order of the 4 single-slice volumes",
}
