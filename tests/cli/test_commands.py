"""Each subcommand on the bundled example (and the corpus for the failure exit code)."""

from __future__ import annotations

import json
import logging

import pytest

from medipy.cli import EXIT_FAILURES, EXIT_OK, EXIT_USAGE, main


def test_convert_example(example_store):
    code, out = example_store
    assert code == EXIT_OK
    report = json.loads((out / "report.json").read_text())
    assert report["counts"] == {"files": 13, "stacks": 8, "excluded": 0, "incomplete": 0, "failures": 0,
                                "duplicates": 0, "skipped": 1, "warnings": report["counts"]["warnings"]}
    assert report["ok"]
    assert report["throughput"]["files_per_s"] > 0
    assert {s["modality"] for s in report["stacks"]} == {"CT", "MR", "OT", "RTDOSE", "US"}
    assert all(s["series_instance_uid"] and s["files"] >= 1 for s in report["stacks"])
    assert json.loads((out / ".medipy-run.json").read_text())["state"] == "done"
    assert not (out / ".medipy.lock").exists()


def test_second_run_does_nothing(example_store, capsys):
    code, out = example_store
    before = (out / "report.json").read_text()
    assert main(["convert", "--example", str(out), "--scheduler", "synchronous"]) == EXIT_OK
    assert "nothing to do" in capsys.readouterr().out
    assert (out / "report.json").read_text() == before


def test_info(example_store, capsys):
    _, out = example_store
    assert main(["info", str(out), "--json"]) == EXIT_OK
    info = json.loads(capsys.readouterr().out)
    assert info["state"] == "done"
    assert len(info["stacks"]) == 8
    assert all(s["complete"] for s in info["stacks"])
    assert main(["info", str(out)]) == EXIT_OK
    text = capsys.readouterr().out
    assert "8 stacks" in text
    assert "RTDOSE" in text


def test_info_of_a_folder_that_is_not_a_store(tmp_path, caplog):
    assert main(["info", str(tmp_path)]) == EXIT_USAGE
    assert "not a zarr store" in caplog.text or "holds no medipy image" in caplog.text


def test_scan_table_and_json(capsys):
    assert main(["scan", "--example", "--scheduler", "synchronous"]) == EXIT_OK
    table = capsys.readouterr().out
    assert "13 files: 8 patients, 8 studies, 8 series, 8 stacks" in table
    assert "non-image 1" in table
    assert main(["scan", "--example", "--scheduler", "threads", "--json", "--modality", "ct"]) == EXIT_OK
    inventory = json.loads(capsys.readouterr().out)
    assert inventory["stacks"] == 2
    assert inventory["excluded"] == 6
    assert inventory["modalities"] == {"CT": 2}


def test_convert_selection_and_dry_run(tmp_path, capsys):
    out = tmp_path / "dry.zarr"
    assert main(["convert", "--example", str(out), "--scheduler", "synchronous", "--dry-run"]) == EXIT_OK
    assert "would write 13 files -> 8 stacks" in capsys.readouterr().out
    assert not out.exists()
    out = tmp_path / "mr.zarr"
    assert main(["convert", "--example", str(out), "--scheduler", "synchronous", "--modality", "MR",
                 "--series-description", "*LESION*", "--no-thumbnails", "-q"]) == EXIT_OK
    report = json.loads((out / "report.json").read_text())
    assert [s["series_description"] for s in report["stacks"]] == ["marked lesion<MPR Collection>"]
    assert report["excluded"] == 7
    assert _blosc(out, report["stacks"][0]["path"])["cname"] == "lz4"


def test_convert_with_zstd(tmp_path):
    import numpy as np
    import zarr

    out = {}
    for compression in ("lz4", "zstd"):
        out[compression] = tmp_path / f"{compression}.zarr"
        argv = ["convert", "--example", str(out[compression]), "--scheduler", "synchronous", "--modality", "CT",
                "--no-thumbnails", "-q"]
        assert main([*argv, "--compression", compression]) == EXIT_OK
    report = json.loads((out["zstd"] / "report.json").read_text())
    for stack in report["stacks"]:
        blosc = _blosc(out["zstd"], stack["path"])
        assert (blosc["cname"], blosc["clevel"], blosc["shuffle"]) == ("zstd", 1, "bitshuffle")
        arrays = [zarr.open_array(str(out[c] / stack["path"] / "0"), mode="r")[...] for c in out]
        np.testing.assert_array_equal(arrays[0], arrays[1])


