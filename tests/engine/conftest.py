"""Engine fixtures: the whole corpus converted once per scheduler, a real dask scheduler with two workers,
and the serial reading of every corpus file to compare with."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest


def _convert_corpus(testdata: Path, out: Path, cluster):
    from medipy.engine import ConvertOptions, convert

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pydicom on the corpus' deliberately odd files
        return convert(testdata, out, cluster=cluster, options=ConvertOptions())


@pytest.fixture(scope="session")
def convert_corpus():
    """convert(testdata, out, cluster) with pydicom's warnings on the odd corpus files silenced."""
    return _convert_corpus


@pytest.fixture(scope="session")
def corpus_sync(testdata, tmp_path_factory):
    from medipy.engine import ClusterOptions

    out = tmp_path_factory.mktemp("sync") / "corpus.zarr"
    return _convert_corpus(testdata, out, ClusterOptions("synchronous")), out


@pytest.fixture(scope="session")
def serial_datasets(testdata):
    """Every corpus file read serially with medipy.io.dicom.read: {relative path: DataSet or exception}."""
    from medipy.io.dicom.reading import read

    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for folder, dirs, files in os.walk(testdata):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(folder, name)
                try:
                    out[os.path.relpath(path, testdata)] = read(path)
                except Exception as exc:  # noqa: BLE001 - recorded: the tests compare kinds
                    out[os.path.relpath(path, testdata)] = exc
    return out
