"""`cvpipe compare` on real commits of a real git + DVC repository."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.tools.compare import Threshold
from tests.conftest import ROOT, run

CLI = [sys.executable, "-m", "stages.cli"]


def commit(repo: Path, rank1: float, lr: float, message: str) -> None:
    (repo / "results").mkdir(exist_ok=True)
    (repo / "results" / "metrics.json").write_text(json.dumps(
        {"rank1": rank1, "rank5": 1.0, "diagnosis": {"test_error": round(1 - rank1, 6)}}))
    (repo / "params.yaml").write_text(yaml.safe_dump({"train": {"lr": lr, "epochs": 5}}))
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", message], repo)


@pytest.fixture
def history(tmp_path: Path) -> Path:
    """Three commits: rank1 0.90 -> 0.85 (a drop of 0.05) -> 0.86, lr 0.01 -> 0.1 -> 0.1."""
    repo = tmp_path / "repo"
    repo.mkdir()
    run(["git", "init", "-q", "-b", "main"], repo)
    run(["git", "config", "user.email", "test@cvpipe"], repo)
    run(["git", "config", "user.name", "cvpipe test"], repo)
    run([sys.executable, "-m", "dvc", "init", "-q"], repo)
    (repo / "dvc.yaml").write_text("metrics:\n  - results/metrics.json\nparams:\n  - params.yaml\n")
    commit(repo, 0.90, 0.01, "baseline")
    commit(repo, 0.85, 0.1, "higher lr")
    commit(repo, 0.86, 0.1, "another seed")
    return repo


def compare(repo: Path, *args: str, check: bool = True):
    return run([*CLI, "compare", *args], repo, check=check)


def test_compare_prints_metric_and_param_differences(history: Path) -> None:
    out = compare(history, "HEAD~2", "HEAD~1").stdout
    assert "| results/metrics.json | rank1 | 0.9000 | 0.8500 | -0.0500 |" in out
    assert "| params.yaml | train.lr | 0.0100 | 0.1000 |" in out
    assert "rank5" not in out and "train.epochs" not in out  # unchanged: hidden
    everything = compare(history, "HEAD~2", "HEAD~1", "--all").stdout
    assert "| results/metrics.json | rank5 | 1.0000 | 1.0000 |  |" in everything
    assert "diagnosis.test_error" in everything


def test_fail_on_exits_non_zero_only_beyond_the_threshold(history: Path) -> None:
    dropped = compare(history, "HEAD~2", "HEAD~1", "--fail-on", "rank1:0.01", check=False)
    assert dropped.returncode == 1
    assert "regression: results/metrics.json:rank1 fell by 0.0500" in dropped.stderr
    assert compare(history, "HEAD~2", "HEAD~1", "--fail-on", "rank1:0.1").returncode == 0
    rose = compare(history, "HEAD~1", "HEAD", "--fail-on", "results/metrics.json:rank1:0")
    assert rose.returncode == 0
    unknown = compare(history, "HEAD~1", "HEAD", "--fail-on", "rank9:0.1", check=False)
    assert unknown.returncode == 1 and "rank9: no such metric" in unknown.stderr
    bad = compare(history, "HEAD~1", "HEAD", "--fail-on", "rank1", check=False)
    assert bad.returncode == 2 and "METRIC:DROP" in bad.stderr


def test_threshold_parsing() -> None:
    assert Threshold.parse("results/m.json:rank1:0.02") == Threshold("results/m.json:rank1", 0.02)
    assert Threshold.parse("rank1:0.02").matches("any.json", "rank1")
    for text in ("rank1", ":0.1", "rank1:-1", "rank1:x"):
        with pytest.raises(ValueError):
            Threshold.parse(text)


def test_ci_workflow_gates_on_a_metric_the_pipeline_writes() -> None:
    workflow = yaml.safe_load((ROOT / ".github/workflows/pipeline.yml").read_text())
    steps = [step.get("run", "") for job in workflow["jobs"].values() for step in job["steps"]]
    assert any("bash .ci/run" in step for step in steps)
    compare_step = next(step for step in steps if "cvpipe compare" in step)
    gate = compare_step.split("--fail-on", 1)[1].split()[0]
    path, key, drop = gate.rsplit(":", 2)
    assert path in yaml.safe_load((ROOT / "dvc.yaml").read_text())["metrics"]
    assert key == "rank1" and float(drop) > 0
