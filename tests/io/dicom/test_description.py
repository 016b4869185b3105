"""uid_and_description(): plain strings, Series Description, referenced file of records, Protocol Name."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from medipy.io.dicom.dataset import DataSet
from medipy.io.dicom.description import uid_and_description
from medipy.io.dicom.dicomdir import series_records
from medipy.io.dicom.reading import read

DICOMDIR = "pydicom/test_files/dicomdirtests/DICOMDIR"
# Descriptions of the SERIES records of DICOMDIR (their records have none: read from the referenced files)
RECORD_DESCRIPTIONS = [
    "Cervical LAT", "Cervical OBLI 1", "Cervical OBLI 2", "Routine Brain", "Scout",
    "SmartScore - Gated 0.5 sec", "FAST LOCALIZER", "FAST LOCALIZER", "FAST LOCALIZER",
    "T/S/C RF FAST PILOT", "FAST LOCALIZER", "T/S/C RF FAST PILOT", "ANGIO Projected from   C",
]


@pytest.mark.parametrize(("name", "uid", "description"), [
    ("dcm_qa_ts/In/1.dcm", "1.3.12.2.1107.5.2.32.35131.2014031012481958900586557.0.0.0", "ax_asc_35sl"),
    ("dcmqi/ct-3slice/01.dcm", "1.2.392.200103.20080913.113635.1.2009.6.22.21.43.10.23430.1",
     "6.9 Colonoscopy"),  # empty Series Description: Protocol Name
    ("pydicom/test_files/CT_small.dcm", "1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322", "(no description)"),
])
def test_files(testdata: Path, name: str, uid: str, description: str) -> None:
    got = uid_and_description([read(testdata / name, stop_before_pixels=True)])
    assert got == (uid, description)
    assert type(got[0]) is str
    assert type(got[1]) is str


def test_first_dataset_with_values() -> None:
    first, second = DataSet(), DataSet()
    second.SeriesInstanceUID = "1.2.3"
    second.ProtocolName = "protocol"
    first.ProtocolName = "first protocol"
    third = DataSet()
    third.SeriesDescription = "described"
    assert uid_and_description([first, second]) == ("1.2.3", "first protocol")
    assert uid_and_description([first, second, third]) == ("1.2.3", "described")


def test_default() -> None:
    assert uid_and_description([DataSet()], default_description="?") == ("", "?")
    assert uid_and_description([]) == ("", "(no description)")


def test_dicomdir_records(testdata: Path) -> None:
    series = series_records(read(testdata / DICOMDIR))
    assert all("SeriesDescription" not in serie for serie in series)
    got = [uid_and_description([serie]) for serie in series]
    assert [description for _, description in got] == RECORD_DESCRIPTIONS
    assert [uid for uid, _ in got] == [str(serie.SeriesInstanceUID) for serie in series]
    assert all(type(uid) is str and type(description) is str for uid, description in got)


def test_dicomdir_base_directory(testdata: Path) -> None:
    series = series_records(read(testdata / DICOMDIR))
    base = testdata / DICOMDIR
    got = [uid_and_description([serie], base.parent)[1] for serie in series]
    assert got == RECORD_DESCRIPTIONS


def test_dicomdir_wrong_base_directory(testdata: Path, tmp_path: Path,
                                       caplog: pytest.LogCaptureFixture) -> None:
    serie = series_records(read(testdata / DICOMDIR))[0]
    with caplog.at_level(logging.WARNING, logger="medipy.io.dicom.description"):
        assert uid_and_description([serie], tmp_path)[1] == "(no description)"
    assert "does not exist" in caplog.text
