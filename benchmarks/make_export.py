"""Synthetic DICOM export for benchmarks: CT and MR series with proper geometry, nested folders, junk files.

    python benchmarks/make_export.py OUT [--ct 4 --ct-slices 300 --mr 6 --mr-slices 120 --size full|small]

Layout: ``OUT/<patient>/<study>/<series>/IM<n>.dcm`` plus junk (README.txt, .json sidecars, a .nii) that a
converter must report and skip. CT: 512x512 int16 stored (Rescale Intercept -1024), implicit VR; MR:
256x256 uint16, explicit VR little endian. ``--size small`` makes 64x64 images (for file-count scaling runs).
Pixel values are a smooth phantom plus noise, so compression ratios are realistic.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

CT_CLASS = "1.2.840.10008.5.1.4.1.1.2"
MR_CLASS = "1.2.840.10008.5.1.4.1.1.4"


def _phantom(size: int, z: int, depth: int, rng: np.random.Generator, ct: bool) -> np.ndarray:
    y, x = np.mgrid[:size, :size] / size - 0.5
    r = np.sqrt(x * x + y * y + ((z / max(depth, 1)) - 0.5) ** 2)
    base = np.where(r < 0.4, 1040.0, 0.0) + np.where(r < 0.15, 300.0, 0.0) if ct else np.where(r < 0.4, 800.0, 0.0)
    noise = rng.normal(0, 12 if ct else 20, (size, size))
    return np.clip(base + noise + (0 if ct else 50), 0, 4095)


def _series(folder: Path, *, ct: bool, slices: int, size: int, patient: str, study: str, number: int,
            rng: np.random.Generator) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = generate_uid()
    spacing = 0.7 if ct else 1.0
    thickness = 1.25 if ct else 3.0
    written = 0
    for k in range(slices):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CT_CLASS if ct else MR_CLASS
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ImplicitVRLittleEndian if ct else ExplicitVRLittleEndian
        path = folder / f"IM{k + 1:05d}.dcm"
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
        ds.PatientName, ds.PatientID = f"Synthetic^{patient}", patient
        ds.PatientBirthDate, ds.PatientSex = "19700101", "O"
        ds.StudyInstanceUID, ds.StudyID, ds.StudyDate, ds.StudyTime = study, "1", "20240101", "120000"
        ds.SeriesInstanceUID, ds.SeriesNumber = series_uid, number
        ds.SeriesDescription = f"{'CT chest' if ct else 'MR T1'} {number}"
        ds.Modality, ds.Manufacturer, ds.InstitutionName = ("CT" if ct else "MR"), "medipy-bench", "Bench"
        ds.FrameOfReferenceUID = study + ".1"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.InstanceNumber, ds.AcquisitionNumber = k + 1, 1
        ds.ImagePositionPatient = [-size * spacing / 2, -size * spacing / 2, -100.0 + k * thickness]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.SliceLocation = -100.0 + k * thickness
        ds.PixelSpacing, ds.SliceThickness = [spacing, spacing], thickness
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, (16 if ct else 12), (15 if ct else 11)
        values = _phantom(size, k, slices, rng, ct)
        if ct:
            ds.PixelRepresentation, ds.RescaleIntercept, ds.RescaleSlope = 1, -1024, 1
            ds.KVP, ds.ConvolutionKernel = 120, "STANDARD"
            pixels = values.astype("<i2")
        else:
            ds.PixelRepresentation = 0
            ds.EchoTime, ds.RepetitionTime, ds.MagneticFieldStrength = 10.0, 500.0, 3.0
            pixels = values.astype("<u2")
        ds.PixelData = pixels.tobytes()
        ds.save_as(path, enforce_file_format=True)
        written += 1
    return written


def make_export(out: str | os.PathLike[str], *, ct: int = 4, ct_slices: int = 300, mr: int = 6,
                mr_slices: int = 120, size: str = "full", seed: int = 0) -> dict[str, int]:
    """Write the synthetic export; returns counts of DICOM and junk files."""
    rng = np.random.default_rng(seed)
    root = Path(out)
    dicom = junk = 0
    series = [(True, ct_slices)] * ct + [(False, mr_slices)] * mr
    for n, (is_ct, slices) in enumerate(series):
        patient = f"P{n % 3:03d}"
        study = f"1.2.826.0.1.3680043.10.543.{n % 3 + 1}"
        folder = root / patient / f"study{n % 3 + 1}" / f"series{n + 1:03d}"
        image_size = 64 if size == "small" else (512 if is_ct else 256)
        dicom += _series(folder, ct=is_ct, slices=slices, size=image_size, patient=patient, study=study,
                         number=n + 1, rng=rng)
        (folder / "sidecar.json").write_text(json.dumps({"series": n + 1}))
        junk += 1
    for patient in sorted({p.name for p in root.iterdir() if p.is_dir()}):
        (root / patient / "README.txt").write_text("exported by a synthetic PACS\n")
        (root / patient / "Thumbs.db").write_bytes(rng.bytes(2048))
        junk += 2
    (root / "volume.nii").write_bytes(rng.bytes(4096))
    junk += 1
    return {"dicom": dicom, "junk": junk}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--ct", type=int, default=4)
    parser.add_argument("--ct-slices", type=int, default=300)
    parser.add_argument("--mr", type=int, default=6)
    parser.add_argument("--mr-slices", type=int, default=120)
    parser.add_argument("--size", choices=("full", "small"), default="full")
    args = parser.parse_args()
    counts = make_export(args.out, ct=args.ct, ct_slices=args.ct_slices, mr=args.mr, mr_slices=args.mr_slices,
                         size=args.size)
    print(f"{counts['dicom']} DICOM files and {counts['junk']} junk files in {args.out}")


if __name__ == "__main__":
    main()
