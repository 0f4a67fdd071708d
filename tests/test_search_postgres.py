"""Optuna studies in a real PostgreSQL server (tests/postgres_server.py): workers in separate
processes sharing one study, a wrong password, and `cvpipe search show --storage`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from optuna.trial import TrialState

from pipeline.io.errors import InputError
from pipeline.io.studies import open_storage, shown
from pipeline.search.runner import experiment_name
from pipeline.search.space import SearchSpec, load_spec
from pipeline.search.study import open_study
from tests.conftest import venv_env

SPACE = {"train.lr": {"float": [1e-4, 1e-1], "log": True}, "train.batch_size": {"categorical": [16, 32]}}

#: One worker process: import, wait for the go file (the study exists then), open the study, and
#: ask and tell trials until the budget is reached the way Runner.run_one does; prints the numbers
#: it told.
WORKER = """
import json, sys, time
from pathlib import Path
from optuna.trial import TrialState
from pipeline.io.studies import open_storage
from pipeline.search.space import load_spec
from pipeline.search.study import open_study

spec_path, url, name, folder = sys.argv[1:5]
(Path(folder) / f"ready-{name}").touch()
deadline = time.monotonic() + 60
while not (Path(folder) / "go").exists() and time.monotonic() < deadline:
    time.sleep(0.01)
spec = load_spec(Path(spec_path))
study = open_study(spec, open_storage(url))
told, budget = [], spec.budget()
while len(study.get_trials(deepcopy=False)) < budget:
    trial = study.ask(spec.distributions())
    if trial.number >= budget:
        trial.set_user_attr("over_budget", True)
        study.tell(trial, state=TrialState.FAIL)
        break
    trial.set_user_attr("worker", name)
    time.sleep(0.05)  # the trial runs: the other worker asks meanwhile
    study.tell(trial, trial.params["train.lr"])
    told.append(trial.number)
print(json.dumps(told))
"""


def write_spec(folder: Path, name: str, trials: int) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "trials": trials, "space": SPACE}, sort_keys=False))
    return path


def test_two_processes_share_a_study_without_running_a_trial_twice(tmp_path: Path,
                                                                   postgres_url: str) -> None:
    spec_path = write_spec(tmp_path, "pg-race", trials=8)
    spec = load_spec(spec_path)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    workers = {name: subprocess.Popen([sys.executable, str(script), str(spec_path), postgres_url,
                                       name, str(tmp_path)], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, env=venv_env())
               for name in ("a", "b")}
    try:
        open_study(spec, open_storage(postgres_url))  # created here (while they import), joined there
        deadline = time.monotonic() + 60
        while not all((tmp_path / f"ready-{n}").exists() for n in workers) and time.monotonic() < deadline:
            assert all(w.poll() is None for w in workers.values()), "a worker exited early"
            time.sleep(0.01)
        (tmp_path / "go").touch()
        told = {}
        for name, worker in workers.items():
            out, err = worker.communicate(timeout=60)
            assert worker.returncode == 0, err
            told[name] = json.loads(out.strip().splitlines()[-1])
    finally:
        for worker in workers.values():
            if worker.poll() is None:
                worker.kill()
    assert told["a"] and told["b"], told  # both took part
    assert not set(told["a"]) & set(told["b"])
    assert sorted(told["a"] + told["b"]) == list(range(spec.budget()))
    trials = open_study(spec, open_storage(postgres_url)).get_trials(deepcopy=False)
    counted = [t for t in trials if not t.user_attrs.get("over_budget")]
    assert sorted(t.number for t in counted) == list(range(spec.budget()))
    assert all(t.state == TrialState.COMPLETE for t in counted)
    assert all(t.number in told[t.user_attrs["worker"]] for t in counted)
    assert all(t.state == TrialState.FAIL and t.number >= spec.budget()
               for t in trials if t.user_attrs.get("over_budget"))


def test_a_wrong_password_names_the_url_masked(postgres_url: str) -> None:
    password = postgres_url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    wrong = postgres_url.replace(f":{password}@", ":not-the-password@")
    with pytest.raises(InputError) as caught:
        open_storage(wrong)
    message = str(caught.value)
    assert shown(wrong) in message and ":***@127.0.0.1" in message
    assert "not-the-password" not in message and password not in message
    assert "password authentication failed" in message


def test_search_show_ranks_the_trials_stored_in_postgres(tmp_path: Path,
                                                         postgres_url: str) -> None:
    spec_path = write_spec(tmp_path, "pg-show", trials=3)
    spec = SearchSpec.model_validate(yaml.safe_load(spec_path.read_text()))
    study = open_study(spec, open_storage(postgres_url))
    for value in (0.5, 0.9, 0.7):
        trial = study.ask(spec.distributions())
        trial.set_user_attr("experiment", experiment_name(spec, trial.number))
        trial.set_user_attr("overrides", spec.overrides(trial.params))
        study.tell(trial, value)
    done = subprocess.run([sys.executable, "-m", "stages.cli", "search", "show", str(spec_path),
                           "--storage", postgres_url], cwd=tmp_path, capture_output=True,
                          text=True, env=venv_env(), timeout=60)
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and "pg-show-" in line]
    assert [row.split(" | ")[1:4] for row in rows] == [
        ["pg-show-002", "complete", "0.9000"], ["pg-show-003", "complete", "0.7000"],
        ["pg-show-001", "complete", "0.5000"]]
    lr = study.trials[1].user_attrs["overrides"]["train.lr"]
    assert rows[0].split(" | ")[4] == str(lr)
    assert "Best on val: pg-show-002" in done.stdout
