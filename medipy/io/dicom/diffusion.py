"""Diffusion b-value and gradient direction of one slice, from standard and vendor private attributes.

Sources, in order of preference:

1. the standard MR Diffusion attributes (PS3.3 C.8.13.5.9): Diffusion b-value (0018,9087) and Diffusion
   Gradient Orientation (0018,9089), at top level or in the Diffusion Gradient Direction Sequence (0018,9076)
   (frame headers of enhanced objects have their MR Diffusion Sequence merged to top level);
2. Siemens: ``SIEMENS MR HEADER`` (0019,xx0C) B_value and (0019,xx0E) DiffusionGradientDirection;
3. GE: ``GEMS_PARM_01`` (0043,xx39) first value (b-value, possibly offset by 1e9) and ``GEMS_ACQU_01``
   (0019,xxBB/BC/BD) gradient components. GE reports them in its "logical" frame: along the frequency
   encoding, phase encoding and slice selection axes of the acquisition, not in patient coordinates (GE's
   own description, quoted in dcm2niix's GE notes). The polarity of those axes relative to the image axes is
   not recorded in DICOM, so that they are kept apart (``gradient_logical``) and never given as LPS;
4. Philips: ``Philips Imaging DD 001`` (2001,xx03) b-value and ``Philips MR Imaging DD 001``
   (2005,xxB0/B1/B2) gradient (RL, AP, FH).

Gradient directions of the standard, Siemens and Philips attributes are returned in patient coordinates (LPS)
as stored; a b=0 volume has no direction.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from pydicom.dataset import Dataset

__all__ = ["DiffusionEncoding", "diffusion_of"]


Vector = tuple[float, float, float]


class DiffusionEncoding(NamedTuple):
    """The diffusion encoding of one slice.

    Attributes
    ----------
    b_value
        s/mm2, None when the slice carries none.
    gradient
        Unit gradient direction in patient coordinates (LPS), None for b = 0 or when not known in LPS.
    gradient_logical
        Unit gradient direction as GE records it, along its (frequency, phase, slice) axes, None otherwise.
    """

    b_value: float | None
    gradient: Vector | None
    gradient_logical: Vector | None = None


def _private(ds: Dataset, group: int, creator: str, offset: int) -> Any:
    try:
        return ds.get_private_item(group, offset, creator).value
    except (KeyError, ValueError):
        return None


def _finite(value: Any) -> float | None:
    if isinstance(value, list | tuple) or hasattr(value, "__getitem__") and not isinstance(value, str | bytes):
        try:
            value = value[0]
        except (IndexError, TypeError):
            return None
    if isinstance(value, bytes):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _vector(values: Any) -> Vector | None:
    if values is None:
        return None
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        return None
    if len(out) != 3 or not all(math.isfinite(v) for v in out):
        return None
    norm = math.sqrt(sum(v * v for v in out))
    if norm < 1e-6:
        return None
    return tuple(round(v / norm, 6) for v in out)  # type: ignore[return-value]


def diffusion_of(ds: Dataset) -> DiffusionEncoding:
    """The diffusion b-value (s/mm2) and unit gradient direction of a slice header.

    Parameters
    ----------
    ds
        A single-frame header, or a frame header with its functional groups merged.

    Returns
    -------
    DiffusionEncoding
        ``(b_value, gradient, gradient_logical)``, each None when the slice carries no such information;
        no direction for b = 0.
    """
    b_value: float | None = None
    gradient: Vector | None = None
    logical: Vector | None = None
    if "DiffusionBValue" in ds:
        b_value = _finite(ds.DiffusionBValue)
        if "DiffusionGradientOrientation" in ds:
            gradient = _vector(ds.DiffusionGradientOrientation)
        elif ds.get("DiffusionGradientDirectionSequence"):
            gradient = _vector(ds.DiffusionGradientDirectionSequence[0].get("DiffusionGradientOrientation"))
    elif (value := _private(ds, 0x0019, "SIEMENS MR HEADER", 0x0C)) is not None:
        b_value = _finite(value)
        gradient = _vector(_private(ds, 0x0019, "SIEMENS MR HEADER", 0x0E))
    elif (value := _private(ds, 0x0043, "GEMS_PARM_01", 0x39)) is not None and (
        _private(ds, 0x0019, "GEMS_ACQU_01", 0xBB) is not None
    ):  # slop_int_6 has other meanings outside diffusion: require the gradient too
        b_value = _finite(value)
        if b_value is not None and b_value >= 1e9:
            b_value -= 1e9
        logical = _vector([_private(ds, 0x0019, "GEMS_ACQU_01", offset) for offset in (0xBB, 0xBC, 0xBD)])
    elif (value := _private(ds, 0x2001, "Philips Imaging DD 001", 0x03)) is not None:
        b_value = _finite(value)
        gradient = _vector(
            [_private(ds, 0x2005, "Philips MR Imaging DD 001", offset) for offset in (0xB0, 0xB1, 0xB2)]
        )
    if b_value is not None and b_value < 1e-3:
        gradient = logical = None
    return DiffusionEncoding(b_value, gradient, logical)
