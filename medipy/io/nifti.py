"""Export of an :class:`~medipy.base.Image` (3D or 4D) to NIfTI-1 with nibabel, for diffing with dcm2niix.

The NIfTI voxel axes (i, j, k) are medipy's (x, y, z) index axes (the array is transposed, volumes last),
and the affine is the image's LPS geometry turned to RAS: exact, sheared where a gantry tilt shears the
stack (the sform holds the shear; the qform, which cannot, is then left unset). A BIDS-style JSON sidecar
carries the acquisition attributes dcm2niix writes (times in seconds), and FSL-style ``.bval``/``.bvec``
files are written on request for diffusion images (b-vectors in the NIfTI voxel frame, x flipped when the
affine has a positive determinant, as FSL expects).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medipy.base import Image
from medipy.errors import ExportError

__all__ = ["NiftiFiles", "bids_sidecar", "fsl_bvecs", "nifti_affine", "to_nifti"]

logger = logging.getLogger(__name__)

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])

# DICOM keyword -> (BIDS key, factor); times go from ms to s as in BIDS and dcm2niix.
_BIDS_KEYS: dict[str, tuple[str, float | None]] = {
    "Modality": ("Modality", None),
    "MagneticFieldStrength": ("MagneticFieldStrength", None),
    "Manufacturer": ("Manufacturer", None),
    "ManufacturerModelName": ("ManufacturersModelName", None),
    "InstitutionName": ("InstitutionName", None),
    "StationName": ("StationName", None),
    "DeviceSerialNumber": ("DeviceSerialNumber", None),
    "SoftwareVersions": ("SoftwareVersions", None),
    "BodyPartExamined": ("BodyPartExamined", None),
    "PatientPosition": ("PatientPosition", None),
    "ProtocolName": ("ProtocolName", None),
    "SeriesDescription": ("SeriesDescription", None),
    "ScanningSequence": ("ScanningSequence", None),
    "SequenceVariant": ("SequenceVariant", None),
    "ScanOptions": ("ScanOptions", None),
    "SequenceName": ("SequenceName", None),
    "ImageType": ("ImageType", None),
    "SeriesNumber": ("SeriesNumber", None),
    "AcquisitionTime": ("AcquisitionTime", None),
    "AcquisitionNumber": ("AcquisitionNumber", None),
    "SliceThickness": ("SliceThickness", None),
    "SpacingBetweenSlices": ("SpacingBetweenSlices", None),
    "EchoNumbers": ("EchoNumber", None),
    "EchoTime": ("EchoTime", 1e-3),
    "RepetitionTime": ("RepetitionTime", 1e-3),
    "InversionTime": ("InversionTime", 1e-3),
    "FlipAngle": ("FlipAngle", None),
    "ImageOrientationPatient": ("ImageOrientationPatientDICOM", None),
    "KVP": ("KVP", None),
    "ConvolutionKernel": ("ConvolutionKernel", None),
}


@dataclass(frozen=True)
class NiftiFiles:
    """The files written by :func:`to_nifti` (None where not written)."""

    nifti: Path
    sidecar: Path | None = None
    bval: Path | None = None
    bvec: Path | None = None


def _volumes(image: Image) -> bool:
    """True when a 4D array holds volumes first (not colour samples last)."""
    if image.data.ndim == 3:
        return False
    if image.data.ndim == 4 and ("volume_axis" in image.metadata or image.data.shape[-1] not in (3, 4)):
        return True
    raise ExportError(
        f"cannot export an array of shape {image.shape} to NIfTI: expected (z, y, x) or (volumes, z, y, x); "
        "colour images are not supported"
    )


def nifti_affine(image: Image) -> np.ndarray:
    """The RAS affine of the NIfTI written for ``image``: voxel (i, j, k) = medipy index (x, y, z).

    Parameters
    ----------
    image
        A 3D image, or a 4D image (volumes first) whose geometry describes one volume.

    Returns
    -------
    numpy.ndarray
        4x4 matrix from NIfTI voxel indices to RAS+ millimetres (sheared for a gantry-tilted stack).
    """
    lps = np.eye(4)
    lps[:3, :] = image.affine[2::-1, :]  # world rows (z, y, x) -> LPS (x, y, z); columns index (z, y, x)
    lps = lps[:, [2, 1, 0, 3]]  # index columns (x, y, z)
    return _LPS_TO_RAS @ lps


def fsl_bvecs(bvecs_lps: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """FSL b-vectors (3, n) in the voxel frame of a NIfTI with ``affine``, from LPS unit directions (n, 3).

    FSL reads b-vectors in voxel coordinates of a radiological (negative determinant) image: when the affine
    has a positive determinant, the first component is negated (as dcm2niix does).
    """
    linear = affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)
    ras = np.asarray(bvecs_lps, float).reshape(-1, 3) * np.array([-1.0, -1.0, 1.0])
    voxel = np.linalg.solve(linear, ras.T)
    if np.linalg.det(linear) > 0:
        voxel[0] = -voxel[0]
    norms = np.linalg.norm(voxel, axis=0)
    return np.where(norms > 1e-6, voxel / np.where(norms > 1e-6, norms, 1.0), 0.0)


def bids_sidecar(image: Image) -> dict[str, Any]:
    """A BIDS-style JSON sidecar for ``image`` (no patient identifiers), with medipy's geometry findings.

    Parameters
    ----------
    image
        An image made by :func:`medipy.io.dicom.image` or :func:`medipy.io.dicom.image4d`.

    Returns
    -------
    dict
        dcm2niix's keys where the DICOM attribute is present and shared by all slices (times in seconds),
        plus ``ConversionSoftware``, ``GantryTilt`` (degrees), ``SliceSpacingWarnings`` and, for 4D images,
        ``VolumeAxis``.
    """
    metadata = image.metadata
    out: dict[str, Any] = {}
    for keyword, (key, factor) in _BIDS_KEYS.items():
        value = metadata.get(keyword)
        if value is None or value == "":
            continue
        out[key] = round(float(value) * factor, 9) if factor is not None else value
    out["ConversionSoftware"] = "medipy"
    if metadata.get("gantry_tilt"):
        out["GantryTilt"] = metadata["gantry_tilt"]
    if metadata.get("geometry_warnings"):
        out["GeometryWarnings"] = list(metadata["geometry_warnings"])
    if "volume_axis" in metadata:
        out["VolumeAxis"] = metadata["volume_axis"]
    if "resampled" in metadata:
        out["Resampled"] = metadata["resampled"]
    return out


def _stem(path: Path) -> Path:
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            return path.with_name(name[: -len(suffix)])
    return path


def to_nifti(
    image: Image, path: str | os.PathLike[str], *, sidecar: bool = True, bval_bvec: bool = False
) -> NiftiFiles:
    """Write ``image`` to NIfTI-1 (``.nii`` or ``.nii.gz``), with a JSON sidecar and FSL bval/bvec files.

    Parameters
    ----------
    image
        A 3D image (z, y, x) or a 4D image (volumes, z, y, x); real-world values are written as they are
        (no scl_slope/scl_inter).
    path
        The NIfTI file; ``.nii`` is appended when the name has no NIfTI suffix. The sidecar and the
        bval/bvec files share its stem.
    sidecar
        Write the BIDS-style JSON sidecar (see :func:`bids_sidecar`).
    bval_bvec
        Write ``.bval`` and ``.bvec`` (FSL format) from ``metadata["diffusion"]``.

    Returns
    -------
    NiftiFiles
        The paths written.

    Raises
    ------
    ExportError
        When the array is not 3D or 4D (volumes first), or when bval/bvec are asked for an image without
        diffusion encoding, or whose gradient directions are not known in patient coordinates (GE records
        them along its frequency, phase and slice axes; see :mod:`medipy.io.dicom.diffusion`).

    Examples
    --------
    >>> from medipy.io.nifti import to_nifti
    >>> to_nifti(medipy.io.dicom.image(stack), "out/t1.nii.gz")  # doctest: +SKIP
    """
    import nibabel

    target = Path(path)
    if not target.name.endswith((".nii", ".nii.gz")):
        target = target.with_name(target.name + ".nii")
    stem = _stem(target)
    diffusion = image.metadata.get("diffusion")
    if bval_bvec and diffusion is None:
        raise ExportError(f"{target}: bval/bvec asked for an image without diffusion b-values")
    if bval_bvec and diffusion is not None and diffusion.get("bvecs_lps") is None:
        raise ExportError(
            f"{target}: bval/bvec asked, but the gradient directions are GE's, along its frequency, phase and "
            "slice axes, which DICOM does not relate to the patient: medipy does not guess their polarity "
            "(metadata['diffusion']['bvecs_logical'] holds them); write without bval_bvec")
    data = np.asarray(image.data)
    _volumes(image)  # refuses colour and other layouts
    data = data.T  # (z, y, x) -> (x, y, z); (t, z, y, x) -> (x, y, z, t)
    if data.dtype == np.bool_:
        data = data.astype(np.uint8)
    affine = nifti_affine(image)
    nii = nibabel.Nifti1Image(np.ascontiguousarray(data), None)
    nii.header.set_data_dtype(data.dtype)
    nii.header.set_xyzt_units("mm", "sec")
    nii.set_sform(affine, code=1)
    linear = affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)
    if np.allclose(linear.T @ linear, np.eye(3), atol=1e-4):
        nii.set_qform(affine, code=1)
    else:  # sheared (gantry tilt): a qform cannot hold it
        nii.set_qform(None, code=0)
        logger.info("%s: sheared affine (gantry tilt) kept in the sform only", target)
    target.parent.mkdir(parents=True, exist_ok=True)
    nibabel.save(nii, str(target))
    files = NiftiFiles(nifti=target)
    if sidecar:
        json_path = stem.with_name(stem.name + ".json")
        json_path.write_text(json.dumps(bids_sidecar(image), indent=2, default=str) + "\n", encoding="utf-8")
        files = NiftiFiles(nifti=target, sidecar=json_path)
    if bval_bvec and diffusion is not None:
        bvals = np.asarray(diffusion["bvals"], float)
        bvecs = fsl_bvecs(np.asarray(diffusion["bvecs_lps"], float), affine)
        bval_path = stem.with_name(stem.name + ".bval")
        bvec_path = stem.with_name(stem.name + ".bvec")
        bval_path.write_text(" ".join(f"{b:g}" for b in bvals) + "\n", encoding="utf-8")
        bvec_path.write_text(
            "\n".join(" ".join(f"{v:.6f}" for v in row) for row in bvecs) + "\n", encoding="utf-8"
        )
        files = NiftiFiles(nifti=target, sidecar=files.sidecar, bval=bval_path, bvec=bvec_path)
    return files
