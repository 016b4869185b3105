"""The exceptions of medipy: one hierarchy, each class also deriving from the built-in callers expect.

Every message says what went wrong, where (file, tag (gggg,eeee), frame) and, where possible, how to fix it.
"""

from __future__ import annotations

import os

__all__ = [
    "MedipyError",
    "DicomError",
    "NotDicomError",
    "BrokenDicomError",
    "MissingReferencedFileError",
    "UnsafePathError",
    "SeveralStacksError",
    "NotImageError",
    "PixelDecodeError",
    "ValueRangeError",
    "GeometryError",
    "ConfigError",
    "ExportError",
    "OutputLockedError",
]


class MedipyError(Exception):
    """Base class of every error raised by medipy."""


class DicomError(MedipyError):
    """A DICOM file or dataset cannot be used as asked.

    Parameters
    ----------
    message
        What went wrong and how to fix it.
    path
        The file concerned, if any; it is prefixed to the message.
    """

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None) -> None:
        self.path = None if path is None else os.fspath(path)
        self.reason = message
        super().__init__(f"{self.path}: {message}" if self.path is not None else message)

    def __reduce__(self):  # keep the (message, path) signature across pickling (dask workers)
        return (type(self), (self.reason, self.path))


class NotDicomError(DicomError, ValueError):
    """The file is not a DICOM file (no DICOM preamble, meta header or parsable dataset)."""


class BrokenDicomError(DicomError, ValueError):
    """The file starts as DICOM but cannot be parsed (truncated, inconsistent lengths, ...)."""


class MissingReferencedFileError(DicomError, FileNotFoundError):
    """A DICOMDIR record references a file that does not exist."""


class UnsafePathError(DicomError, ValueError):
    """A path read from input (Referenced File ID, UID used as a name) would leave its allowed folder."""


class SeveralStacksError(DicomError, ValueError):
    """:func:`medipy.io.dicom.image` was given slices of several stacks."""


class NotImageError(DicomError, ValueError):
    """An image was expected: got a DICOMDIR record or a dataset without pixels."""


class PixelDecodeError(DicomError, RuntimeError):
    """Pixel Data cannot be decoded (missing plugin, corrupt or truncated data)."""


class ValueRangeError(DicomError, OverflowError):
    """A slice's real-world values do not fit the dtype its stack was read in (the narrow dtype of
    :func:`medipy.io.dicom.pixels.output_dtypes`): read the stack in the wide one."""


class GeometryError(DicomError, ValueError):
    """Geometry attributes are missing, not finite or inconsistent."""


class ConfigError(MedipyError, ValueError):
    """A run file or an option is invalid: the message names the key, the file and the fix."""


class ExportError(MedipyError, ValueError):
    """An image cannot be exported as asked (e.g. to NIfTI): the message says why and what to change."""


class OutputLockedError(MedipyError, RuntimeError):
    """Another medipy run holds the lock of an output (the message names its process, host and lock file)."""
