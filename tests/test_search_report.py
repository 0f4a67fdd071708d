"""The results of a search: ranked table, Optuna importances, history, plots DVC draws.

Studies are real Optuna studies in memory, filled by ask/tell with the user attrs the runner
sets (experiment, overrides, pruned_epoch, value_when_pruned); `dvc plots show` runs for real in
a temporary git + DVC repository.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import TrialState
from PIL import Image

from pipeline.io.errors import InputError
from pipeline.search.report import FILES, history_rows, importances, write_report
from pipeline.search.runner import experiment_name
from pipeline.search.space import SearchSpec
from tests.conftest import run

DVC = [sys.executable, "-m", "dvc"]
SPACE = {"train.lr": {"log_uniform": [0.001, 0.1]}, "train.momentum": {"uniform": [0.8, 0.95]},
         "train.batch_size": {"choice": [32, 64]}}


def make_spec(name: str, mode: str = "max") -> SearchSpec:
    return SearchSpec.model_validate({"name": name, "mode": mode, "trials": 10, "space": SPACE})


def make_study(spec: SearchSpec, outcomes: list[Any]) -> optuna.Study:
    """One trial per outcome, asked and told as the runner does: a number is the metric (or a
    function of the drawn overrides), "pruned" stops at epoch 1, "fail" fails, "over" is an
    over-budget ask."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction=spec.direction,
                                sampler=optuna.samplers.RandomSampler(seed=1))
    for outcome in outcomes:
        trial = study.ask(spec.distributions())
        if outcome == "over":
            trial.set_user_attr("over_budget", True)
            study.tell(trial, state=TrialState.FAIL)
            continue
        overrides = spec.overrides(trial.params)
        trial.set_user_attr("experiment", experiment_name(spec, trial.number))
        trial.set_user_attr("overrides", overrides)
        if outcome == "pruned":
            trial.set_user_attr("pruned_epoch", 1)
            trial.set_user_attr("value_when_pruned", 0.1)
            study.tell(trial, state=TrialState.PRUNED)
        elif outcome == "fail":
            study.tell(trial, state=TrialState.FAIL)
        else:
            study.tell(trial, outcome(overrides) if callable(outcome) else outcome)
    return study


def by_momentum(overrides: dict[str, Any]) -> float:
    """A metric that only the momentum moves: fANOVA must rank it first."""
    return 0.5 + 2 * (overrides["train.momentum"] - 0.8)


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A git + DVC repository with two reports: ``experiments/demo`` (8 trials: completed,
    pruned, failed, an over-budget ask) and ``experiments/single`` (one completed trial, over a
    folder holding plots of an earlier, larger report)."""
    repo = tmp_path_factory.mktemp("report") / "repo"
    repo.mkdir()
    run(["git", "init", "-q"], repo)
    run([*DVC, "init", "-q"], repo)
    spec = make_spec("demo")
    study = make_study(spec, [by_momentum, by_momentum, "pruned", by_momentum, "fail",
                              by_momentum, by_momentum, by_momentum, "over"])
    written = write_report(spec, study, repo / "experiments" / "demo")
    single_spec = make_spec("single")
    single = repo / "experiments" / "single"
    single.mkdir()
    for stale in ("importances.png", "parallel.png"):
        (single / stale).write_bytes(b"old")
    single_written = write_report(single_spec, make_study(single_spec, [0.7, "fail"]), single)
    return {"repo": repo, "spec": spec, "study": study, "written": written,
            "single": single_written}


def test_the_ranked_table_puts_completed_trials_best_first_then_pruned_then_failed(
        reports: dict[str, Any]) -> None:
    text = reports["written"]["ranked.md"].read_text()
    rows = [line.split("|")[1:-1] for line in text.splitlines() if line.startswith("| ")][1:]
    names = [cells[1].strip() for cells in rows]
    states = [cells[2].strip() for cells in rows]
    values = [float(cells[3]) for cells in rows if cells[2].strip() == "complete"]
    assert states == ["complete"] * 6 + ["pruned (epoch 1)", "fail"]
    assert values == sorted(values, reverse=True)
    assert names[6:] == ["demo-003", "demo-005"] and len(set(names)) == 8  # over-budget left out
    assert f"Best trial: {names[0]}" in text
    assert f"`dvc exp apply {names[0]} && dvc repro`" in text


def test_queued_experiments_rank_scored_first_best_first_then_by_dvc_state() -> None:
    """A queued search has no study: its rows come from `dvc exp show`'s records."""
    from pipeline.search.table import experiment_rows, markdown

    spec = make_spec("q", mode="min")
    metric = spec.metric
    found = [{"name": "q-001", "status": "Success", "metrics": {metric: 0.5}, "params": {}},
             {"name": "q-002", "status": "Queued", "metrics": {}, "params": {"train.lr": 0.01}},
             {"name": "q-003", "status": "Success", "metrics": {metric: 0.2}, "params": {}}]
    ranked = experiment_rows(spec, found)
    assert [(r["name"], r["state"]) for r in ranked] == [
        ("q-003", "complete"), ("q-001", "complete"), ("q-002", "queued")]
    assert "| 3 | q-002 | queued |  | 0.01 |" in markdown(spec, ranked)


