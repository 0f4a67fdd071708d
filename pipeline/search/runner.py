"""Run a study's trials as DVC experiments, on one worker or many.

Each worker thread loops: ask Optuna's study for a trial (the sampler picks its values), run it
as ``dvc exp run --temp TARGET -n STUDY-NNN -S ...`` (a copy of the workspace, so several run at
once and the workspace is untouched), read the validation metric from the experiment's commit,
and tell the study. Trials are numbered by the storage, so workers in other processes or on other
machines sharing it never run the same trial, and together they stop at ``trials``. A trial whose
training callback was told to prune is told ``PRUNED``; one whose ``dvc exp run`` fails, ``FAIL``
(its log stays in ``.cvpipe/search/STUDY/``). With ``push: REMOTE`` each finished trial is
``dvc exp push REMOTE NAME``; a push that fails is announced with DVC's error (which names the
endpoint) and listed in ``push_failures``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from pipeline.config import ParamsError
from pipeline.config.params import Params
from pipeline.io.studies import TRIAL_ENV as ENV
from pipeline.search.experiments import DVC, experiment_metric, set_args
from pipeline.search.space import SearchSpec, TrialSeededSampler, check_space
from pipeline.search.study import DEFAULT_FOLDER, open_storage, open_study


def experiment_name(spec: SearchSpec, number: int) -> str:
    """``STUDY-NNN`` for Optuna's trial ``number`` (counted from 0; names from 001)."""
    return f"{spec.name}-{number + 1:03d}"


def trial_key(spec: SearchSpec) -> str | None:
    """The params key that names the trial (``train.trial``) when the target stage has one."""
    field = Params.model_fields.get(spec.target)
    annotation = getattr(field, "annotation", None)
    if annotation is not None and "trial" in getattr(annotation, "model_fields", {}):
        return f"{spec.target}.trial"
    return None


def trial_env(spec: SearchSpec, url: str) -> dict[str, str]:
    """What the training callback needs to find the trial and build its pruner."""
    config: dict[str, Any] = {"storage": url, "study": spec.name, "monitor": spec.monitor_key}
    if spec.pruner is not None:
        config["pruner"], config["pruner_args"] = spec.pruner.optuna_args()
    return {ENV: json.dumps(config)}


def check(spec: SearchSpec, params_file: Path, url: str) -> optuna.storages.BaseStorage:
    """Everything that can be wrong before a trial runs: the space against the params schema,
    a pruner on a target that reports no epochs, the storage (reached now)."""
    check_space(spec, params_file)
    if spec.pruner is not None and spec.pruner.kind != "none" and trial_key(spec) is None:
        raise ParamsError([f"pruner: target {spec.target!r} reports no epochs to a trial "
                           "(only stages with a `trial` key do: train, detect_train)"])
    return open_storage(url)


@dataclass
class Outcome:
    """One finished trial: its experiment, state and value."""

    number: int
    name: str
    state: str
    value: float | None
    overrides: dict[str, Any]


def push_experiment(root: Path, remote: str, name: str) -> str | None:
    """``dvc exp push REMOTE NAME`` in ``root``; None when it worked, else what went wrong: DVC's
    error lines (an unreachable DVC remote is named by its URL). DVC pushes the git ref before
    the data, so a failed push may leave the experiment on ``remote`` without its outputs; the
    same command, run again once the remote answers, sends them."""
    done = subprocess.run([*DVC, "exp", "push", remote, name], cwd=root, capture_output=True,
                          text=True, check=False)
    if done.returncode == 0:
        return None
    lines = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
    why = " | ".join(lines or done.stderr.strip().splitlines()[-1:]) or "no message"
    return f"dvc exp push {remote} {name} exited {done.returncode}: {why}"


