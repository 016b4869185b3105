"""Run files with each kind of mistake: the message names the file, the key and the fix."""

from __future__ import annotations

import logging

import pytest

from medipy.cli import EXIT_USAGE, main
from medipy.errors import ConfigError
from medipy.pipelines.runfile import RunConfig, load_cluster_section, load_run_file

GOOD = "pipeline: convert\ninput: example\noutput: out.zarr\n"


@pytest.mark.parametrize(("text", "expected"), [
    (GOOD + "ouput: x.zarr\n", ["unknown key 'ouput'", "did you mean 'output'?"]),
    (GOOD + "cluster:\n  jobqueue:\n    core: 8\n", ["unknown key 'cluster.jobqueue.core'", "did you mean 'cores'?"]),
    (GOOD + "select:\n  modalities: [CT]\n", ["unknown key 'select.modalities'", "did you mean 'modality'?"]),
    (GOOD + "cluster:\n  workers: two\n", ["'cluster.workers' must be an integer, not 'two'", "workers: 8"]),
    (GOOD + "cluster:\n  workers: true\n", ["'cluster.workers' must be an integer"]),
    (GOOD + "options:\n  four_d: maybe\n", ["'options.four_d' must be true or false", "four_d: true"]),
    (GOOD + "select:\n  modality: [1, 2]\n", ["'select.modality' must be a string or a list of strings"]),
    (GOOD + "select: CT\n", ["'select' must be a mapping"]),
    (GOOD + "cluster:\n  scheduler: slurmm\n", ["scheduler 'slurmm' is not one of"]),
    (GOOD + "cluster:\n  scheduler: address\n", ["needs an address such as tcp://"]),
    (GOOD + "cluster:\n  start_method: vfork\n", ["start_method 'vfork' is not one of auto, fork"]),
    (GOOD + "options:\n  compression: brotli\n", ["compression 'brotli' is not one of lz4, zstd"]),
    ("pipeline: convert\noutput: out.zarr\n", ["missing key 'input'", "input: /path/to/export"]),
    ("input: example\noutput: out.zarr\n", ["missing key 'pipeline'", "pipeline: convert"]),
    ("pipeline: convert\ninput: example\n", ["missing key 'output'", "output: out.zarr"]),
    ("pipeline: convrt\ninput: example\noutput: o\n", ["'pipeline' is 'convrt'", "convert, normalize, scan"]),
    ("pipeline: scan\ninput: /no/such/export\n", ["'input' '/no/such/export' does not exist", "fix the path"]),
    ("pipeline: convert\ninput: [unclosed\n", ["not valid YAML (line", "indentation"]),
    ("- pipeline: convert\n", ["a run file is a mapping", "configs/local.yaml"]),
    ("pipeline: convert\ninput: !!python/object/apply:os.system [echo]\n", ["not valid YAML"]),
])
def test_mistakes_are_named(text, expected, tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_run_file(path)
    message = str(error.value)
    assert message.startswith(str(path)), message
    for part in expected:
        assert part in message, message


def test_missing_run_file(tmp_path):
    with pytest.raises(ConfigError, match="no such run file"):
        load_run_file(tmp_path / "absent.yaml")


def test_cli_exit_code_and_message(tmp_path, caplog):
    path = tmp_path / "run.yaml"
    path.write_text(GOOD + "cluster:\n  jobqueue: {cores: eight}\n")
    caplog.set_level(logging.ERROR)
    assert main(["run", str(path)]) == EXIT_USAGE
    assert f"{path}: 'cluster.jobqueue.cores' must be an integer" in caplog.text


def test_a_valid_file_and_the_cluster_section(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(GOOD + "cluster:\n  scheduler: slurm\n  jobqueue: {cores: 4, job_extra_directives: ['--qos=x']}\n"
                    "select: {modality: CT, series_description: '*T1*'}\n")
    config = load_run_file(path)
    assert isinstance(config, RunConfig)
    assert config.cluster.jobqueue.cores == 4
    assert config.cluster.jobqueue.job_extra_directives == ("--qos=x",)
    assert config.select.modality == ("CT",)
    assert config.select.series_description == "*T1*"
    assert load_cluster_section(path) == config.cluster
