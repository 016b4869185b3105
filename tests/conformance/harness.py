"""Conformance of medipy with dcm2niix (and dicom2nifti), through world coordinates.

For every case of ``references.py``: read the input, split it into series, assemble every image of each series
with :func:`medipy.io.dicom.series4d.series_images` (3D, or 4D with volumes first), and match each reference
NIfTI to the medipy image that agrees best. A pair agrees when the number of volumes and the shape (up to
axis order) are equal, the affines agree within 1e-3 mm at every corner of the grid once medipy's voxel grid
is mapped onto the reference's, and the voxels (after rescale) agree within 1e-4 of the reference's range,
volume by volume in order (a 4D pair whose volumes agree in another order reports ``volume order``).

Run ``PYTHONPATH=. python tests/conformance/harness.py`` to print the table.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import nibabel
import numpy as np

import medipy.io.dicom
from medipy.base import Image
from medipy.io.dicom.resample import resample_regular
from medipy.io.dicom.series4d import series_images
from medipy.io.nifti import nifti_affine

AFFINE_TOLERANCE_MM = 1e-3
VALUE_TOLERANCE = 1e-4  # relative to the reference's largest absolute value (at least 1)
NON_DICOM = {".txt", ".json", ".nii", ".gz", ".png", ".jpg", ".log", ".md", ".bval", ".bvec"}


def _load(name: str):
    """A sibling module of this file (tests cannot import each other by name under --import-mode=importlib)."""
    full = f"medipy_conformance_{name}"
    if full in sys.modules:
        return sys.modules[full]
    spec = importlib.util.spec_from_file_location(full, Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[full] = module
    spec.loader.exec_module(module)
    return module


references = _load("references")


@dataclass(frozen=True)
class Row:
    """One line of the table: a reference and the medipy image matched to it."""

    case: str
    reference: str
    converter: str
    verdict: str  # "agree", or what differs
    affine_mm: float = float("nan")
    voxel: float = float("nan")
    medipy: str = ""

    @property
    def worst(self) -> str:
        return f"affine {self.affine_mm:.2g} mm, voxels {self.voxel:.3g}"


def testdata_root() -> Path:
    env = os.environ.get("MEDIPY_TESTDATA")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "testdata"


def dicom_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() not in NON_DICOM)


@functools.lru_cache(maxsize=8)
def medipy_images(path: str) -> tuple[Image, ...]:
    """Every image medipy makes of the input: series by series, 3D and 4D (volumes first)."""
    datasets = [medipy.io.dicom.read(p) for p in dicom_files(Path(path))]
    out: list[Image] = []
    for serie in medipy.io.dicom.series(datasets):
        out.extend(series_images(serie))
    return tuple(out)


def _volumes_first(image: Image) -> np.ndarray:
    data = np.asarray(image.data, dtype=np.float64)
    return data if data.ndim == 4 else data[np.newaxis]


def compare(image: Image, reference: Path) -> tuple[str, float, float]:
    """(verdict, worst affine distance in mm, worst voxel difference) of one medipy image against one NIfTI."""
    nii = nibabel.load(str(reference))
    ref = np.asarray(nii.get_fdata(dtype=np.float64))
    ref = ref if ref.ndim == 4 else ref[..., np.newaxis]
    ours = _volumes_first(image)  # (t, z, y, x)
    if ours.shape[0] != ref.shape[3]:
        return f"volumes {ours.shape[0]} vs {ref.shape[3]}", float("nan"), float("nan")
    shape = ours.shape[:0:-1]  # (x, y, z): NIfTI voxel order of medipy's image
    if sorted(shape) != sorted(ref.shape[:3]):
        return f"shape {shape} vs {ref.shape[:3]}", float("nan"), float("nan")
    ours_affine = nifti_affine(image)
    mapping = np.linalg.solve(nii.affine, ours_affine)  # medipy voxel -> reference voxel
    permutation = np.round(mapping[:3, :3])
    offset = np.round(mapping[:3, 3])
    corners = np.array([[x, y, z, 1.0] for x in (0, shape[0] - 1) for y in (0, shape[1] - 1)
                        for z in (0, shape[2] - 1)]).T
    mapped = np.vstack([permutation @ corners[:3] + offset[:, None], np.ones(8)])
    affine_mm = float(np.abs((ours_affine @ corners)[:3] - (nii.affine @ mapped)[:3]).max())
    is_permutation = sorted(np.abs(permutation).sum(axis=0)) == [1, 1, 1] and np.abs(permutation).max() == 1
    if not is_permutation or not np.all((mapped[:3] >= 0) & (mapped[:3] < np.array(ref.shape[:3])[:, None])):
        return "grid does not map onto the reference", affine_mm, float("nan")
    index = np.indices(shape).reshape(3, -1)
    target = (permutation @ index + offset[:, None]).astype(int)
    ref_values = ref[target[0], target[1], target[2], :]  # (voxels, t)
    our_values = ours.reshape(ours.shape[0], -1).T[_flat_xyz(shape)]  # (voxels, t) in (x, y, z) order
    tolerance = VALUE_TOLERANCE * max(1.0, float(np.abs(ref).max()))
    per_volume = np.abs(ref_values - our_values).max(axis=0)
    voxel = float(per_volume.max())
    if affine_mm > AFFINE_TOLERANCE_MM:
        return "affine", affine_mm, voxel
    if voxel <= tolerance:
        return "agree", affine_mm, voxel
    if ours.shape[0] > 1 and _other_order(ref_values, our_values, tolerance):
        return "volume order", affine_mm, voxel
    return "voxel values", affine_mm, voxel


def _flat_xyz(shape: tuple[int, int, int]) -> np.ndarray:
    """Indices into a C-ordered (z, y, x) flattening, listed in C-ordered (x, y, z) order."""
    x, y, z = np.indices(shape).reshape(3, -1)
    return (z * shape[1] + y) * shape[0] + x


def _other_order(ref_values: np.ndarray, our_values: np.ndarray, tolerance: float) -> bool:
    """True when every medipy volume equals some reference volume (the volumes are all there, reordered)."""
    return all(
        any(np.abs(ref_values[:, r] - our_values[:, t]).max() <= tolerance for r in range(ref_values.shape[1]))
        for t in range(our_values.shape[1])
    )


def run_case(case, root: Path) -> list[Row]:
    """Rows of one case: every reference matched to its best medipy image, then medipy images left over."""
    images = list(medipy_images(str(root / case.input)))
    if case.resample:
        images = [resample_regular(image) for image in images]
    rows: list[Row] = []
    used: set[int] = set()
    for reference in case.references:
        results = [(compare(image, root / reference), index) for index, image in enumerate(images)]
        (verdict, affine_mm, voxel), index = min(
            results, key=lambda r: (r[0][0] != "agree", np.nan_to_num(r[0][1], nan=1e9), r[0][2]))
        used.add(index)
        rows.append(Row(case.id, Path(reference).name, case.converter, verdict, affine_mm, voxel,
                        f"#{index} {images[index].shape}"))
    for index, image in enumerate(images):
        if index not in used:
            rows.append(Row(case.id, "(none)", case.converter, "extra medipy image", medipy=f"#{index} {image.shape}"))
    return rows


def expected_reason(row: Row) -> str | None:
    return references.EXPECTED.get((row.case, row.reference))


def table(rows: list[Row]) -> str:
    lines = [f"{'series':<62} {'reference':<42} {'verdict':<22} worst difference",
             "-" * 150]
    for row in rows:
        verdict = row.verdict if row.verdict == "agree" else f"DIFFERS: {row.verdict}"
        if row.verdict != "agree" and expected_reason(row):
            verdict = f"expected: {row.verdict}"
        lines.append(f"{row.case:<62} {row.reference:<42} {verdict:<22} {row.worst}")
    agree = sum(r.verdict == "agree" for r in rows)
    expected = sum(r.verdict != "agree" and expected_reason(r) is not None for r in rows)
    lines.append(f"{agree} of {len(rows)} references agree; {expected} documented differences "
                 f"(tests/conformance/EXPECTED_DIFFERENCES.md); {len(rows) - agree - expected} unexplained")
    return "\n".join(lines)


def main() -> int:
    root = testdata_root()
    rows = [row for case in references.CASES for row in run_case(case, root)]
    print(table(rows))
    return int(any(r.verdict != "agree" and expected_reason(r) is None for r in rows))


if __name__ == "__main__":
    sys.exit(main())
