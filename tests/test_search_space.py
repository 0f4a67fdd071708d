"""Search files: Optuna distributions from old and new spellings, samplers, checks, bad input."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml

from pipeline.config import ParamsError
from pipeline.io.errors import InputError
from pipeline.search.experiments import set_args
from pipeline.search.runner import check, experiment_name, sample_up_front, trial_key
from pipeline.search.space import Distribution, TrialSeededSampler, decode, load_spec
from pipeline.search.study import open_storage, open_study, shown, storage_url
from tests.conftest import ROOT, run

CLI = ["python", "-m", "stages.cli"]


def spec_file(tmp_path: Path, space: dict, **fields) -> Path:
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump({"name": "s", "trials": 3, **fields, "space": space}))
    return path


def test_old_and_new_spellings_become_optuna_distributions() -> None:
    F, Int, C = (optuna.distributions.FloatDistribution, optuna.distributions.IntDistribution,
                 optuna.distributions.CategoricalDistribution)
    assert Distribution(log_uniform=(1e-4, 1e-1)).to_optuna() == F(1e-4, 1e-1, log=True)
    assert Distribution(uniform=(0.0, 0.5)).to_optuna() == F(0.0, 0.5)
    assert Distribution(randint=(2, 4)).to_optuna() == Int(2, 4)
    assert Distribution(choice=["adam", "sgd"]).to_optuna() == C(["adam", "sgd"])
    assert Distribution.model_validate({"float": [0.1, 1], "log": True}).to_optuna() == F(
        0.1, 1.0, log=True)
    assert Distribution.model_validate({"int": [8, 64], "step": 8}).grid() == [8, 16, 24, 32,
                                                                               40, 48, 56, 64]
    assert Distribution.model_validate({"float": [0, 0.5], "step": 0.25}).grid() == [0, 0.25, 0.5]
    assert Distribution.model_validate({"categorical": [1, 2]}).grid() == [1, 2]
    sizes = Distribution(choice=[[32, 32], [64, 64]])
    assert sizes.to_optuna() == C(["[32, 32]", "[64, 64]"])
    assert decode(sizes, "[64, 64]") == [64, 64] and decode(sizes, "[32, 32]") == [32, 32]


def test_the_random_sampler_spreads_log_ranges_over_the_decades(tmp_path: Path) -> None:
    spec = load_spec(spec_file(tmp_path, {"train.lr": {"log_uniform": [1e-5, 1e-1]}}, trials=2000))
    exponents = np.log10([t["train.lr"] for t in sample_up_front(spec)])
    assert exponents.min() >= -5 and exponents.max() <= -1
    assert np.histogram(exponents, bins=4, range=(-5, -1))[0].min() > 400


def test_trials_are_reproducible_and_differ_between_trials(tmp_path: Path) -> None:
    for sampler in ("random", "tpe", "cmaes"):
        spec = load_spec(spec_file(tmp_path, {"train.lr": {"log_uniform": [0.001, 0.1]},
                                              "train.momentum": {"uniform": [0.8, 0.95]}},
                                   sampler=sampler, trials=4))
        first = sample_up_front(spec)
        assert first == sample_up_front(spec) and len(first) == 4, sampler
        assert len({t["train.lr"] for t in first}) == 4, sampler
        assert all(0.001 <= t["train.lr"] <= 0.1 for t in first)


def test_two_studies_sharing_a_storage_draw_by_trial_number(tmp_path: Path) -> None:
    """Workers in two processes share the storage; the values depend on the trial's number."""
    spec = load_spec(spec_file(tmp_path, {"train.lr": {"uniform": [0.0, 1.0]}}, trials=6))
    url = f"journal:{tmp_path / 's.journal'}"
    a, b = open_study(spec, open_storage(url)), open_study(spec, open_storage(url))
    drawn = []
    for study in (a, b, a, b):
        trial = study.ask(spec.distributions())
        drawn.append((trial.number, trial.params["train.lr"]))
        study.tell(trial, 0.5)
    assert [n for n, _ in drawn] == [0, 1, 2, 3] and len({v for _, v in drawn}) == 4
    alone = optuna.create_study(sampler=TrialSeededSampler(spec))
    again = []
    for _ in range(4):
        trial = alone.ask(spec.distributions())
        again.append((trial.number, trial.params["train.lr"]))
        alone.tell(trial, 0.5)
    assert again == drawn


def test_grid_sampler_covers_the_grid_and_caps_the_budget(tmp_path: Path) -> None:
    spec = load_spec(spec_file(tmp_path, {"train.batch_size": {"choice": [32, 64]},
                                          "train.arch.dropout": {"float": [0.0, 0.5], "step": 0.5}},
                               sampler="grid", trials=10))
    assert spec.budget() == 4
    drawn = {(t["train.batch_size"], t["train.arch.dropout"]) for t in sample_up_front(spec)}
    assert drawn == {(b, d) for b in (32, 64) for d in (0.0, 0.5)}
    with pytest.raises(ParamsError, match=r"space\.train\.lr: the grid sampler needs"):
        load_spec(spec_file(tmp_path, {"train.lr": {"log_uniform": [0.01, 0.1]}}, sampler="grid"))


