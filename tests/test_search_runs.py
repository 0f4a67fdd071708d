"""`cvpipe search run` for real: trials as DVC experiments, two worker processes, pruning.

One small repository (reproduced up to train) for the module; each test uses its own study.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import optuna
import pytest
import yaml

from pipeline.search.experiments import experiment_ref, experiments
from pipeline.search.space import load_spec
from pipeline.search.study import open_storage, open_study, storage_url
from tests.conftest import run, venv_env
from tests.search_repo import CLI, DVC, search_repo, write_spec

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return search_repo(tmp_path_factory.mktemp("search"))


def study_of(root: Path, spec_path: Path, url: str | None = None) -> optuna.Study:
    spec = load_spec(spec_path)
    return open_study(spec, open_storage(storage_url(spec, root, url)))


def test_two_worker_processes_share_one_study(repo: Path) -> None:
    spec = write_spec(repo, "two", {"train.lr": {"log_uniform": [0.01, 0.2]},
                                    "train.batch_size": {"choice": [32, 64]}},
                      trials=2, sampler="tpe", sampler_options={"n_startup_trials": 1})
    workers = [subprocess.Popen([*CLI, "search", "run", str(spec)], cwd=repo, env=venv_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    outputs = [w.communicate(timeout=600) for w in workers]
    assert all(w.returncode == 0 for w in workers), outputs
    trials = study_of(repo, spec).get_trials()
    assert sorted(t.number for t in trials) == [0, 1]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials), trials
    names = [t.user_attrs["experiment"] for t in trials]
    assert sorted(names) == ["two-001", "two-002"]
    # Each trial was run by one worker: its start line is in exactly one process's output.
    for name in names:
        assert sum(f"{name}: started" in out for out, _ in outputs) == 1, (name, outputs)
    # Every trial is a DVC experiment with the trial's values, and its metric is the study's.
    rows = {r["name"]: r for r in experiments(repo) if str(r["name"]).startswith("two-")}
    assert sorted(rows) == sorted(names)
    for trial in trials:
        row = rows[trial.user_attrs["experiment"]]
        assert row["params"]["train.lr"] == trial.user_attrs["overrides"]["train.lr"]
        assert row["params"]["train.trial"] == trial.user_attrs["experiment"]
        assert row["metrics"]["results/train/metrics.json:val.accuracy"] == pytest.approx(
            trial.value)
    diff = json.loads(run([*DVC, "exp", "diff", *names, "--json"], repo).stdout)
    assert "train.lr" in diff["params"]["params.yaml"]
    # The workspace is untouched and the test split was never scored by a trial.
    assert yaml.safe_load((repo / "params.yaml").read_text())["train"]["trial"] == ""
    assert not (repo / "results/evaluate").exists()
    table = run([*CLI, "search", "show", str(spec)], repo).stdout
    best = max(trials, key=lambda t: t.value).user_attrs["experiment"]
    assert table.splitlines()[2].startswith(f"| 1 | {best} | complete |")
    assert f"dvc exp apply {best} && dvc repro" in table
    report = run([*CLI, "search", "report", str(spec)], repo).stdout
    assert "parallel.png" in report and (repo / "experiments/two/history.png").stat().st_size
    assert best in (repo / "experiments/two/ranked.md").read_text()
    # The chosen trial reproduces: applied and reproduced, train gives the trial's value again.
    # (This repository ran only up to train, so apply reports the other stages' outputs as
    # missing.)
    run([*DVC, "exp", "apply", best], repo, check=False)
    try:
        assert yaml.safe_load((repo / "params.yaml").read_text())["train"]["trial"] == best
        run([*DVC, "repro", "train"], repo)
        again = json.loads((repo / "results/train/metrics.json").read_text())["val"]["accuracy"]
        assert again == pytest.approx(max(t.value for t in trials), abs=1e-6)
    finally:
        run(["git", "checkout", "--", "."], repo)
        run([*DVC, "checkout", "--force", "train"], repo, check=False)


@pytest.fixture(scope="module")
def storage(request: pytest.FixtureRequest) -> str | None:
    """The session's PostgreSQL server where one can be started, else the default journal."""
    try:
        return request.getfixturevalue("postgres_url")
    except pytest.skip.Exception:
        return None


def test_a_pruned_trial_stops_at_once_and_is_marked(repo: Path, storage: str | None) -> None:
    """Through PostgreSQL when a server can be started: the trial's callback, in DVC's copy of
    the workspace, reports to the database and is told to stop there."""
    # The threshold pruner prunes any trial whose val accuracy is below 1.01: all of them,
    # after their first epoch of two.
    spec = write_spec(repo, "prune", {"train.lr": {"uniform": [0.04, 0.06]}}, trials=1,
                      pruner={"kind": "threshold", "lower": 1.01})
    done = run([*CLI, "search", "run", str(spec), *(["--storage", storage] if storage else [])],
               repo)
    if storage:
        assert "storage postgresql://" in done.stdout and ":***@" in done.stdout
    assert "prune-001: pruned after epoch 1" in done.stdout, done.stdout
    (trial,) = study_of(repo, spec, storage).get_trials()
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert trial.user_attrs["pruned_epoch"] == 1 and list(trial.intermediate_values) == [0]
    ref = experiment_ref(repo, "prune-001")
    assert ref is not None
    metrics = json.loads(run(["git", "show", f"{ref}:results/train/metrics.json"], repo).stdout)
    assert metrics["step"] == 0  # the experiment recorded one epoch, not two
    shown = run([*CLI, "search", "show", str(spec), *(["--storage", storage] if storage else [])],
                repo).stdout
    assert "| 1 | prune-001 | pruned (epoch 1) |" in shown


def test_ablate_one_knob_over_two_seeds(repo: Path) -> None:
    before = (repo / "params.yaml").read_bytes()
    done = run([*CLI, "ablate", "lr=train.lr=0.005", "augmentation", "--repeats", "2",
                "--workers", "2", "--prefix", "abl"], repo)
    summary = json.loads((repo / "results/ablate/abl.json").read_text())
    shown = {r["name"]: r for r in experiments(repo)}
    assert {"abl-baseline-0", "abl-baseline-1", "abl-lr-0", "abl-lr-1"} <= set(shown)
    assert shown["abl-lr-1"]["params"]["train.lr"] == 0.005
    assert shown["abl-lr-1"]["params"]["base.seed"] == shown["abl-baseline-0"]["params"][
        "base.seed"] + 1
    (lr,) = [k for k in summary["knobs"] if k["name"] == "lr"]
    values = [shown[f"abl-lr-{r}"]["metrics"][summary["metric"]] for r in (0, 1)]
    base = [shown[f"abl-baseline-{r}"]["metrics"][summary["metric"]] for r in (0, 1)]
    diffs = [v - b for v, b in zip(values, base, strict=True)]
    assert lr["change"] == pytest.approx(sum(diffs) / 2)
    assert lr["se"] == pytest.approx(abs(diffs[0] - diffs[1]) / 2)  # sd/sqrt(2) for n = 2
    assert "already off" in done.stdout  # the shrunk config has no augmentation
    row = next(line for line in done.stdout.splitlines() if line.startswith("| lr |"))
    assert f"{lr['change']:+.4f} | {lr['se']:.4f} |" in row
    assert (repo / "params.yaml").read_bytes() == before
