"""The dtype of real-world values: kept narrow (the stored dtype) when the values fit, wide when they do not.

A CT stored as 16-bit signed with Rescale Intercept -1024 (as GE exports it) could hold values down to
-33792 after rescale, which int16 cannot; its real values almost always fit. ``image()`` keeps int16 when they
do and takes int32 when they do not; the engine plans int16, checks the values as it reads them and writes a
stack again in int32 when they do not fit, by whichever path wrote it (a batch of small stacks, or the shards
of a larger stack). The series are generated: 6 slices of 8x8 each.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

import medipy.engine.conversion as conversion
import medipy.io.dicom
from medipy.engine import ClusterOptions, ConvertOptions, convert, plan_export, stack_array
from medipy.engine.cluster import open_runner
from medipy.engine.scan import list_files
from medipy.engine.zarr_sink import SinkOptions
from medipy.errors import ValueRangeError
from medipy.io.dicom.assembly import slice_records
from medipy.io.dicom.pixels import OutputDtypes, output_dtypes
from medipy.io.dicom.series4d import series_images

DEPTH = 6


def _slice(series: str, z: int, raw: np.ndarray, *, signed: bool = True, bits: int = 16, intercept: float = -1024,
           slope: float = 1.0, time: int | None = None) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.10", series
    ds.PatientID, ds.Modality, ds.SeriesNumber = "RANGE", "CT", 1
    ds.InstanceNumber = z + 1 + DEPTH * (time or 0)
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = [0.0, 0.0, float(z)]
    ds.PixelSpacing = [0.5, 0.5]
    ds.Rows, ds.Columns = raw.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits, bits - 1
    ds.PixelRepresentation = int(signed)
    ds.RescaleIntercept, ds.RescaleSlope = intercept, slope
    if time is not None:
        ds.TemporalPositionIdentifier = time
    ds.PixelData = raw.astype("<i2" if signed else "<u2").tobytes()
    return ds


def _raw(seed: int, low: int, high: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(low, high, (DEPTH, 8, 8), endpoint=True)


def _series(name: str, raw: np.ndarray, **kwargs) -> list[Dataset]:
    uid = f"1.2.826.0.1.3680043.8.498.11.{name}"
    return [_slice(uid, z, raw[z], **kwargs) for z in range(DEPTH)]


def _records(datasets: list[Dataset]):
    return slice_records(datasets)[1]


@pytest.mark.parametrize(("signed", "bits", "intercept", "slope", "expected"), [
    (True, 16, -1024, 1, ("int16", "int32")),  # GE CT: int32 only if the values need it
    (False, 12, -1024, 1, ("int16", "int16")),  # 12 bits after rescale fit int16: no value looked at
    (False, 16, -1024, 1, ("int16", "int32")),  # unsigned stored, negative values: signed narrow dtype
    (False, 16, 0, 1, ("uint16", "uint16")),  # MR: the stored dtype
    (False, 8, 10, 1, ("uint16", "uint16")),  # 8 bits in 16 allocated, stored as uint16
    (True, 16, -1024, 2, ("float32", "float32")),  # a slope: float, whatever the values
    (True, 16, -0.5, 1, ("float32", "float32")),  # a fractional intercept: float
])
def test_output_dtypes_from_the_headers(signed: bool, bits: int, intercept: float, slope: float,
                                        expected: tuple[str, str]) -> None:
    datasets = _series("1", _raw(1, 0, 100), signed=signed, bits=bits, intercept=intercept, slope=slope)
    dtypes = output_dtypes(_records(datasets))
    assert dtypes == OutputDtypes(np.dtype(expected[0]), np.dtype(expected[1]))
    assert dtypes.checked is (expected[0] != expected[1])


@pytest.mark.parametrize(("stored", "intercept", "values", "expected"), [
    ("<i2", -1024, [-31744, 32767], True),  # int16 shifted down: the bottom edge fits, the top cannot overflow
    ("<i2", -1024, [-31745, 0], False),
    ("<i2", 1024, [-32768, 31743], True),  # shifted up: the top edge fits
    ("<i2", 1024, [31744], False),
    ("<u2", -1024, [0, 33791], True),  # uint16 into int16: the top edge fits, 0 - 1024 always does
    ("<u2", -1024, [33792], False),
    ("<u2", 40000, [0], False),  # uint16 shifted up past int16: no value fits
])
def test_fits_tells_whether_values_plus_intercept_fit(stored: str, intercept: int, values: list[int],
                                                      expected: bool) -> None:
    """Edges exactly, then random values near them against the plain computation in int64 (a bound the stored
    dtype cannot cross is not looked at)."""
    from dataclasses import replace

    from medipy.io.dicom.pixels import fits

    record = replace(_records(_series("fits", _raw(0, 0, 10)))[0], rescale_intercept=float(intercept))
    int16 = np.dtype(np.int16)
    assert fits(np.array(values, stored), record, int16) is expected
    held = np.iinfo(stored)
    rng = np.random.default_rng(7)
    for centre in (held.min, held.max, -32768 - intercept, 32767 - intercept, 0):
        for _ in range(20):
            near = np.clip(centre + rng.integers(-3, 4, 5), held.min, held.max).astype(stored)
            shifted = near.astype(np.int64) + intercept
            assert fits(near, record, int16) is bool(shifted.min() >= -32768 and shifted.max() <= 32767)


def test_image_keeps_int16_when_the_values_fit_and_takes_int32_when_not() -> None:
    raw = _raw(2, -2000, 3000)
    fits = medipy.io.dicom.image(_series("2", raw))
    assert fits.data.dtype == np.int16
    np.testing.assert_array_equal(fits.data, raw - 1024)
    raw[DEPTH - 1, 3, 4] = -32768  # a padding value: -33792 after rescale
    wide = medipy.io.dicom.image(_series("3", raw))
    assert wide.data.dtype == np.int32
    assert wide.data[DEPTH - 1, 3, 4] == -33792  # not wrapped to 31744
    np.testing.assert_array_equal(wide.data, raw - 1024)
    unsigned = _raw(3, 0, 4095)
    image = medipy.io.dicom.image(_series("4", unsigned, signed=False))
    assert image.data.dtype == np.int16
    np.testing.assert_array_equal(image.data, unsigned - 1024)


def _export(folder: Path) -> dict[str, list[Dataset]]:
    """Series that fit int16, one whose last slice does not (native, and RLE compressed), a 4D series whose
    second volume does not."""
    fits, wraps, first, second = _raw(4, -2000, 3000), _raw(5, -2000, 3000), _raw(6, 0, 1000), _raw(7, 0, 1000)
    wraps[DEPTH - 1, 7, 7] = -32768
    second[2, 0, 0] = -32000
    compressed = _series("9", wraps)
    for ds in compressed:
        ds.compress(RLELossless)
    series = {
        "fits": _series("5", fits),
        "wraps": _series("6", wraps),
        "unsigned": _series("7", _raw(8, 0, 4095), signed=False),
        "rle": compressed,
        "4d": _series("8", first, time=1) + [
            _slice("1.2.826.0.1.3680043.8.498.11.8", z, second[z], time=2) for z in range(DEPTH)],
    }
    folder.mkdir()
    for name, datasets in series.items():
        for n, ds in enumerate(datasets):
            ds.save_as(folder / f"{name}-{n}.dcm", enforce_file_format=True)
    return series


@pytest.mark.parametrize("path", ["batches", "shards"])
def test_engine_writes_the_dtype_and_values_of_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     path: str) -> None:
    series = _export(tmp_path / "export")
    expected = {}
    for name, datasets in series.items():
        (one,) = series_images([medipy.io.dicom.read(p) for p in sorted(
            str(f) for f in (tmp_path / "export").glob(f"{name}-*.dcm"))])
        expected[datasets[0].SeriesInstanceUID] = one
    assert {str(i.data.dtype) for i in expected.values()} == {"int16", "int32"}
    sink = SinkOptions()
    cluster = ClusterOptions("synchronous")
    if path == "shards":  # every stack by the client's shard path, in worker processes, 2 shards per volume
        # (4 int16 or 2 int32 slices per shard)
        monkeypatch.setattr(conversion, "BATCH_BYTES", 0)
        sink = SinkOptions(shard_bytes=2 * 8 * 8 * 4, chunk_bytes=8 * 8 * 2)
        cluster = ClusterOptions("processes", workers=2)
    report = convert(tmp_path / "export", tmp_path / "out.zarr", cluster=cluster,
                     options=ConvertOptions(sink=sink))
    assert not report.failures
    store = zarr.open_group(str(tmp_path / "out.zarr"), mode="r")
    assert len(report.stacks) == len(expected)
    for entry in report.stacks:
        group = store[entry["path"]]
        attributes = group.attrs["medipy"]
        reference = expected[attributes["series_instance_uid"]]
        stored = group["0"][...]
        assert stored.dtype == reference.data.dtype
        assert attributes["dtype"] == str(reference.data.dtype)
        np.testing.assert_array_equal(stored, reference.data)
        assert attributes["complete"] is True
        if path == "shards":  # the array was made again with the wide dtype's chunks: no stray shard
            assert group["0"].shards[-3] == max(1, sink.shard_bytes // (64 * reference.data.dtype.itemsize))
    wraps = expected[series["wraps"][0].SeriesInstanceUID]
    assert wraps.data.dtype == np.int32
    assert wraps.data.min() == -33792


def test_stack_array_checks_the_values_of_a_narrow_plan(tmp_path: Path) -> None:
    series = _export(tmp_path / "export")
    with open_runner(ClusterOptions("synchronous")) as runner:
        plans, _ = plan_export(list_files(tmp_path / "export"), runner)
        stacks = {s.series_instance_uid: s for p in plans for s in p.stacks}
        fits = stacks[series["fits"][0].SeriesInstanceUID]
        assert fits.dtype == "int16"
        assert fits.checked(0)
        (values,) = runner.compute(stack_array(fits))
        np.testing.assert_array_equal(values, medipy.io.dicom.image(series["fits"]).data)
        assert values.dtype == np.int16
        wraps = stacks[series["wraps"][0].SeriesInstanceUID]
        with pytest.raises(ValueRangeError, match="widened"):
            runner.compute(stack_array(wraps))
        (values,) = runner.compute(stack_array(wraps.widened()))
    reference = medipy.io.dicom.image(series["wraps"]).data
    assert values.dtype == reference.dtype == np.int32
    np.testing.assert_array_equal(values, reference)
