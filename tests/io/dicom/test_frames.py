"""Frame normalisation: enhanced multi-frame, mosaics, NM and RT Dose become one header per slice."""

from __future__ import annotations

import numpy as np
from pydicom import examples

import medipy.io.dicom
from medipy.io.dicom.frames import frame_headers, frame_layout


def test_mosaic_split_leaves_the_source_untouched(testdata):
    ds = medipy.io.dicom.read(testdata / "dcm_qa_nih/In/20180918Si/mr_0003/epi_pe_ap-00001.dcm")
    ds.ImagePositionPatient  # noqa: B018 - convert the raw element, as user code would
    before = (int(ds.Rows), int(ds.Columns), [float(v) for v in ds.ImagePositionPatient])
    headers = frame_headers(ds)
    assert len(headers) == 5
    assert (int(ds.Rows), int(ds.Columns), [float(v) for v in ds.ImagePositionPatient]) == before
    assert {(int(h.Rows), int(h.Columns)) for h in headers} == {(72, 72)}
    positions = np.array([[float(v) for v in h.ImagePositionPatient] for h in headers])
    assert len({tuple(p) for p in positions}) == 5  # every tile its own position
    np.testing.assert_allclose(np.diff(positions[:, 2]), float(ds.SpacingBetweenSlices), atol=1e-4)


def test_mosaic_frame_pixel_array_is_one_tile(testdata):
    ds = medipy.io.dicom.read(testdata / "dcm_qa_ts/In/1.dcm")
    mosaic = ds.pixel_array
    stack = medipy.io.dicom.stacks([ds])[0]
    assert len(stack) == 35
    tile = stack[0]
    assert tile.source is ds
    assert tile.pixel_array.shape == (64, 64)
    r, c = divmod(tile.frame, 6)
    np.testing.assert_array_equal(tile.pixel_array, mosaic[r * 64:(r + 1) * 64, c * 64:(c + 1) * 64])


def test_enhanced_frames_merge_functional_groups(testdata):
    ds = medipy.io.dicom.read(testdata / "dcm_qa_enh/In/Philips/IM_0027_fMAP.dcm")
    headers = frame_headers(ds)
    assert len(headers) == 64
    per_frame = ds.PerFrameFunctionalGroupsSequence
    for index in (0, 33, 63):
        frame = headers[index]
        expected = per_frame[index]
        assert list(frame.ImagePositionPatient) == list(expected.PlanePositionSequence[0].ImagePositionPatient)
        assert float(frame.RescaleSlope) == float(expected.PixelValueTransformationSequence[0].RescaleSlope)
        assert list(frame.FrameType) == list(expected.MRImageFrameTypeSequence[0].FrameType)
        assert frame.frame == index
        assert int(frame.NumberOfFrames) == 1
        np.testing.assert_array_equal(frame.pixel_array, ds.pixel_array[index])
    assert "PerFrameFunctionalGroupsSequence" not in headers[0]
    assert int(ds.NumberOfFrames) == 64


def test_enhanced_ct_frames(testdata):
    ds = medipy.io.dicom.read(testdata / "pydicom_data/eCT_Supplemental.dcm")
    assert frame_layout(ds).kind == "enhanced"
    stacks = medipy.io.dicom.stacks([ds])
    assert sum(len(s) for s in stacks) == 2
    image = medipy.io.dicom.image(stacks[0])
    assert image.shape[1:] == (int(ds.Rows), int(ds.Columns))


def test_rt_dose_frames_get_grid_offsets():
    ds = examples.rt_dose
    layout = frame_layout(ds)
    assert layout.kind == "rtdose"
    headers = frame_headers(ds)
    offsets = [float(v) for v in ds.GridFrameOffsetVector]
    z = [float(h.ImagePositionPatient[2]) for h in headers]
    np.testing.assert_allclose(np.array(z) - z[0], np.array(offsets) - offsets[0], atol=1e-5)
    image = medipy.io.dicom.image([ds])
    assert image.shape == (int(ds.NumberOfFrames), int(ds.Rows), int(ds.Columns))
    assert image.dtype == np.float32  # Dose Grid Scaling applied like a rescale slope: dose in Gy
    expected = ds.pixel_array.astype(np.float64) * float(ds.DoseGridScaling)
    order = np.argsort(z)
    np.testing.assert_allclose(image.data, expected[order].astype(np.float32), rtol=1e-6)


def _nm_tomo(frames: int, spacing: float) -> medipy.io.dicom.DataSet:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, NuclearMedicineImageStorage, generate_uid

    ds = medipy.io.dicom.DataSet()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = NuclearMedicineImageStorage, generate_uid()
    ds.SeriesInstanceUID, ds.StudyInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.ImageType = "NM", ["ORIGINAL", "PRIMARY", "RECON TOMO", "EMISSION"]
    ds.Rows = ds.Columns = 4
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.NumberOfFrames, ds.PixelSpacing, ds.SpacingBetweenSlices = frames, [4.0, 4.0], spacing
    ds.SliceVector = list(range(1, frames + 1))
    detector = Dataset()
    detector.ImagePositionPatient = [-10.0, -20.0, 30.0]
    detector.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.DetectorInformationSequence = [detector]
    ds.PixelData = np.arange(frames * 16, dtype=np.uint16).tobytes()
    return ds


def test_nm_reconstructed_tomogram_gets_per_frame_positions():
    ds = _nm_tomo(frames=3, spacing=4.5)
    assert frame_layout(ds).kind == "nm"
    image = medipy.io.dicom.image([ds])
    assert image.shape == (3, 4, 4)
    np.testing.assert_allclose(image.origin, [30.0, -20.0, -10.0])  # (z, y, x)
    np.testing.assert_allclose(image.spacing, [4.5, 4.0, 4.0])
    np.testing.assert_array_equal(image.data, np.arange(48, dtype=np.uint16).reshape(3, 4, 4))
    assert image.metadata["geometry_warnings"] == []