class Runner:
    """Runs ``spec``'s trials in ``root`` against the storage at ``url``."""

    def __init__(self, spec: SearchSpec, root: Path, url: str,
                 announce: Callable[[str], None] = print):
        self.spec, self.root, self.url, self.announce = spec, root, url, announce
        self.logs = root / DEFAULT_FOLDER / spec.name
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self._lock = threading.Lock()
        self.outcomes: list[Outcome] = []
        #: One line per finished trial whose ``dvc exp push`` failed (see push_experiment).
        self.push_failures: list[str] = []

    def study(self) -> optuna.Study:
        """A study object of its own (one per thread: each has its own sampler)."""
        return open_study(self.spec, open_storage(self.url))

    def command(self, name: str, overrides: dict[str, Any]) -> list[str]:
        key = trial_key(self.spec)
        named = {**overrides, key: name} if key else overrides
        # Runs starting together contend for DVC's repository lock: wait for it, don't fail.
        return [*DVC, "--wait-for-lock", "exp", "run", "--temp", self.spec.target, "-n", name,
                *set_args(named)]

    def run_one(self, study: optuna.Study) -> Outcome | None:
        """Ask, run, tell one trial; None when the study has its trials."""
        budget = self.spec.budget()
        if len(study.get_trials(deepcopy=False)) >= budget:
            return None
        trial = study.ask(self.spec.distributions())
        if trial.number >= budget:  # another worker asked the last one at the same moment
            trial.set_user_attr("over_budget", True)
            study.tell(trial, state=TrialState.FAIL)
            return None
        name = experiment_name(self.spec, trial.number)
        overrides = self.spec.overrides(trial.params)
        trial.set_user_attr("experiment", name)
        trial.set_user_attr("overrides", overrides)
        trial.set_user_attr("worker", self.worker)
        self.announce(f"{name}: started  " + "  ".join(f"{k}={v}" for k, v in overrides.items()))
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{name}.log"
        with log.open("w", encoding="utf-8") as out:
            done = subprocess.run(self.command(name, overrides), cwd=self.root, stdout=out,
                                  stderr=subprocess.STDOUT, env={**os.environ,
                                                                 **trial_env(self.spec, self.url)})
        value = (experiment_metric(self.root, name, self.spec.metric_file, self.spec.metric_key)
                 if done.returncode == 0 else None)
        frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)
        pruned = frozen.user_attrs.get("pruned_epoch")
        if done.returncode != 0 or (value is None and pruned is None):
            tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
            why = (f"dvc exp run exited {done.returncode}" if done.returncode
                   else f"no {self.spec.metric} in the experiment")
            trial.set_user_attr("error", why)
            study.tell(trial, state=TrialState.FAIL)
            outcome = Outcome(trial.number, name, "FAIL", None, overrides)
            self.announce(f"{name}: failed ({why}; log {log}): " + " | ".join(tail))
        elif pruned is not None:
            if value is not None:
                trial.set_user_attr("value_when_pruned", value)
            study.tell(trial, state=TrialState.PRUNED)
            outcome = Outcome(trial.number, name, "PRUNED", value, overrides)
            self.announce(f"{name}: pruned after epoch {pruned}")
        else:
            study.tell(trial, value)
            outcome = Outcome(trial.number, name, "COMPLETE", value, overrides)
            self.announce(f"{name}: {self.spec.metric_key} {value:.4f}")
        failed_push = None
        if self.spec.push and outcome.state != "FAIL":
            failed_push = push_experiment(self.root, self.spec.push, name)
            if failed_push:
                self.announce(f"{name}: not shared: {failed_push}")
        with self._lock:
            self.outcomes.append(outcome)
            if failed_push:
                self.push_failures.append(failed_push)
        return outcome

    def _work(self, errors: list[BaseException]) -> None:
        try:
            study = self.study()
            while self.run_one(study) is not None:
                pass
        except BaseException as exc:  # reported by run(); the other workers finish their trial
            errors.append(exc)

    def run(self, workers: int) -> list[Outcome]:
        """Run trials on ``workers`` threads until the study has ``trials``."""
        self.study()  # create it once, before the threads race to
        errors: list[BaseException] = []
        threads = [threading.Thread(target=self._work, args=(errors,), daemon=True)
                   for _ in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        return sorted(self.outcomes, key=lambda o: o.number)


def sample_up_front(spec: SearchSpec) -> list[dict[str, Any]]:
    """``spec.budget()`` trials' values drawn now by the file's sampler (no results to learn
    from): the ``cvpipe search queue`` path, which hands every trial to ``dvc queue`` at once."""
    study = optuna.create_study(direction=spec.direction, sampler=TrialSeededSampler(spec))
    out = []
    for _ in range(spec.budget()):
        trial = study.ask(spec.distributions())
        out.append(spec.overrides(trial.params))
        study.tell(trial, state=TrialState.FAIL)  # drawn, not run: nothing to learn from
    return out
