"""Ablation studies: knobs from params, user knobs, checks before running, paired SE, and one
real study of DVC experiments (two knobs, two repeats, two workers)."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from pipeline.config import ParamsError
from pipeline.io.errors import InputError
from pipeline.search import ablation
from pipeline.search.ablation import Knob, Plan, Run, knobs_for, paired, parse_knob
from tests.conftest import ROOT


def shipped(**train: object) -> dict:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["train"].update(train)
    return raw


def by_name(knobs: list[Knob]) -> dict[str, Knob]:
    return {k.name: k for k in knobs}


def test_train_presets_turn_off_only_what_is_on() -> None:
    knobs = by_name(knobs_for(shipped()))
    assert list(knobs) == ["augmentation", "dropout", "batch_norm", "l2", "mean_subtraction"]
    # The shipped augmentation rotates and shifts: only those two are turned off.
    assert knobs["augmentation"].changes == {"train.augment.rotation": 0.0,
                                             "train.augment.shift": 0.0}
    # null is the architecture's default, which may be on: it is run.
    assert knobs["dropout"].changes == {"train.arch.dropout": 0.0}
    assert knobs["batch_norm"].changes == {"train.arch.batch_norm": False}
    assert knobs["l2"].changes == {"train.arch.l2": 0.0}
    assert knobs["mean_subtraction"].already_off
    assert knobs["mean_subtraction"].shown() == ("train.preprocess.mean_subtract=false, "
                                                 "train.preprocess.standardize=false")


def test_knobs_already_off_are_marked() -> None:
    raw = shipped(augment={"flip": False, "rotation": 0.0, "shift": 0.0, "zoom": 0.0,
                           "contrast": 0.0},
                  arch={"width": 0.5, "dropout": 0.0, "batch_norm": False, "l2": 0.001},
                  preprocess={"mean_subtract": True})
    knobs = by_name(knobs_for(raw))
    assert knobs["augmentation"].already_off and knobs["dropout"].already_off
    assert knobs["batch_norm"].already_off
    assert knobs["l2"].changes == {"train.arch.l2": 0.0}
    assert knobs["mean_subtraction"].changes == {"train.preprocess.mean_subtract": False}
    standardized = by_name(knobs_for(shipped(preprocess={"mean_subtract": True,
                                                         "standardize": True})))
    assert standardized["mean_subtraction"].changes == {"train.preprocess.mean_subtract": False,
                                                        "train.preprocess.standardize": False}


def test_transfer_targets_ablate_the_pretrained_weights() -> None:
    raw = shipped()
    assert by_name(knobs_for(raw, "train_logreg"))["pretrained_weights"].already_off
    raw["backbone"]["weights"] = "weights/mobilenet.h5"
    knobs = by_name(knobs_for(raw, "finetune"))
    assert knobs["pretrained_weights"].changes == {"backbone.weights": "none"}
    assert knobs["dropout"].changes == {"finetune.head.dropout": 0.0}
    assert knobs["augmentation"].already_off


def test_user_knobs_are_parsed_as_yaml() -> None:
    assert parse_knob("dropout") == ("dropout", None)
    assert parse_knob("lr=train.lr=0.01") == ("lr", {"train.lr": 0.01})
    assert parse_knob("small=hdf5.image_size=[14, 14],train.arch.batch_norm=false") == (
        "small", {"hdf5.image_size": [14, 14], "train.arch.batch_norm": False})
    for bad in ("lr=train.lr", "lr=train.lr=", "bad name=train.lr=1", "baseline=train.lr=1",
                "x=train.lr=[1"):
        with pytest.raises(ParamsError):
            parse_knob(bad)
    knobs = by_name(knobs_for(shipped(), "train", ["l2", "lr=train.lr=0.01"]))
    assert list(knobs) == ["l2", "lr"] and knobs["lr"].changes == {"train.lr": 0.01}
    assert knobs_for(shipped(), "train", ["same=train.lr=0.05"])[0].already_off


def test_bad_knobs_raise_params_error_naming_the_key() -> None:
    with pytest.raises(ParamsError) as caught:
        knobs_for(shipped(), "train", ["typo=train.arch.dropuot=0.0"])
    assert caught.value.lines == ["knob typo: train.arch.dropuot: unknown key"]
    with pytest.raises(ParamsError, match=r"knob lr: train\.lr"):
        knobs_for(shipped(), "train", ["lr=train.lr=-1"])
    with pytest.raises(ParamsError, match="no such preset"):
        knobs_for(shipped(), "train", ["pretrained_weights"])
    with pytest.raises(ParamsError, match="given twice"):
        knobs_for(shipped(), "train", ["l2", "l2=train.arch.l2=0.0"])
    with pytest.raises(ParamsError, match="set by each repeat"):
        knobs_for(shipped(), "train", ["seed=base.seed=1"])
    with pytest.raises(ParamsError, match="no preset knobs"):
        knobs_for(shipped(), "dcgan")


def test_paired_standard_error_on_known_numbers() -> None:
    # Differences 0.5, 1, 2: mean 7/6, sample variance 7/12, SE sqrt(7/36).
    change, se, n = paired([1.0, 2.0, 4.0], [0.5, 1.0, 2.0])
    assert n == 3 and change == pytest.approx(7 / 6) and se == pytest.approx(math.sqrt(7 / 36))
    assert paired([0.9], [0.8]) == (pytest.approx(0.1), None, 1)
    # A failed run drops its pair; nothing left: no change.
    assert paired([0.9, None, 0.7], [0.8, 0.8, None]) == (pytest.approx(0.1), None, 1)
    assert paired([None], [0.8]) == (None, None, 0)


def test_table_rows_per_knob() -> None:
    knobs = [Knob("dropout", {"train.arch.dropout": 0.0}, {"train.arch.dropout": 0.3}),
             Knob("l2", {"train.arch.l2": 0.0}, {"train.arch.l2": 0.0})]
    runs = [Run("baseline", 0, "ab-baseline-0", {}, 0.80), Run("baseline", 1, "ab-baseline-1", {}, 0.90),
            Run("dropout", 0, "ab-dropout-0", {}, 0.70), Run("dropout", 1, "ab-dropout-1", {}, 0.85)]
    plan = Plan("train", "results/train/metrics.json:val.accuracy", "ab", [42, 43], knobs, runs)
    summary = ablation.summarise(plan, runs)
    dropout, l2 = summary["knobs"]
    assert dropout["change"] == pytest.approx(-0.075) and dropout["se"] == pytest.approx(0.025)
    assert dropout["mean"] == pytest.approx(0.775) and dropout["was"] == {"train.arch.dropout": 0.3}
    assert l2["state"] == "already off"
    table = ablation.markdown(summary)
    assert "| baseline | (current params) | 0.8500 | | |" in table
    assert "| dropout | train.arch.dropout=0.0 | 0.7750 | -0.0750 | 0.0250 |" in table
    assert "| l2 | train.arch.l2=0.0 | | already off | |" in table
    one = Plan("train", plan.metric, "ab", [42], knobs[:1], [runs[0], runs[2]])
    assert "| -0.1000 | n/a |" in ablation.markdown(ablation.summarise(one, one.runs))


def tiny_repo(root: Path) -> Path:
    """A git repository with the project's dvc.yaml and params.yaml (no DVC runs)."""
    root.mkdir()
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy2(ROOT / name, root / name)
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false",
                 "commit", "-qm", "params"]):
        subprocess.run(cmd, cwd=root, check=True, capture_output=True)
    return root


