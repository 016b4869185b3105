"""Selection: which stacks of an export a run keeps (modality, series description, patient, study).

A :class:`Selection` is a frozen dataclass passed to the pipelines (never a global); an empty selection keeps
everything. Values are compared case-insensitively; the series description is a shell-style pattern
(``*T1*``, ``LOCALI?ER``).
"""

from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass
from typing import Any

from medipy.engine.plan import StackPlan

__all__ = ["Selection"]


@dataclass(frozen=True)
class Selection:
    """Filters on stacks; a stack is kept when it passes every filter that is set.

    Attributes
    ----------
    modality
        Modalities to keep (``CT``, ``MR``...); empty: all.
    series_description
        A shell-style pattern the Series Description must match (case-insensitive); None: all.
    patient
        Patient IDs to keep; empty: all.
    study
        Study Instance UIDs to keep; empty: all.

    Examples
    --------
    >>> Selection(modality=("CT",), series_description="*chest*").active
    True
    """

    modality: tuple[str, ...] = ()
    series_description: str | None = None
    patient: tuple[str, ...] = ()
    study: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        """True when at least one filter is set."""
        return bool(self.modality or self.series_description or self.patient or self.study)

    def keeps(self, plan: StackPlan) -> bool:
        """True when ``plan`` passes every filter."""
        if self.modality and plan.modality.upper() not in {m.upper() for m in self.modality}:
            return False
        if self.series_description is not None and not fnmatch.fnmatchcase(
                plan.series_description.casefold(), self.series_description.casefold()):
            return False
        if self.patient and plan.patient_id not in self.patient:
            return False
        return not self.study or plan.study_instance_uid in self.study

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (for fingerprints and reports)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
