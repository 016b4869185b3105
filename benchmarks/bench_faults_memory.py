"""Memory bounds of the engine (issue 5): a 100,000-file scan and a stack larger than worker memory.

    python benchmarks/bench_faults_memory.py [--files 100000] [--slices 2048] [--size 1024] [--keep DIR]

(a) ``medipy scan`` (the scan pipeline: walk, header scan in 2 worker processes, shuffle into series plans) of
    a synthetic export of ``--files`` tiny DICOM files (8x8 pixels, 100 slices per series, nested folders).
    Reports the client's peak RSS (psutil, sampled every 20 ms in a thread) against 1 GiB.
(b) ``medipy convert`` of one stack of ``--slices`` slices of ``--size`` x ``--size`` int16 (2048 x 1024 x 1024
    = 4 GiB of pixels) on a dask LocalCluster of 2 workers limited to 1 GiB each. Reports whether it completed,
    the array equal to the slices (checked on a sample), and the peak RSS of each worker process.

Files are made fast: one template written by pydicom, then copied with its UIDs, position and a pixel row
patched in place (fixed-width placeholders), so every file is a valid, distinct slice.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GiB = 1024 ** 3
SERIES_MARK = "1.2.826.0.1.3680043.9.7.5.9999999999"  # fixed width: 10 digits patched
SOP_MARK = "1.2.826.0.1.3680043.9.7.6.9999999999"
Z_MARK = "99999999"  # Image Position (Patient) z, 8 characters (a DS value)


def template(size: int) -> tuple[bytes, int]:
    """A CT slice with placeholder UIDs and z; returns its bytes and the offset of its Pixel Data value."""
    import io

    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = SOP_MARK
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, SOP_MARK
    ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID = "BENCH", "1.2.826.0.1.3680043.9.7.7", SERIES_MARK
    ds.Modality, ds.SeriesNumber = "CT", 1
    ds.ImagePositionPatient = ["0", "0", Z_MARK]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing, ds.SliceThickness = [1, 1], 1
    ds.Rows = ds.Columns = size
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    y, x = np.mgrid[:size, :size]
    ds.PixelData = ((x + 3 * y) % 2000).astype("<i2").tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    data = buffer.getvalue()
    return data, len(data) - size * size * 2


def patched(data: bytes, pixels_at: int, series: int, slice_: int, z: float, row: bytes | None = None) -> bytes:
    # a UID component has no leading zero (PS3.5 9.1): the 10 digits start with 1
    out = data.replace(SERIES_MARK.encode(), SERIES_MARK[:-10].encode() + b"1%09d" % series)
    out = out.replace(SOP_MARK.encode(), SOP_MARK[:-10].encode() + b"1%09d" % (series * 100000 + slice_))
    out = out.replace(Z_MARK.encode(), f"{z:<8.1f}".encode()[:8])
    if row is not None:
        out = out[:pixels_at] + row + out[pixels_at + len(row):]
    return out


class PeakRSS:
    """Peak resident memory of some processes, sampled in a thread."""

    def __init__(self, processes, interval: float = 0.02) -> None:
        self.processes = processes  # a callable returning psutil.Process objects
        self.interval = interval
        self.peak: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            for process in self.processes():
                try:
                    rss = process.memory_info().rss
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                self.peak[process.pid] = max(self.peak.get(process.pid, 0), rss)
            time.sleep(self.interval)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def make_small_export(folder: Path, files: int) -> None:
    data, pixels_at = template(8)
    for n in range(files):
        series, index = divmod(n, 100)
        path = folder / f"p{series // 100:03d}" / f"s{series:05d}" / f"{index:03d}.dcm"
        if index == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(patched(data, pixels_at, series, index, float(index)))


def bench_scan(folder: Path, files: int) -> dict:
    import psutil

    from medipy.engine.cluster import ClusterOptions
    from medipy.pipelines.runfile import RunConfig, RunOptions
    from medipy.pipelines.scan import run

    start = time.perf_counter()
    make_small_export(folder, files)
    made = time.perf_counter() - start
    me = psutil.Process()
    config = RunConfig("scan", str(folder), cluster=ClusterOptions("processes", workers=2),
                       options=RunOptions(progress=False))
    baseline = me.memory_info().rss
    with PeakRSS(lambda: [me]) as peak:
        start = time.perf_counter()
        inventory = run(config)
        seconds = time.perf_counter() - start
    return {"files": inventory["files"], "series": inventory["series"], "stacks": inventory["stacks"],
            "failures": len(inventory["failures"]), "generate_s": made, "scan_s": seconds,
            "client_rss_before_mib": baseline / 2 ** 20, "client_peak_rss_mib": peak.peak[me.pid] / 2 ** 20}


def bench_large_stack(folder: Path, out: Path, slices: int, size: int) -> dict:
    import psutil
    import zarr

    data, pixels_at = template(size)
    export = folder / "large"
    export.mkdir(parents=True)
    start = time.perf_counter()
    for index in range(slices):  # every slice distinct: its first row holds its index
        row = np.full(size, index, dtype="<i2").tobytes()
        (export / f"{index:05d}.dcm").write_bytes(patched(data, pixels_at, 1, index, float(index), row))
    made = time.perf_counter() - start
    me = psutil.Process()
    with PeakRSS(lambda: me.children(recursive=True), interval=0.05) as peak:
        start = time.perf_counter()
        code = _convert_with_limit(export, out)
        seconds = time.perf_counter() - start
    import json

    path = json.loads((out / "report.json").read_text())["stacks"][0]["path"]
    group = zarr.open_group(store=str(out), mode="r")[path]
    array = group["0"]
    sample = sorted({0, slices // 3, slices - 1})
    firsts = [int(array[z, 0, 0]) for z in sample]
    return {"exit_code": code, "slices": slices, "pixel_gib": slices * size * size * 2 / GiB,
            "generate_s": made, "convert_s": seconds, "shape": list(array.shape),
            "complete": group.attrs["medipy"]["complete"], "first_rows_ok": firsts == sample,
            "chunks": list(array.chunks), "shards": list(array.shards or ()),
            "worker_peak_rss_mib": sorted(round(v / 2 ** 20) for v in peak.peak.values())}


def _convert_with_limit(export: Path, out: Path) -> int:
    from medipy.engine.cluster import ClusterOptions
    from medipy.pipelines.convert import run
    from medipy.pipelines.runfile import RunConfig, RunOptions

    config = RunConfig("convert", str(export), str(out),
                       cluster=ClusterOptions("distributed", workers=2, memory_limit="1GiB"),
                       options=RunOptions(progress=False, thumbnails=False))
    return 0 if run(config).ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--slices", type=int, default=2048)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--only", choices=("scan", "stack"), default=None)
    parser.add_argument("--keep", default=None, help="work in this folder and keep it (default: a temporary one)")
    args = parser.parse_args()
    import logging
    import warnings

    logging.basicConfig(level=logging.WARNING)
    warnings.simplefilter("ignore")
    work = Path(args.keep or tempfile.mkdtemp(prefix="medipy-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(work).free
    need = args.slices * args.size * args.size * 2 * 1.3
    print(f"work folder {work}: {free / GiB:.1f} GiB free")
    try:
        if args.only in (None, "scan"):
            scan = bench_scan(work / "small", args.files)
            print(f"(a) scan of {scan['files']} files ({scan['series']} series, {scan['failures']} failures): "
                  f"generated in {scan['generate_s']:.0f} s, scanned in {scan['scan_s']:.0f} s; client RSS "
                  f"{scan['client_rss_before_mib']:.0f} MiB before, peak {scan['client_peak_rss_mib']:.0f} MiB "
                  f"(limit 1024 MiB: {'OK' if scan['client_peak_rss_mib'] < 1024 else 'EXCEEDED'})")
            shutil.rmtree(work / "small", ignore_errors=True)
        if args.only in (None, "stack"):
            if free < need:
                print(f"(b) skipped: {need / GiB:.1f} GiB needed; pass a smaller --slices")
            else:
                stack = bench_large_stack(work, work / "large.zarr", args.slices, args.size)
                print(f"(b) one stack of {stack['slices']} slices ({stack['pixel_gib']:.1f} GiB int16), workers "
                      f"limited to 1 GiB: exit code {stack['exit_code']}, complete {stack['complete']}, shape "
                      f"{stack['shape']}, slices in place {stack['first_rows_ok']}, generated in "
                      f"{stack['generate_s']:.0f} s, converted in {stack['convert_s']:.0f} s; peak RSS of the "
                      f"cluster's processes (MiB): {stack['worker_peak_rss_mib']}; shards {stack['shards']}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())
