"""Ablation studies: turn off one knob at a time, each run a DVC experiment, paired by seed.

From the current params and a training stage, each knob (augmentation, dropout, batch norm, L2,
mean subtraction, pretrained weights, or one given as ``NAME=KEY=VALUE,...``) becomes the
overrides that turn it off. The baseline and every knob run ``repeats`` times as
``dvc exp run --temp TARGET -n PREFIX-KNOB-R -S ...`` (DVC copies the workspace, so runs go in
parallel on threads and ``params.yaml`` is untouched), repeat ``r`` with ``base.seed`` = the
current seed + ``r``. A knob's effect is the mean over repeats of (knob run - baseline run of the
same seed) on the validation metric, with the standard error of that mean difference. PyYAML
reads the knob values, pydantic (the params schema) checks every override set before anything
runs.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.config import ParamsError, validate
from pipeline.io.atomic import atomic_paths
from pipeline.io.errors import InputError
from pipeline.search.experiments import DVC, experiment_metric, experiment_ref, metric_parts, set_args
from pipeline.search.space import check_overrides

SEED_KEY = "base.seed"
BASELINE = "baseline"
DEFAULT_PREFIX = "ablate"
DEFAULT_OUT = Path("results") / "ablate"
LOG_FOLDER = Path(".cvpipe") / "ablate"
NAME = re.compile(r"^[A-Za-z0-9_]+$")
PREFIX = re.compile(r"^[A-Za-z0-9_-]+$")
#: libyaml's loader where PyYAML has it (C, not Python: dvc.yaml is long).
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: Target stage -> its validation metric (FILE:KEY).
DEFAULT_METRICS: dict[str, str] = {
    "train": "results/train/metrics.json:val.accuracy",
    "detect_train": "results/detect_train/metrics.json:val.accuracy",
    "finetune": "results/finetune/metrics.json:val.accuracy",
    "train_logreg": "results/train_logreg/metrics.json:val_accuracy",
}

_AUGMENT_OFF = {"flip": False, "rotation": 0.0, "shift": 0.0, "zoom": 0.0, "contrast": 0.0,
                "vertical_flip": False, "shear": 0.0, "brightness": 0.0, "saturation": 0.0,
                "hue": 0.0, "noise": 0.0, "rand_augment": 0, "mixup_alpha": 0.0,
                "cutmix_alpha": 0.0}
_WEIGHTS_OFF = {"backbone.weights": "none"}


def _training_knobs(section: str) -> dict[str, dict[str, Any]]:
    return {
        "augmentation": {f"{section}.augment.{k}": v for k, v in _AUGMENT_OFF.items()},
        "dropout": {f"{section}.arch.dropout": 0.0},
        "batch_norm": {f"{section}.arch.batch_norm": False},
        "l2": {f"{section}.arch.l2": 0.0},
        # standardisation divides what mean subtraction centred: it goes with it
        "mean_subtraction": {f"{section}.preprocess.mean_subtract": False,
                             f"{section}.preprocess.standardize": False},
    }


#: Target stage -> knob name -> the overrides that turn it off.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "train": _training_knobs("train"),
    "detect_train": _training_knobs("detect_train"),
    "finetune": {
        "pretrained_weights": _WEIGHTS_OFF,
        "augmentation": {f"finetune.augment.{k}": v for k, v in _AUGMENT_OFF.items()},
        "dropout": {"finetune.head.dropout": 0.0},
    },
    "extract_features": {"pretrained_weights": _WEIGHTS_OFF},
    "train_logreg": {"pretrained_weights": _WEIGHTS_OFF},
}

_MISSING = object()


def dotted_get(data: dict[str, Any], dotted: str) -> Any:
    """``a.b.c`` of a nested mapping; a private sentinel when absent."""
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _same(now: Any, off: Any) -> bool:
    """``now`` is already ``off`` (``0`` is ``0.0``, but ``false`` is not ``0`` nor ``null``)."""
    if now is _MISSING:
        return False
    if isinstance(now, bool) or isinstance(off, bool):
        return type(now) is type(off) and now == off
    return bool(now == off)


@dataclass(frozen=True)
class Knob:
    """A knob and the overrides that turn it off; ``current`` holds those keys' values now."""

    name: str
    overrides: dict[str, Any]
    current: dict[str, Any] = field(default_factory=dict)

    @property
    def changes(self) -> dict[str, Any]:
        """The overrides that change something (a ``null`` default counts as on)."""
        return {k: v for k, v in self.overrides.items()
                if not _same(self.current.get(k, _MISSING), v)}

    @property
    def already_off(self) -> bool:
        return not self.changes

    def shown(self) -> str:
        """``key=value`` pairs, the values as YAML reads them (``false``, ``0.0``, ``none``)."""
        return ", ".join(f"{k}={_text(v)}" for k, v in (self.changes or self.overrides).items())


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def parse_knob(spec: str) -> tuple[str, dict[str, Any] | None]:
    """``NAME`` (a preset: overrides None) or ``NAME=KEY=VALUE[,KEY=VALUE...]``; values as YAML
    (``[64, 64]`` may hold commas)."""
    name, sep, rest = spec.partition("=")
    name = name.strip()
    if not NAME.match(name) or name == BASELINE:
        raise ParamsError([f"knob {spec!r}: the name must be letters, digits or _ "
                           f"(and not {BASELINE!r})"])
    if not sep:
        return name, None
    overrides: dict[str, Any] = {}
    for pair in re.split(r",(?=\s*[A-Za-z_][\w.]*=)", rest):
        key, eq, text = pair.partition("=")
        key = key.strip()
        if not eq or not key or not text.strip():
            raise ParamsError([f"knob {name}: expected KEY=VALUE, got {pair!r}"])
        try:
            overrides[key] = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ParamsError([f"knob {name}: {key}: not a YAML value: {exc}"]) from None
    return name, overrides


