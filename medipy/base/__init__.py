"""Base types of medipy."""

from __future__ import annotations

from medipy.base.image import Image

__all__ = ["Image"]
