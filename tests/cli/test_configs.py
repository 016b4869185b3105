"""Each shipped run file: local and distributed run for real; SLURM and PBS render their job script."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from medipy.cli import EXIT_OK, main
from medipy.pipelines.runfile import load_run_file

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("name", ["local.yaml", "distributed.yaml", "slurm.yaml", "pbs.yaml"])
def test_shipped_configs_are_valid(name):
    config = load_run_file(CONFIGS / name)
    assert config.pipeline == "convert"
    assert config.input == "example"
    assert config.output


def test_local(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(CONFIGS / "local.yaml"), "-q"]) == EXIT_OK
    report = json.loads((tmp_path / "medipy-example.zarr" / "report.json").read_text())
    assert report["counts"]["stacks"] == 8
    assert report["ok"]


def test_distributed(dask_cluster, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = (CONFIGS / "distributed.yaml").read_text()
    assert "tcp://127.0.0.1:8786" in text
    (tmp_path / "distributed.yaml").write_text(text.replace("tcp://127.0.0.1:8786", dask_cluster))
    assert main(["run", "distributed.yaml", "-q"]) == EXIT_OK
    report = json.loads((tmp_path / "medipy-example.zarr" / "report.json").read_text())
    assert report["counts"]["stacks"] == 8
    assert report["ok"]
    assert (tmp_path / "medipy-example.zarr" / "report.html").is_file()


def _job_script(path, capsys) -> str:
    assert main(["run", str(path), "--dry-run"]) == EXIT_OK
    return capsys.readouterr().out


def test_slurm_job_script(capsys, tmp_path):
    script = _job_script(CONFIGS / "slurm.yaml", capsys)
    assert "(4 job(s))" in script
    for line in ("#SBATCH -p normal", "#SBATCH --cpus-per-task=8", "#SBATCH -t 04:00:00"):
        assert line in script
    assert re.search(r"#SBATCH --mem=\d+G", script)
    assert "distributed.cli.dask_worker" in script
    assert "--nworkers 8" in script
    assert "--nthreads 1" in script
    custom = tmp_path / "slurm.yaml"
    shutil.copy(CONFIGS / "slurm.yaml", custom)
    custom.write_text(custom.read_text().replace("account: null", "account: proj42")
                      .replace("job_script_prologue: []", 'job_script_prologue: ["module load python"]'))
    script = _job_script(custom, capsys)
    assert "#SBATCH -A proj42" in script
    assert "module load python" in script


def test_pbs_job_script(capsys):
    script = _job_script(CONFIGS / "pbs.yaml", capsys)
    assert "#PBS -q workq" in script
    assert "#PBS -l walltime=04:00:00" in script
    assert re.search(r"#PBS -l select=1:ncpus=8:mem=\d+GB", script)
    assert "distributed.cli.dask_worker" in script
    assert "--nworkers 8" in script