def load_raw(params_file: Path) -> dict[str, Any]:
    """The params file as a mapping (validated: a bad file raises :class:`ParamsError`)."""
    try:
        raw = yaml.load(params_file.read_text(encoding="utf-8"), Loader=LOADER) or {}
    except OSError as exc:
        raise InputError(f"cannot read {params_file}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ParamsError([f"{params_file}: not YAML: {exc}"]) from None
    validate(raw)
    return raw


def knobs_for(raw: dict[str, Any], target: str = "train",
              specs: Sequence[str] = ()) -> list[Knob]:
    """The knobs to turn off: every preset of ``target`` when ``specs`` is empty, else each spec
    (a preset name or a ``NAME=KEY=VALUE,...`` knob). Every override set is checked against
    the params schema (:class:`ParamsError` names the knob and key)."""
    presets = PRESETS.get(target, {})
    if not specs:
        if not presets:
            raise ParamsError([f"target {target!r} has no preset knobs (presets exist for "
                               f"{', '.join(PRESETS)}): give knobs as NAME=KEY=VALUE"])
        specs = list(presets)
    current = validate(raw).model_dump(mode="json")
    knobs: list[Knob] = []
    for spec in specs:
        name, overrides = parse_knob(spec)
        if overrides is None:
            if name not in presets:
                raise ParamsError([f"knob {name}: no such preset for target {target!r} "
                                   f"(presets: {', '.join(presets) or 'none'})"])
            overrides = dict(presets[name])
        if any(k.name == name for k in knobs):
            raise ParamsError([f"knob {name}: given twice"])
        if SEED_KEY in overrides:
            raise ParamsError([f"knob {name}: {SEED_KEY} is set by each repeat"])
        check_overrides(raw, overrides, f"knob {name}")
        knobs.append(Knob(name, overrides, {k: dotted_get(current, k) for k in overrides}))
    return knobs


@dataclass
class Run:
    """One experiment of the study: a knob (or the baseline) at one repeat."""

    knob: str
    repeat: int
    name: str
    overrides: dict[str, Any]
    value: float | None = None
    error: str | None = None


@dataclass
class Plan:
    """Everything an ablation runs, checked: its knobs, seeds, experiments and metric."""

    target: str
    metric: str
    prefix: str
    seeds: list[int]
    knobs: list[Knob]
    runs: list[Run]



def experiment_name(prefix: str, knob: str, repeat: int) -> str:
    """``PREFIX-KNOB-R``."""
    return f"{prefix}-{knob}-{repeat}"


def plan(root: Path, specs: Sequence[str] = (), *, target: str = "train",
         metric: str | None = None, repeats: int = 1, prefix: str = DEFAULT_PREFIX,
         params_file: Path | None = None) -> Plan:
    """Check everything before anything runs: the target, metric, knobs (against the schema)
    and that no experiment of these names exists (:class:`InputError` names it)."""
    if repeats < 1:
        raise ParamsError([f"repeats: must be at least 1, got {repeats}"])
    if not PREFIX.match(prefix):
        raise ParamsError([f"prefix: letters, digits, _ or - only, got {prefix!r}"])
    if target.startswith(("evaluate", "ensemble")):
        raise ParamsError([f"target {target!r} scores the test split: ablate up to a training "
                           "stage"])
    _check_stage(root, target)
    metric = metric or DEFAULT_METRICS.get(target)
    if metric is None:
        raise ParamsError([f"metric: target {target!r} has no default validation metric; give "
                           "FILE:KEY"])
    if ":" not in metric:
        raise ParamsError([f"metric: must be FILE:KEY, got {metric!r}"])
    raw = load_raw(params_file or root / "params.yaml")
    knobs = knobs_for(raw, target, specs)
    if all(k.already_off for k in knobs):
        raise InputError("nothing to run: every knob is already off ("
                         + "; ".join(f"{k.name}: {k.shown()}" for k in knobs) + ")")
    seed = dotted_get(validate(raw).model_dump(mode="json"), SEED_KEY)
    seeds = [seed + r for r in range(repeats)]
    for knob in knobs:
        check_overrides(raw, {**knob.changes, SEED_KEY: seeds[-1]}, f"knob {knob.name}")
    runs = [Run(name, r, experiment_name(prefix, name, r), {**changes, SEED_KEY: seeds[r]})
            for r in range(repeats)
            for name, changes in [(BASELINE, {}), *((k.name, k.changes) for k in knobs
                                                    if not k.already_off)]]
    taken = [run.name for run in runs if experiment_ref(root, run.name) is not None]
    if taken:
        raise InputError(f"experiment {taken[0]} exists already ({len(taken)} of this study's "
                         f"names are taken): give another prefix, or remove them with "
                         f"`dvc exp remove {' '.join(taken)}`")
    return Plan(target, metric, prefix, seeds, knobs, runs)


def _check_stage(root: Path, target: str) -> None:
    dvc_yaml = root / "dvc.yaml"
    if not dvc_yaml.is_file():
        raise InputError(f"no dvc.yaml in {root}: ablations run as DVC experiments")
    stages = (yaml.load(dvc_yaml.read_text(encoding="utf-8"), Loader=LOADER) or {}).get(
        "stages") or {}
    if target.split("@", 1)[0] not in stages:
        raise InputError(f"target {target!r}: no such stage in dvc.yaml")


def command(plan_: Plan, run: Run) -> list[str]:
    """``dvc --wait-for-lock exp run --temp TARGET -n NAME -S ...``: runs starting together
    take turns at the repository's lock (held while each sets up or saves its experiment)
    instead of failing after DVC's 3 s."""
    return [*DVC, "--wait-for-lock", "exp", "run", "--temp", plan_.target, "-n", run.name,
            *set_args(run.overrides)]


def run_all(plan_: Plan, root: Path, workers: int = 1,
            announce: Callable[[str], None] = print) -> list[Run]:
    """Run every experiment of the plan on ``workers`` threads (each a ``dvc exp run --temp``
    subprocess); fill in each run's metric, or its error (the log is kept in
    ``.cvpipe/ablate/PREFIX/``)."""
    logs = root / LOG_FOLDER / plan_.prefix
    logs.mkdir(parents=True, exist_ok=True)
    lock = threading.Lock()

    def one(run: Run) -> Run:
        with lock:
            announce(f"{run.name}: started  " + "  ".join(
                f"{k}={_text(v)}" for k, v in run.overrides.items()))
        log = logs / f"{run.name}.log"
        start = time.monotonic()
        with log.open("w", encoding="utf-8") as out:
            done = subprocess.run(command(plan_, run), cwd=root, stdout=out,
                                  stderr=subprocess.STDOUT, env=dict(os.environ))
        if done.returncode == 0:
            run.value = experiment_metric(root, run.name, *metric_parts(plan_.metric))
            if run.value is None:
                run.error = f"no {plan_.metric} in the experiment"
        else:
            run.error = f"dvc exp run exited {done.returncode}"
        with lock:
            if run.error:
                tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
                announce(f"{run.name}: failed ({run.error}; log {log}): " + " | ".join(tail))
            else:
                announce(f"{run.name}: {metric_parts(plan_.metric)[1]} {run.value:.4f} "
                         f"({time.monotonic() - start:.0f} s)")
        return run

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(one, plan_.runs))


