"""Read, group, assemble and write DICOM: the ``medipy.io.dicom`` API.

Examples
--------
>>> import medipy.io.dicom
>>> datasets = [medipy.io.dicom.read(f) for f in filenames]  # doctest: +SKIP
>>> series = medipy.io.dicom.series(datasets)  # doctest: +SKIP
>>> image = medipy.io.dicom.image(medipy.io.dicom.stacks(series[0])[0])  # doctest: +SKIP
"""

from __future__ import annotations

from medipy.io.dicom.assembly import image
from medipy.io.dicom.dataset import DataSet
from medipy.io.dicom.description import uid_and_description
from medipy.io.dicom.dicomdir import load_dicomdir_records
from medipy.io.dicom.grouping import series, stacks
from medipy.io.dicom.reading import read
from medipy.io.dicom.resample import resample_regular
from medipy.io.dicom.series4d import diffusion_table, image4d, series_images
from medipy.io.dicom.writing import write

__all__ = [
    "DataSet",
    "diffusion_table",
    "image",
    "image4d",
    "load_dicomdir_records",
    "read",
    "resample_regular",
    "series",
    "series_images",
    "stacks",
    "uid_and_description",
    "write",
]
