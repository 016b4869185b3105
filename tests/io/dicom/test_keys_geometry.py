"""Grouping keys, slice order and geometry on synthetic slice records (the engine's view)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medipy.io.dicom.geometry import stack_geometry
from medipy.io.dicom.keys import series_order, split_stacks, stack_key
from medipy.io.dicom.record import SliceRecord

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)


def axial(z: float, instance: int, **kw) -> SliceRecord:
    base = dict(series_instance_uid="1.2.3", rows=4, columns=5, pixel_spacing=(0.5, 0.6), orientation=AXIAL,
                position=(-10.0, -20.0, z), instance_number=instance, sop_instance_uid=f"1.2.3.{instance}",
                bits_allocated=16, bits_stored=12)
    base.update(kw)
    return SliceRecord(**base)


def test_geometry_of_an_even_axial_stack():
    records = [axial(2.5 * k, k + 1) for k in range(4)]
    geometry = stack_geometry(records)
    np.testing.assert_allclose(geometry.origin, [0.0, -20.0, -10.0])  # (z, y, x)
    np.testing.assert_allclose(geometry.spacing, [2.5, 0.5, 0.6])
    np.testing.assert_allclose(geometry.direction, np.eye(3), atol=1e-12)
    assert geometry.warnings == ()
    assert geometry.gantry_tilt == 0
    affine = geometry.lps_affine()
    np.testing.assert_allclose(affine @ [3, 1, 2, 1], [-10 + 2 * 0.6, -20 + 0.5, 7.5, 1])


def test_geometry_of_a_coronal_stack_maps_indices_to_patient_space():
    records = [SliceRecord(orientation=CORONAL, position=(0.0, float(y), 0.0), pixel_spacing=(2.0, 3.0),
                           rows=2, columns=2, instance_number=i) for i, y in enumerate([0, 4, 8])]
    geometry = stack_geometry(records)
    # row direction (1,0,0), column direction (0,0,-1), normal = row x column = (0, 1, 0)
    affine = geometry.lps_affine()
    np.testing.assert_allclose(affine @ [2, 1, 1, 1], [3.0, 8.0, -2.0, 1.0])


def test_uneven_spacing_and_missing_slice_are_reported():
    records = [axial(z, k) for k, z in enumerate([0.0, 2.0, 4.0, 8.0, 10.0])]
    geometry = stack_geometry(records)
    assert geometry.uneven
    assert any("1 missing slice" in w for w in geometry.warnings)
    assert geometry.gaps == (2.0, 2.0, 4.0, 2.0)


def test_gantry_tilt_gives_a_sheared_exact_geometry():
    tilt = math.radians(14.0)
    records = [axial(5.0 * k, k, position=(0.0, -5.0 * k * math.tan(tilt), 5.0 * k)) for k in range(4)]
    geometry = stack_geometry(records)
    assert geometry.gantry_tilt == pytest.approx(14.0, abs=1e-6)
    assert any("gantry tilt" in w for w in geometry.warnings)
    affine = geometry.lps_affine()
    for k, record in enumerate(records):  # every slice origin lands exactly where it was acquired
        np.testing.assert_allclose((affine @ [k, 0, 0, 1])[:3], record.position, atol=1e-9)
    assert geometry.slice_spacing == pytest.approx(5.0)


def test_stacks_split_on_orientation_size_echo_and_type():
    records = [
        axial(0.0, 1), axial(1.0, 2),
        axial(0.0, 3, orientation=CORONAL), axial(2.0, 4, orientation=(1.0, 0.0, 0.0, 0.0, 0.9999999, 0.0005)),
        axial(0.0, 5, rows=8), axial(0.0, 6, echo_number=2), axial(0.0, 7, frame_type="DERIVED\\SECONDARY"),
        axial(0.0, 8, b_value=1000.0, gradient=(0.0, 1.0, 0.0)), axial(0.0, 9, b_value=1000.0, gradient=(1.0, 0, 0)),
    ]
    stacks = split_stacks(records)
    assert sorted(map(sorted, stacks)) == [[0, 1, 3], [2], [4], [5], [6], [7], [8]]


def test_repeated_positions_split_into_volumes_in_acquisition_order():
    # 3 positions x 4 time points, instance numbers time-major, given in scrambled order
    records = [axial(2.0 * p, 1 + t * 3 + p) for p in (2, 0, 1) for t in (3, 1, 0, 2)]
    stacks = split_stacks(records)
    assert len(stacks) == 4
    for t, stack in enumerate(stacks):
        assert [records[i].instance_number for i in stack] == [1 + t * 3, 2 + t * 3, 3 + t * 3]


def test_frames_of_one_cine_object_stay_one_stack():
    records = [axial(0.0, 1, frame=f, path="cine.dcm", number_of_frames=3) for f in (2, 0, 1)]
    stacks = split_stacks(records)
    assert [[records[i].frame for i in s] for s in stacks] == [[0, 1, 2]]


def test_slices_without_position_fall_back_to_instance_number():
    records = [axial(0.0, k, position=None) for k in (3, 1, 2)]
    assert [[records[i].instance_number for i in s] for s in split_stacks(records)] == [[1, 2, 3]]
    geometry = stack_geometry([records[1], records[2], records[0]])
    assert any("Instance Number" in w for w in geometry.warnings)


def test_series_order_is_study_then_number_then_uid():
    records = [SliceRecord(study_instance_uid="2", series_number=1, series_instance_uid="a"),
               SliceRecord(study_instance_uid="1", series_number=10, series_instance_uid="b"),
               SliceRecord(study_instance_uid="1", series_number=2, series_instance_uid="c"),
               SliceRecord(study_instance_uid="1", series_number=None, series_instance_uid="d")]
    assert [r.series_instance_uid for r in sorted(records, key=series_order)] == ["c", "b", "d", "a"]


def test_stack_key_is_a_plain_string():
    assert isinstance(stack_key(axial(0.0, 1)), str)


@settings(max_examples=40, deadline=None)
@given(st.permutations(list(range(12))))
def test_stacks_do_not_depend_on_input_order(permutation):
    records = [axial(2.0 * (k % 3), k + 1, echo_number=1 + k // 6) for k in range(12)]
    shuffled = [records[i] for i in permutation]
    expected = [[records[i].sop_instance_uid for i in s] for s in split_stacks(records)]
    got = [[shuffled[i].sop_instance_uid for i in s] for s in split_stacks(shuffled)]
    assert got == expected