def paired(values: Sequence[float | None], baseline: Sequence[float | None]
           ) -> tuple[float | None, float | None, int]:
    """Mean of (value - baseline) over the repeats where both ran, the standard error of that
    mean (sample standard deviation / sqrt(n); None for fewer than two pairs), and n."""
    diffs = [v - b for v, b in zip(values, baseline, strict=True)
             if v is not None and b is not None]
    n = len(diffs)
    if n == 0:
        return None, None, 0
    mean = sum(diffs) / n
    if n < 2:
        return mean, None, n
    variance = sum((d - mean) ** 2 for d in diffs) / (n - 1)
    return mean, math.sqrt(variance / n), n


def _mean(values: Sequence[float | None]) -> float | None:
    done = [v for v in values if v is not None]
    return sum(done) / len(done) if done else None


def summarise(plan_: Plan, runs: Sequence[Run]) -> dict[str, Any]:
    """The study as JSON-ready data: the baseline, then one entry per knob."""
    by = {(r.knob, r.repeat): r for r in runs}
    repeats = len(plan_.seeds)

    def series(knob: str) -> tuple[list[str], list[float | None], list[str]]:
        got = [by[(knob, r)] for r in range(repeats)]
        return ([r.name for r in got], [r.value for r in got],
                [f"{r.name}: {r.error}" for r in got if r.error])

    base_names, base_values, base_errors = series(BASELINE)
    knobs = []
    for knob in plan_.knobs:
        shown = knob.changes or knob.overrides
        was = {k: knob.current.get(k, _MISSING) for k in shown}
        entry: dict[str, Any] = {"name": knob.name, "overrides": shown,
                                 "was": {k: v for k, v in was.items() if v is not _MISSING}}
        if knob.already_off:
            entry.update(state="already off", experiments=[], values=[], mean=None,
                         change=None, se=None, n=0)
        else:
            names, values, errors = series(knob.name)
            change, se, n = paired(values, base_values)
            entry.update(state="done" if n else "failed", experiments=names, values=values,
                         mean=_mean(values), change=change, se=se, n=n, errors=errors)
        knobs.append(entry)
    return {"target": plan_.target, "metric": plan_.metric, "prefix": plan_.prefix,
            "repeats": repeats, "seeds": plan_.seeds,
            "baseline": {"experiments": base_names, "values": base_values,
                         "mean": _mean(base_values), "errors": base_errors},
            "knobs": knobs}


