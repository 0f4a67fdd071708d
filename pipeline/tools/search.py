"""Random hyperparameter search as DVC experiments, ranked on the validation split.

A search file declares the space: log-uniform ranges for rates and decays (as the course material
recommends: sample the exponent, not the value), uniform and integer ranges, and choices. Each
trial is one set of ``-S key=value`` overrides, validated against the params schema before it is
queued with ``dvc exp run --queue TARGET``. TARGET is a stage before evaluate (``train`` by
default), so the test split stays untouched until the chosen experiment is applied and the whole
pipeline reproduced: tune on val, test once.
"""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline.config import ParamsError, validate


class Distribution(BaseModel):
    """Exactly one of: ``log_uniform: [lo, hi]``, ``uniform: [lo, hi]``, ``randint: [lo, hi]``
    (integers, inclusive), ``choice: [a, b, ...]``."""

    model_config = ConfigDict(extra="forbid")

    log_uniform: tuple[float, float] | None = None
    uniform: tuple[float, float] | None = None
    randint: tuple[int, int] | None = None
    choice: list[Any] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _exactly_one(self) -> Distribution:
        given = [k for k in ("log_uniform", "uniform", "randint", "choice") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("give exactly one of log_uniform, uniform, randint, choice")
        low_high = self.log_uniform or self.uniform or self.randint
        if low_high is not None and low_high[0] > low_high[1]:
            raise ValueError(f"range low > high: {list(low_high)}")
        if self.log_uniform is not None and self.log_uniform[0] <= 0:
            raise ValueError("log_uniform needs a positive lower bound")
        return self

    def sample(self, rng: np.random.Generator) -> Any:
        if self.log_uniform is not None:
            low, high = self.log_uniform
            return _round(math.exp(rng.uniform(math.log(low), math.log(high))))
        if self.uniform is not None:
            return _round(float(rng.uniform(*self.uniform)))
        if self.randint is not None:
            return int(rng.integers(self.randint[0], self.randint[1] + 1))
        return self.choice[int(rng.integers(len(self.choice)))]


def _round(value: float) -> float:
    """Four significant digits: readable ``-S`` values, no false precision."""
    return float(f"{value:.4g}")


class SearchSpec(BaseModel):
    """A random search: what to vary, how many trials, which validation metric ranks them."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_-]+$", description="Experiment name prefix.")
    target: str = Field("train", description="Stage the experiments run up to (not evaluate).")
    metric: str = Field("results/train/metrics.json:val.accuracy",
                        description="FILE:KEY of the validation metric that ranks trials.")
    mode: Literal["max", "min"] = "max"
    trials: int = Field(8, gt=0)
    seed: int = Field(0, ge=0)
    space: dict[str, Distribution] = Field(min_length=1)

    @model_validator(mode="after")
    def _not_the_test_split(self) -> SearchSpec:
        if self.target.startswith(("evaluate", "ensemble")):
            raise ValueError(f"target {self.target!r} scores the test split: search up to a "
                             "training stage and evaluate the chosen experiment once")
        if ":" not in self.metric:
            raise ValueError(f"metric must be FILE:KEY, got {self.metric!r}")
        return self


def load_spec(path: Path) -> SearchSpec:
    """Read and validate a search file; errors name the dotted key."""
    try:
        return SearchSpec.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    except ValidationError as exc:
        lines = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
                 for e in exc.errors()]
        raise ParamsError(lines) from None


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    node = data
    *parents, leaf = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def trials(spec: SearchSpec, params_file: Path) -> list[dict[str, Any]]:
    """The trials' overrides, each checked against the params schema (errors name the trial)."""
    rng = np.random.default_rng(spec.seed)
    base = yaml.safe_load(params_file.read_text(encoding="utf-8")) or {}
    out = []
    for number in range(1, spec.trials + 1):
        overrides = {key: dist.sample(rng) for key, dist in spec.space.items()}
        data = copy.deepcopy(base)
        for key, value in overrides.items():
            _set(data, key, value)
        try:
            validate(data)
        except ParamsError as exc:
            raise ParamsError([f"trial {number}: {line}" for line in exc.lines]) from None
        out.append(overrides)
    return out


def experiment_name(spec: SearchSpec, number: int) -> str:
    return f"{spec.name}-{number:02d}"


def set_args(overrides: dict[str, Any]) -> list[str]:
    """``-S key=value`` arguments; values as JSON, which DVC reads as YAML."""
    args = []
    for key, value in overrides.items():
        args += ["-S", f"{key}={value if isinstance(value, str) else json.dumps(value)}"]
    return args


def exp_run_command(spec: SearchSpec, number: int, overrides: dict[str, Any],
                    queue: bool) -> list[str]:
    """``dvc exp run`` for one trial: queued, or run now in a temporary directory."""
    mode = "--queue" if queue else "--temp"
    return [sys.executable, "-m", "dvc", "exp", "run", mode, spec.target,
            "-n", experiment_name(spec, number), *set_args(overrides)]



class TrialFailed(RuntimeError):
    """``dvc exp run`` exited non-zero for a trial."""


def submit(spec: SearchSpec, sets: list[dict[str, Any]], queue: bool, dry_run: bool = False,
           announce: Callable[[list[str]], None] = print) -> None:
    """Queue (or, ``queue`` false, run now) one ``dvc exp run`` per trial in ``sets``.

    ``announce`` receives each command (as ``dvc ...``) before it runs; ``dry_run`` only
    announces. Raises :class:`TrialFailed` at the first trial that fails.
    """
    for number, overrides in enumerate(sets, 1):
        command = exp_run_command(spec, number, overrides, queue=queue)
        announce(["dvc", *command[3:]])
        if not dry_run and subprocess.run(command).returncode != 0:
            raise TrialFailed(f"trial {number} failed")

def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(data, dict):
        return {prefix: data}
    out: dict[str, Any] = {}
    for key, value in data.items():
        out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def experiments(repo: Path) -> list[dict[str, Any]]:
    """Every experiment ``dvc exp show --json`` lists: name, status, flat params and metrics."""
    done = subprocess.run([sys.executable, "-m", "dvc", "exp", "show", "--json"], cwd=repo,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"dvc exp show failed: {done.stderr.strip()}")
    rows = []
    for baseline in json.loads(done.stdout or "[]"):
        for exp in baseline.get("experiments") or []:
            for rev in exp.get("revs") or []:
                data = rev.get("data") or {}
                params = {k: v for src in (data.get("params") or {}).values()
                          for k, v in _flatten(src.get("data") or {}).items()}
                metrics = {f"{path}:{key}": value
                           for path, src in (data.get("metrics") or {}).items()
                           for key, value in _flatten(src.get("data") or {}).items()}
                rows.append({"name": rev.get("name") or exp.get("name") or rev.get("rev"),
                             "rev": rev.get("rev"),
                             "status": data.get("status") or "Success",
                             "params": params, "metrics": metrics})
    return rows


def ranked(spec: SearchSpec, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """This search's experiments, best first by ``spec.metric``; unfinished ones last."""
    mine = [r for r in rows if str(r["name"]).startswith(f"{spec.name}-")]
    scored = [r for r in mine if isinstance(r["metrics"].get(spec.metric), int | float)]
    scored.sort(key=lambda r: r["metrics"][spec.metric], reverse=spec.mode == "max")
    return scored + sorted((r for r in mine if r not in scored), key=lambda r: str(r["name"]))


def table_markdown(spec: SearchSpec, rows: list[dict[str, Any]]) -> str:
    """Rank, name, the metric and every searched param, as Markdown."""
    keys = list(spec.space)
    lines = [f"| rank | experiment | {spec.metric} | " + " | ".join(keys) + " |",
             "|---:|---|---:|" + "---:|" * len(keys)]
    for rank, row in enumerate(rows, 1):
        value = row["metrics"].get(spec.metric)
        shown = f"{value:.4f}" if isinstance(value, int | float) else str(row["status"]).lower()
        cells = [str(row["params"].get(k, "")) for k in keys]
        lines.append(f"| {rank} | {row['name']} | {shown} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
