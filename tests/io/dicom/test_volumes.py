"""4D grouping of stacks into volumes, on real 4D series."""

from __future__ import annotations

import pytest

import medipy.io.dicom
from medipy.io.dicom.assembly import slice_records
from medipy.io.dicom.keys import group_stacks
from medipy.io.dicom.volumes import group_volumes, volume_axis


def series_stacks(folder):
    datasets = [medipy.io.dicom.read(p) for p in sorted(folder.iterdir()) if p.suffix != ".txt"]
    _, records = slice_records(datasets)
    return group_stacks(records)


@pytest.mark.parametrize(("folder", "volumes"), [
    ("dcm_qa_nih/In/20180918GE/mr_0004", 10),
    ("dcm_qa_table/In/GE/Exam1486_Laser794mm/02_Ax_fMRI_FF_I11.1_S15.9", 5),
    ("dcm_qa_enh/In/Siemens/XA10", 4),
    ("dcm_qa_nih/In/20180918Si/mr_0003", 2),
])
def test_fmri_volumes_form_one_time_series(testdata, folder, volumes):
    stacks = series_stacks(testdata / folder)
    groups = group_volumes(stacks)
    assert groups == [list(range(volumes))]
    assert volume_axis([stacks[i] for i in groups[0]]) == "time"


def test_localizer_orientations_stay_separate_images(testdata):
    stacks = series_stacks(testdata / "dcm_qa_table/In/GE/Exam1486_Laser794mm/01_3_Plane_Localizer_FF")
    assert group_volumes(stacks) == [[0], [1], [2]]


def test_magnitude_and_field_map_stay_separate_images(testdata):
    stacks = series_stacks(testdata / "dcm_qa_enh/In/Philips")
    assert group_volumes(stacks) == [[0], [1]]