def test_plan_checks_names_target_and_metric(tmp_path: Path) -> None:
    root = tiny_repo(tmp_path / "repo")
    plan = ablation.plan(root, ["dropout", "mean_subtraction"], repeats=2, prefix="ab")
    assert plan.seeds == [42, 43]
    assert [(r.name, r.overrides) for r in plan.runs] == [
        ("ab-baseline-0", {"base.seed": 42}), ("ab-dropout-0", {"train.arch.dropout": 0.0,
                                                               "base.seed": 42}),
        ("ab-baseline-1", {"base.seed": 43}), ("ab-dropout-1", {"train.arch.dropout": 0.0,
                                                               "base.seed": 43})]
    assert ablation.command(plan, plan.runs[1])[3:] == [
        "--wait-for-lock", "exp", "run", "--temp", "train", "-n", "ab-dropout-0",
        "-S", "train.arch.dropout=0.0", "-S", "base.seed=42"]
    with pytest.raises(InputError, match="every knob is already off"):
        ablation.plan(root, ["mean_subtraction"])
    with pytest.raises(ParamsError, match="test split"):
        ablation.plan(root, target="evaluate")
    with pytest.raises(InputError, match="no such stage"):
        ablation.plan(root, target="trian")
    with pytest.raises(ParamsError, match="FILE:KEY"):
        ablation.plan(root, metric="val.accuracy")
    with pytest.raises(ParamsError, match="no default validation metric"):
        ablation.plan(root, target="extract_features")
    # An experiment of the same name exists: stop before running anything.
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                          text=True, check=True).stdout.strip()
    subprocess.run(["git", "update-ref", f"refs/exps/{head[:2]}/{head[2:]}/ab-dropout-1", head],
                   cwd=root, check=True)
    with pytest.raises(InputError, match="experiment ab-dropout-1 exists already"):
        ablation.plan(root, ["dropout"], repeats=2, prefix="ab")
    assert ablation.plan(root, ["dropout"], repeats=2, prefix="ab2").runs


def test_write_is_one_atomic_set(tmp_path: Path) -> None:
    knobs = [Knob("l2", {"train.arch.l2": 0.0}, {"train.arch.l2": 0.0})]
    runs = [Run("baseline", 0, "ab-baseline-0", {}, 0.8)]
    summary = ablation.summarise(Plan("train", "f.json:k", "ab", [42], knobs, runs), runs)
    md, js = ablation.write(summary, tmp_path / "out")
    assert md.read_text() == ablation.markdown(summary)
    assert json.loads(js.read_text())["knobs"][0]["state"] == "already off"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ab.json", "ab.md"]
