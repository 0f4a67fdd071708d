"""The per-epoch trial report: a real Keras fit reporting to a real Optuna study."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import optuna
import pytest

from pipeline.io.studies import TRIAL_ENV, open_storage
from pipeline.train.trial_report import trial_callbacks, trial_number


def fit(callbacks: list, epochs: int = 5) -> keras.callbacks.History:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 4)).astype("float32"), rng.integers(0, 2, 64)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model.fit(x, y, validation_data=(x, y), epochs=epochs, verbose=0,
                     callbacks=callbacks)


def study_with_good_trials(url: str) -> optuna.Study:
    """Two finished trials that reached val_accuracy 2.0 (out of reach) at every epoch."""
    study = optuna.create_study(storage=open_storage(url), study_name="s", direction="maximize")
    for _ in range(2):
        trial = study.ask()
        for epoch in range(5):
            trial.report(2.0, epoch)
        study.tell(trial, 2.0)
    return study


def test_the_median_pruner_stops_a_bad_trial_after_its_warmup(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"journal:{tmp_path / 's.journal'}"
    study = study_with_good_trials(url)
    study.ask()  # number 2: experiment s-003
    monkeypatch.setenv(TRIAL_ENV, json.dumps({
        "storage": url, "study": "s", "monitor": "val_accuracy", "pruner": "MedianPruner",
        "pruner_args": {"n_startup_trials": 2, "n_warmup_steps": 1}}))
    history = fit(trial_callbacks("s-003"))
    assert len(history.epoch) == 2  # epoch 0 is warm-up; pruned after epoch 1 of 5
    frozen = study.trials[2]
    assert frozen.user_attrs["pruned_epoch"] == 2
    assert sorted(frozen.intermediate_values) == [0, 1]
    assert frozen.intermediate_values[1] == pytest.approx(history.history["val_accuracy"][1])


def test_no_callback_outside_a_search(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(TRIAL_ENV, raising=False)
    assert trial_callbacks("s-003") == []
    monkeypatch.setenv(TRIAL_ENV, json.dumps({"storage": f"journal:{tmp_path / 'j'}",
                                              "study": "s", "monitor": "val_accuracy"}))
    assert trial_callbacks("") == []
    assert trial_number("lr-search-042") == 41


def test_a_monitor_the_run_does_not_log_is_named(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"journal:{tmp_path / 's.journal'}"
    study_with_good_trials(url).ask()
    monkeypatch.setenv(TRIAL_ENV, json.dumps({"storage": url, "study": "s",
                                              "monitor": "val_auc"}))
    with pytest.raises(KeyError, match="monitor 'val_auc' is not among this run's metrics"):
        fit(trial_callbacks("s-003"), epochs=1)