def _blosc(store, path: str) -> dict:
    meta = json.loads((store / path / "0" / "zarr.json").read_text())
    return meta["codecs"][0]["configuration"]["codecs"][1]["configuration"]


def test_normalize_example(tmp_path):
    from pydicom import dcmread

    out = tmp_path / "clean"
    assert main(["normalize", "--example", str(out), "--scheduler", "threads", "--workers", "2", "-q"]) == EXIT_OK
    report = json.loads((out / "report.json").read_text())
    assert report["written"] == 13  # every file of the example: 12 images and the SR (non-image DICOM)
    assert (out / "DICOMDIR").is_file()
    assert (out / "report.html").is_file()
    files = [p for p in out.rglob("*") if p.is_file() and p.parent != out]
    assert len(files) == report["written"]
    for path in files:
        ds = dcmread(path, stop_before_pixels=True)
        assert ds.SpecificCharacterSet == "ISO_IR 192"
        assert not any(element.tag.is_private for element in ds)
        assert len(path.relative_to(out).parts) == 4  # Patient/Study/Series/Instance


def test_failures_give_exit_code_1(corpus_reference):
    code, out = corpus_reference
    report = json.loads((out / "report.json").read_text())
    assert code == EXIT_FAILURES
    assert report["failures"]
    assert not report["ok"]
    assert {"path", "kind", "reason"} <= set(report["failures"][0])
    assert report["duplicates"]
    assert report["warnings"]


@pytest.mark.parametrize("argv", [
    ["convert", "only-one-path"],
    ["convert", "--example", "a.zarr", "b.zarr"],
    ["scan"],
    ["frobnicate"],
    ["convert", "--example", "a.zarr", "--workers", "two"],
])
def test_usage_errors(argv, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == EXIT_USAGE


def test_config_errors_exit_2(tmp_path, caplog, monkeypatch):
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.ERROR)
    assert main(["scan", str(tmp_path / "absent")]) == EXIT_USAGE
    assert "does not exist" in caplog.text
    assert main(["convert", "--example", "x.zarr", "--scheduler", "synchronous", "--cluster", "nope.yaml"]) == 2
    assert "nope.yaml: no such run file" in caplog.text


def test_output_of_another_command_is_refused(example_store, caplog):
    _, out = example_store
    assert main(["convert", "--example", str(out), "--scheduler", "synchronous", "--no-4d"]) == EXIT_USAGE
    assert "written by another command (it differs in: four_d)" in caplog.text


def test_follow_links_switch(testdata, tmp_path, capsys):
    """A link leading out of the export is listed, not followed, unless --follow-links."""
    import os

    export = tmp_path / "export"
    export.mkdir()
    os.symlink(testdata / "dcmqi/ct-3slice", export / "elsewhere")  # the CT's three slices, outside the export
    out = tmp_path / "linked.zarr"
    assert main(["convert", str(export), str(out), "--scheduler", "synchronous", "-q"]) == EXIT_FAILURES
    report = json.loads((out / "report.json").read_text())
    assert report["stacks"] == []
    assert [(f["path"], f["kind"]) for f in report["failures"]] == [("elsewhere", "unreadable")]
    assert "not followed" in report["failures"][0]["reason"]
    assert main(["convert", str(export), str(out), "--scheduler", "synchronous", "--follow-links", "--overwrite",
                 "-q"]) == EXIT_OK
    report = json.loads((out / "report.json").read_text())
    assert [s["files"] for s in report["stacks"]] == [3]
    assert report["failures"] == []
    assert main(["scan", str(export), "--scheduler", "synchronous", "--follow-links", "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["stacks"] == 1