def test_every_file_is_written_and_the_history_tracks_the_best_so_far(
        reports: dict[str, Any]) -> None:
    written, folder = reports["written"], reports["repo"] / "experiments" / "demo"
    assert set(written) == set(FILES)
    assert sorted(p.name for p in folder.iterdir()) == sorted(FILES)  # no temporary files left
    for name in ("history.png", "importances.png", "parallel.png"):
        with Image.open(written[name]) as image:
            assert image.format == "PNG" and image.width > 400 and image.height > 200
    history = json.loads(written["history.json"].read_text())
    assert [r["trial"] for r in history] == list(range(8))
    assert [r["experiment"] for r in history] == [f"demo-{i:03d}" for i in range(1, 9)]
    assert [r["state"] for r in history].count("pruned") == 1
    assert history[2]["value"] is None and history[2]["value_when_pruned"] == 0.1
    running = None
    for row in history:
        if row["state"] == "complete":
            running = row["value"] if running is None else max(running, row["value"])
        assert row["best"] == running
    minimise = make_spec("m", mode="min")
    best = [r["best"] for r in history_rows(minimise, make_study(minimise, [0.5, "fail", 0.7,
                                                                            0.2]))]
    assert best == [0.5, 0.5, 0.5, 0.2]


def test_importances_sum_to_one_rank_the_param_that_matters_and_repeat(
        reports: dict[str, Any]) -> None:
    found = json.loads(reports["written"]["importances.json"].read_text())
    assert "note" not in found and found["completed_trials"] == 6
    shares = {r["param"]: r["importance"] for r in found["importances"]}
    assert set(shares) == set(SPACE)
    assert sum(shares.values()) == pytest.approx(1.0, abs=1e-6)
    assert min(shares.values()) >= 0 and max(shares, key=shares.get) == "train.momentum"
    assert importances(reports["spec"], reports["study"]) == found  # seeded fANOVA: same numbers


def test_one_completed_trial_gives_a_note_and_no_importance_or_parallel_plot(
        reports: dict[str, Any]) -> None:
    single = reports["single"]
    found = json.loads(single["importances.json"].read_text())
    assert found["importances"] == [] and "at least 2" in found["note"]
    assert "importances.png" not in single and "parallel.png" not in single
    folder = single["dvc.yaml"].parent
    assert not (folder / "importances.png").exists() and not (folder / "parallel.png").exists()
    assert (folder / "history.png").exists()
    assert "Best trial: single-001" in single["ranked.md"].read_text()
    spec = make_spec("same")
    assert "same val.accuracy" in importances(spec, make_study(spec, [0.5, 0.5, 0.5]))["note"]
    with pytest.raises(InputError, match="no trials"):
        write_report(spec, make_study(spec, []), folder / "none")


def test_dvc_plots_show_finds_every_plot_of_the_reports(reports: dict[str, Any]) -> None:
    repo = reports["repo"]
    declared = yaml.safe_load((repo / "experiments/demo/dvc.yaml").read_text())
    assert list(declared) == ["plots"]
    shown = json.loads(run([*DVC, "plots", "show", "--json"], repo).stdout)
    assert not shown.get("errors"), shown["errors"]
    data = shown["data"]
    images = {f"experiments/{study}/{name}" for study in ("demo", "single")
              for name in ("history.png", "importances.png", "parallel.png")}
    images -= {"experiments/single/importances.png", "experiments/single/parallel.png"}
    assert images <= set(data)
    for image in images:
        assert data[image][0]["type"] == "image" and Path(data[image][0]["url"]).exists()
    history = data["demo optimisation history"][0]["content"]["data"]["values"]
    assert {r["field"] for r in history} == {"value", "best"} and len(history) == 16
    bars = data["demo param importances"][0]["content"]["data"]["values"]
    assert {r["param"] for r in bars} == set(SPACE)
    assert "single optimisation history" in data and "single param importances" not in data
