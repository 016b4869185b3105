"""Benchmark: writing a DICOMDIR for N instances, medipy's linear writer against pydicom's FileSet, in one run.

    python benchmarks/bench_dicomdir.py [--sizes 250 500 1000] [--medipy-sizes 1000 10000 100000]

The instances are headers of pydicom's CT example with new UIDs, 200 per series, 5 series per study, one
patient per 10 series. pydicom's FileSet (``add`` of every header, then ``write``) is timed at the smaller
sizes only: its time grows with the square of N. Prints the time per instance of each and their ratio.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _headers(count: int) -> list[tuple[list[str], object]]:
    from pydicom import examples
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import generate_uid

    base = copy.deepcopy(examples.ct)
    del base.PixelData
    out = []
    study = series = patient = ""
    for index in range(count):
        ds = Dataset(dict(base.items()))  # the elements of base, but those below replaced by new ones
        ds.file_meta = FileMetaDataset(dict(base.file_meta.items()))
        for keyword in ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "InstanceNumber"):
            del ds[keyword]
        del ds.file_meta.MediaStorageSOPInstanceUID
        if index % 2000 == 0:
            patient = f"P{index // 2000}"
        if index % 1000 == 0:
            study = generate_uid()
        if index % 200 == 0:
            series = generate_uid()
        ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID = patient, study, series
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.InstanceNumber = index % 200 + 1
        out.append(([f"P{index // 2000}", f"S{index // 1000}", f"E{index // 200}", f"I{index}"], ds))
    return out


def time_fileset(headers: list, folder: str) -> float:
    from pydicom.fileset import FileSet

    start = time.perf_counter()
    fileset = FileSet()
    for _, ds in headers:
        fileset.add(ds)
    fileset.write(folder)
    elapsed = time.perf_counter() - start
    fileset._stage["t"].cleanup()  # pydicom's staging folder
    return elapsed


def time_medipy(headers: list, folder: str) -> float:
    from medipy.io.dicom.dicomdir_writing import write_dicomdir

    start = time.perf_counter()
    left_out = write_dicomdir(Path(folder) / "DICOMDIR", headers)
    elapsed = time.perf_counter() - start
    assert not left_out, left_out[:3]
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[250, 500, 1000], help="both writers")
    parser.add_argument("--medipy-sizes", type=int, nargs="*", default=[10000, 100000], help="medipy only")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print(f"{'instances':>10}{'FileSet s':>12}{'ms/inst':>9}{'medipy s':>11}{'ms/inst':>9}{'ratio':>8}")
    for count in sorted(set(args.sizes) | set(args.medipy_sizes)):
        headers = _headers(count)
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            ours = time_medipy(headers, a)
            theirs = time_fileset(headers, b) if count in args.sizes else None
        line = f"{count:>10}"
        line += f"{theirs:>12.2f}{theirs / count * 1e3:>9.2f}" if theirs is not None else f"{'-':>12}{'-':>9}"
        line += f"{ours:>11.2f}{ours / count * 1e3:>9.3f}"
        line += f"{theirs / ours:>8.1f}" if theirs is not None else f"{'-':>8}"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
