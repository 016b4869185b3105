"""medipy: read, group, convert and write medical images in DICOM, from one file to whole exports.

Importing :mod:`medipy` is cheap; the DICOM API lives in :mod:`medipy.io.dicom`, the image class in
:mod:`medipy.base`.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
