"""`cvpipe compare` on real commits of a real git + DVC repository, and the search file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline.config import ParamsError
from pipeline.tools.compare import Threshold
from pipeline.tools.search import Distribution, load_spec, set_args, trials
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


def test_log_uniform_samples_spread_over_the_decades() -> None:
    rng = np.random.default_rng(0)
    dist = Distribution(log_uniform=(1e-5, 1e-1))
    exponents = np.log10([dist.sample(rng) for _ in range(2000)])
    assert exponents.min() >= -5 and exponents.max() <= -1
    # Uniform in the exponent: each decade gets about a quarter of the samples.
    counts = np.histogram(exponents, bins=4, range=(-5, -1))[0]
    assert counts.min() > 400
    assert Distribution(randint=(2, 4)).sample(rng) in (2, 3, 4)
    assert Distribution(choice=["adam", "sgd"]).sample(rng) in ("adam", "sgd")


def spec_file(tmp_path: Path, **space: dict) -> Path:
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump({"name": "s", "trials": 3, "space": space}))
    return path


def test_search_trials_are_reproducible_and_validated(tmp_path: Path) -> None:
    spec = load_spec(spec_file(tmp_path, **{"train.lr": {"log_uniform": [0.001, 0.1]},
                                            "train.batch_size": {"choice": [32, 64]}}))
    first = trials(spec, ROOT / "params.yaml")
    assert first == trials(spec, ROOT / "params.yaml") and len(first) == 3
    assert all(0.001 <= t["train.lr"] <= 0.1 for t in first)
    assert set_args({"train.lr": 0.01, "train.model": "lenet"}) == [
        "-S", "train.lr=0.01", "-S", "train.model=lenet"]
    bad = load_spec(spec_file(tmp_path, **{"train.lr": {"uniform": [-1, -0.5]}}))
    with pytest.raises(ParamsError, match=r"trial 1: train\.lr"):
        trials(bad, ROOT / "params.yaml")
    with pytest.raises(ParamsError, match="exactly one of"):
        load_spec(spec_file(tmp_path, **{"train.lr": {"uniform": [0, 1], "randint": [0, 1]}}))
    path = tmp_path / "test.yaml"
    path.write_text(yaml.safe_dump({"name": "t", "target": "evaluate@train",
                                    "space": {"train.lr": {"uniform": [0.1, 0.2]}}}))
    with pytest.raises(ParamsError, match="scores the test split"):
        load_spec(path)


def test_search_queue_dry_run_prints_the_dvc_commands(tmp_path: Path) -> None:
    done = run([*CLI, "search", "queue", str(ROOT / "experiments" / "search.yaml"),
                "--dry-run"], ROOT)
    lines = done.stdout.strip().splitlines()
    assert len(lines) == yaml.safe_load((ROOT / "experiments" / "search.yaml").read_text())[
        "trials"]
    assert all(line.startswith("dvc exp run --queue train -n lr-search-") for line in lines)
    assert "-S train.lr=" in lines[0]


def test_ci_workflow_gates_on_a_metric_the_pipeline_writes() -> None:
    workflow = yaml.safe_load((ROOT / ".github/workflows/pipeline.yml").read_text())
    steps = [step.get("run", "") for job in workflow["jobs"].values() for step in job["steps"]]
    assert any("bash .ci/run" in step for step in steps)
    compare_step = next(step for step in steps if "cvpipe compare" in step)
    gate = compare_step.split("--fail-on", 1)[1].split()[0]
    path, key, drop = gate.rsplit(":", 2)
    assert path in yaml.safe_load((ROOT / "dvc.yaml").read_text())["metrics"]
    assert key == "rank1" and float(drop) > 0
