"""Volumes of a 4D series: which stacks share one geometry and form a time or diffusion series.

:func:`~medipy.io.dicom.keys.split_stacks` keeps MediPy's meaning of a stack (one 3D volume). On top of it,
stacks of one series that share everything but time, repetition and diffusion encoding -- same size,
spacing, orientation, slice positions, echo and frame type -- are the volumes of one 4D image, as dcm2niix
writes them. Echoes and image types (magnitude, phase, field map) stay separate images.

Plain functions of slice records, shared by the serial API and the dask engine.
"""

from __future__ import annotations

from collections.abc import Sequence

from medipy.io.dicom.keys import stack_key
from medipy.io.dicom.record import SliceRecord

__all__ = ["group_volumes", "volume_axis", "volume_key"]

# Indices into stack_key's "|"-separated parts that vary between volumes of one 4D image.
_TEMPORAL_PART, _B_VALUE_PART, _GRADIENT_PART = 4, 6, 7


def volume_key(stack: Sequence[SliceRecord]) -> str:
    """What the volumes of one 4D image share: the stack key without time and diffusion, the orientation
    and every slice position (to 0.01 mm), as one plain string."""
    parts = stack_key(stack[0]).split("|")
    kept = [p for i, p in enumerate(parts) if i not in (_TEMPORAL_PART, _B_VALUE_PART, _GRADIENT_PART)]
    orientation = "-" if stack[0].orientation is None else ",".join(f"{v:.3f}" for v in stack[0].orientation)
    positions = ";".join(
        "-" if r.position is None else ",".join(f"{round(v, 2) + 0.0:.2f}" for v in r.position) for r in stack
    )
    return "|".join([*kept, orientation, str(len(stack)), positions])


def group_volumes(stacks: Sequence[Sequence[SliceRecord]]) -> list[list[int]]:
    """Group the stacks of one series into 4D images.

    Parameters
    ----------
    stacks
        The stacks of one series, each sorted (as :func:`~medipy.io.dicom.keys.group_stacks` returns them).

    Returns
    -------
    list of list of int
        Indices into ``stacks``: one list per image, its volumes in acquisition order; a 3D image is a list
        of one. Images are in the order of their first volume.
    """
    groups: dict[str, list[int]] = {}
    for index, stack in enumerate(stacks):
        if not stack:
            continue
        groups.setdefault(volume_key(stack), []).append(index)
    return sorted(groups.values(), key=lambda g: g[0])


def volume_axis(stacks: Sequence[Sequence[SliceRecord]]) -> str:
    """The meaning of the 4th axis of a group of volumes: ``"channel"`` when the volumes differ by diffusion
    encoding (b-value or gradient), else ``"time"``."""
    encodings = {(s[0].b_value, s[0].gradient, s[0].gradient_logical) for s in stacks if s}
    return "channel" if len(encodings) > 1 else "time"
