"""benchmarks/gpu_suite.py cannot rot: its --dry-run runs every section's code at tiny sizes on CPU, and
a budget that fits nothing still leaves a table that says why each section was skipped."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))

import gpu_suite  # noqa: E402


def test_a_budget_that_fits_nothing_skips_every_section_and_says_so(tmp_path):
    assert gpu_suite.main(["--dry-run", "--budget-s", "0", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "results.json").read_text())
    assert list(report["sections"]) == list(gpu_suite.SECTIONS)
    assert all(s["status"].startswith("skipped: needs ~") for s in report["sections"].values())
    table = (tmp_path / "results.md").read_text()
    assert table.count("skipped: needs ~") == len(gpu_suite.SECTIONS)
    assert f"{report['machine']['cpus']} CPUs" in table


def test_the_full_suite_needs_a_gpu(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert gpu_suite.main(["--out", str(tmp_path)]) == 2
    assert "--dry-run" in capsys.readouterr().err
    assert not (tmp_path / "results.json").exists()


@pytest.mark.integration
def test_dry_run_measures_every_section(ray_cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("OUT", str(tmp_path))  # the device machine's output folder
    monkeypatch.chdir(tmp_path)  # the generated sets' ./data_cache
    assert gpu_suite.main(["--dry-run", "--budget-s", "3600"]) == 0  # a busy shared host is slow: no skips
    report = json.loads((tmp_path / "results.json").read_text())
    for name, section in report["sections"].items():  # scaling too, at 1 worker on the 2-CPU test cluster
        assert section["status"] == "done", (name, section["status"])
        assert section["ratio"] > 0 and section["absolute"], name
    table = (tmp_path / "results.md").read_text()
    assert all(f"| {name} |" in table for name in gpu_suite.SECTIONS)
    assert "none (CPU dry run)" in table