def test_names_keys_and_arguments(tmp_path: Path) -> None:
    spec = load_spec(spec_file(tmp_path, {"train.lr": {"uniform": [0.01, 0.1]}}))
    assert experiment_name(spec, 0) == "s-001" and experiment_name(spec, 41) == "s-042"
    assert trial_key(spec) == "train.trial"
    assert trial_key(spec.model_copy(update={"target": "train_logreg"})) is None
    assert spec.monitor_key == "val_accuracy"
    assert set_args({"train.lr": 0.01, "train.model": "lenet"}) == [
        "-S", "train.lr=0.01", "-S", "train.model=lenet"]
    assert storage_url(spec, tmp_path) == f"journal:{tmp_path / '.cvpipe/search/s.journal'}"
    assert storage_url(spec, tmp_path, "sqlite:///x.db") == f"sqlite:///{tmp_path / 'x.db'}"
    assert shown("postgresql://me:secret@db/x") == "postgresql://me:***@db/x"


@pytest.mark.parametrize(("space", "fields", "message"), [
    ({"train.lrr": {"uniform": [0.1, 0.2]}}, {}, r"space\.train\.lrr: .*train\.lrr"),
    ({"train.lr": {"uniform": [0.2, 0.1]}}, {}, r"space\.train\.lr: empty range: \[0\.2, 0\.1\]"),
    ({"train.lr": {"uniform": [0.1, 0.1]}}, {}, r"empty range"),
    ({"train.model": {"choice": []}}, {}, r"space\.train\.model: empty range: no choices"),
    ({"train.lr": {"uniform": [-1, -0.5]}}, {}, r"space\.train\.lr: train\.lr"),
    ({"train.lr": {"uniform": [0, 1], "randint": [0, 1]}}, {}, "exactly one of"),
    ({"train.lr": {"log_uniform": [0, 1]}}, {}, "positive lower bound"),
    ({"train.lr": {"uniform": [0.1, 0.2]}}, {"target": "evaluate@train"}, "scores the test split"),
    ({"train.lr": {"uniform": [0.1, 0.2]}}, {"sampler": "bayes"}, "sampler"),
    ({"train.lr": {"uniform": [0.1, 0.2]}}, {"pruner": {"kind": "threshold"}}, "lower or upper"),
    ({"train.lr": {"uniform": [0.1, 0.2]}}, {"sampler": "tpe", "sampler_options": {"x": 1}},
     "sampler_options"),
    ({"train_logreg.grid.C": {"choice": [[0.1], [1.0]]}},
     {"target": "train_logreg", "pruner": {"kind": "median"}}, "reports no epochs"),
])
def test_bad_search_files_name_the_key(tmp_path: Path, space: dict, fields: dict,
                                       message: str) -> None:
    with pytest.raises(ParamsError, match=message):
        spec = load_spec(spec_file(tmp_path, space, **fields))
        check(spec, ROOT / "params.yaml", f"journal:{tmp_path / 'j'}")
        sample_up_front(spec)


def test_an_unreachable_database_is_named_before_anything_runs(tmp_path: Path) -> None:
    url = "postgresql://cvpipe:hunter2@127.0.0.1:9/nothing"  # port 9: nothing listens
    with pytest.raises(InputError, match=r"storage postgresql://cvpipe:\*\*\*@127\.0\.0\.1:9/"
                                         r"nothing: cannot be opened"):
        open_storage(url)
    spec = spec_file(tmp_path, {"train.lr": {"uniform": [0.01, 0.1]}})
    done = run([*CLI, "search", "run", str(spec), "--storage", url, "--params",
                str(ROOT / "params.yaml")], tmp_path, check=False)
    assert done.returncode == 2, done.stderr
    assert "cannot be opened" in done.stderr and "hunter2" not in done.stderr + done.stdout
    assert not (tmp_path / ".cvpipe").exists()  # nothing was started


def test_bad_files_exit_2_from_the_command(tmp_path: Path) -> None:
    spec = spec_file(tmp_path, {"train.lrr": {"uniform": [0.1, 0.2]}})
    for command in ("run", "queue"):
        done = run([*CLI, "search", command, str(spec), "--params", str(ROOT / "params.yaml")],
                   tmp_path, check=False)
        assert done.returncode == 2 and "space.train.lrr" in done.stderr, done.stderr
    assert not (tmp_path / ".cvpipe").exists()


def test_queue_dry_run_prints_the_dvc_commands() -> None:
    done = run([*CLI, "search", "queue", str(ROOT / "experiments" / "search.yaml"),
                "--dry-run"], ROOT)
    lines = done.stdout.strip().splitlines()
    assert len(lines) == yaml.safe_load((ROOT / "experiments" / "search.yaml").read_text())[
        "trials"]
    assert all(line.startswith("dvc exp run --queue train -n lr-search-") for line in lines)
    assert "-S train.lr=" in lines[0]
    assert math.isfinite(float(lines[0].split("train.lr=")[1].split()[0]))