def _num(value: float | None, sign: bool = False) -> str:
    if value is None:
        return ""
    return f"{value:+.4f}" if sign else f"{value:.4f}"


def markdown(summary: dict[str, Any]) -> str:
    """knob | overrides | mean metric | change vs baseline | SE, with a line on how to read it."""
    metric = summary["metric"]
    lines = [f"| knob | overrides | mean {metric} | change vs baseline | SE |",
             "|---|---|---:|---:|---:|",
             f"| {BASELINE} | (current params) | {_num(summary['baseline']['mean'])} | | |"]
    for k in summary["knobs"]:
        overrides = ", ".join(f"{key}={_text(v)}" for key, v in k["overrides"].items())
        if k["state"] == "already off":
            lines.append(f"| {k['name']} | {overrides} | | already off | |")
            continue
        if k["state"] == "failed":
            lines.append(f"| {k['name']} | {overrides} | {_num(k['mean'])} | failed | |")
            continue
        se = _num(k["se"]) if k["se"] is not None else "n/a"
        change = _num(k["change"], sign=True) + (
            f" ({k['n']} of {summary['repeats']} pairs)" if k["n"] < summary["repeats"] else "")
        lines.append(f"| {k['name']} | {overrides} | {_num(k['mean'])} | {change} | {se} |")
    seeds = ", ".join(str(s) for s in summary["seeds"])
    lines.append("")
    lines.append(f"Target {summary['target']}, {summary['repeats']} repeat(s) ({SEED_KEY} "
                 f"{seeds}). Change: mean over repeats of (knob run - baseline run with the same "
                 "seed) on the validation metric; SE: standard error of that mean (n/a with one "
                 "repeat). Experiments: "
                 f"{summary['prefix']}-KNOB-R (`dvc exp show`).")
    return "\n".join(lines) + "\n"


def write(summary: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """``out/PREFIX.md`` and ``out/PREFIX.json``, written atomically as one set."""
    targets = (out / f"{summary['prefix']}.md", out / f"{summary['prefix']}.json")
    with atomic_paths(targets) as (md, js):
        md.write_text(markdown(summary), encoding="utf-8")
        js.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return targets


def ablate(root: Path, specs: Sequence[str] = (), *, target: str = "train",
           metric: str | None = None, repeats: int = 1, workers: int = 1,
           prefix: str = DEFAULT_PREFIX, params_file: Path | None = None,
           out: Path | None = None, announce: Callable[[str], None] = print) -> dict[str, Any]:
    """Plan (everything checked first), run, summarise and write the study; returns the summary
    (its Markdown is ``markdown(summary)``)."""
    plan_ = plan(root, specs, target=target, metric=metric, repeats=repeats, prefix=prefix,
                 params_file=params_file)
    for knob in plan_.knobs:
        if knob.already_off:
            announce(f"{knob.name}: already off ({knob.shown()}), not run")
    runs = run_all(plan_, root, workers, announce)
    summary = summarise(plan_, runs)
    write(summary, out if out is not None else root / DEFAULT_OUT)
    return summary


__all__ = ["BASELINE", "DEFAULT_METRICS", "PRESETS", "SEED_KEY", "Knob", "Plan", "Run",
           "ablate", "command", "experiment_name", "knobs_for", "load_raw", "markdown",
           "paired", "parse_knob", "plan", "run_all", "summarise", "write"]
