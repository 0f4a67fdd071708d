"""A study's results as files: the ranked table, Optuna's parameter importances, the optimisation
history and a parallel-coordinate plot, with a ``dvc.yaml`` that declares them as DVC plots.

Optuna computes the importances (fANOVA, seeded, so the same trials give the same numbers) and
draws the parallel coordinates; matplotlib (Agg) draws the history and the importance bars. The
``dvc.yaml`` holds only a ``plots:`` section, with paths relative to its folder, so
``dvc plots show`` in the repository picks the plots up. Every file is written as one set
(:func:`pipeline.io.atomic.atomic_paths`); a plot that cannot be drawn this time (fewer than two
completed trials) is removed rather than left over from an earlier report.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import TrialState

from pipeline.io.atomic import atomic_paths
from pipeline.io.errors import InputError
from pipeline.search import table
from pipeline.search.space import SearchSpec

FILES = ("ranked.md", "importances.json", "importances.png", "history.json", "history.png",
         "parallel.png", "dvc.yaml")


def _ran(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The trials that ran, by number (over-budget asks left out, as in the table)."""
    trials = [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get("over_budget")]
    return sorted(trials, key=lambda t: t.number)


def _name(trial: optuna.trial.FrozenTrial) -> str:
    return trial.user_attrs.get("experiment", "")


def history_rows(spec: SearchSpec, study: optuna.Study) -> list[dict[str, Any]]:
    """One row per trial, by number: its experiment, state, value (completed trials only), the
    best value so far, and a pruned trial's value when it was stopped."""
    better = max if spec.mode == "max" else min
    best: float | None = None
    out = []
    for trial in _ran(study):
        value = trial.value if trial.state == TrialState.COMPLETE else None
        if value is not None:
            best = value if best is None else better(best, value)
        out.append({"trial": trial.number, "experiment": _name(trial),
                    "state": trial.state.name.lower(), "value": value, "best": best,
                    "value_when_pruned": trial.user_attrs.get("value_when_pruned")})
    return out


def importances(spec: SearchSpec, study: optuna.Study) -> dict[str, Any]:
    """Optuna's fANOVA importances (seeded with the file's seed), largest first, summing to 1;
    or a ``note`` saying why there are none (too few completed trials, nothing varied)."""
    done = [t for t in _ran(study) if t.state == TrialState.COMPLETE]
    base: dict[str, Any] = {"study": spec.name, "metric": spec.metric,
                            "evaluator": f"FanovaImportanceEvaluator(seed={spec.seed})",
                            "completed_trials": len(done), "importances": []}
    varying = sorted({k for t in done for k in t.params
                      if len({json.dumps(u.params.get(k), default=str) for u in done}) > 1})
    note = None
    if len(done) < 2:
        note = f"{len(done)} completed trial(s): importances need at least 2"
    elif not varying:
        note = "no searched param took more than one value over the completed trials"
    elif len({t.value for t in done}) < 2:
        note = f"every completed trial has the same {spec.metric_key}: nothing to attribute"
    if note is None:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=spec.seed)
        try:
            found = optuna.importance.get_param_importances(study, evaluator=evaluator)
        except RuntimeError as exc:  # fANOVA: zero variance in every tree
            note = f"Optuna could not compute importances: {exc}"
        else:
            rows = [{"param": k, "importance": float(v)} for k, v in found.items()
                    if math.isfinite(v)]
            if rows:
                base["importances"] = sorted(rows, key=lambda r: -r["importance"])
            else:
                note = "Optuna found no param to rank (every distribution has a single value)"
    if note is not None:
        base["note"] = note
    return base


def ranked_markdown(spec: SearchSpec, study: optuna.Study) -> str:
    """The ranked table (:mod:`pipeline.search.table`) under a heading, then the best trial and
    the command that evaluates it on the test split."""
    ranked = table.rows(spec, study)
    states: dict[str, int] = {}
    for row in ranked:
        states[row["state"]] = states.get(row["state"], 0) + 1
    counts = ", ".join(f"{n} {s}" for s, n in states.items())
    lines = [f"# Search {spec.name}", "",
             f"{spec.sampler} sampler, {len(ranked)} trials ({counts}); ranked by "
             f"`{spec.metric}` ({spec.mode}) on the validation split.", "",
             table.markdown(spec, ranked).rstrip("\n"), ""]
    top = table.best(ranked)
    if top is None:
        lines.append("No trial has completed yet: nothing to apply.")
    else:
        lines.append(f"Best trial: {top['name']} (trial {top['number']}, {spec.metric_key} "
                     f"{top['value']:.4f}). Evaluate it on the test split once: "
                     f"`dvc exp apply {top['name']} && dvc repro`")
    return "\n".join(lines) + "\n"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path, tight: bool = False) -> None:
    fig.savefig(path, format="png", dpi=100, bbox_inches="tight" if tight else None)
    _pyplot().close(fig)


def draw_history(spec: SearchSpec, history: list[dict[str, Any]], path: Path) -> None:
    """Each completed trial's value, pruned trials where they stopped, failed ones on the axis,
    and the best value so far (matplotlib)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    for state, key, style in (("complete", "value", {"marker": "o", "color": "tab:blue"}),
                              ("pruned", "value_when_pruned", {"marker": "x", "color": "tab:gray"})):
        rows = [r for r in history if r["state"] == state and r[key] is not None]
        if rows:
            ax.scatter([r["trial"] for r in rows], [r[key] for r in rows], zorder=3,
                       label=f"{state} trial" + (" (value when stopped)" if key != "value" else ""),
                       **style)
    failed = [r["trial"] for r in history if r["state"] not in ("complete", "pruned")]
    if failed:
        ax.scatter(failed, [0] * len(failed), marker="|", color="tab:red", s=200,
                   transform=ax.get_xaxis_transform(), label="failed / unfinished trial")
    best = [r for r in history if r["best"] is not None]
    if best:
        ax.step([r["trial"] for r in best], [r["best"] for r in best], where="post",
                color="tab:orange", label=f"best so far ({spec.mode})")
    ax.set_title(f"Optimisation history: {spec.name}")
    ax.set_xlabel(f"trial number (Optuna's; experiment {spec.name}-001 is trial 0)")
    ax.set_ylabel(f"{spec.metric_key} (validation)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    _save(fig, path)


def draw_importances(spec: SearchSpec, found: dict[str, Any], path: Path) -> None:
    """Horizontal bars, most important param on top (matplotlib)."""
    plt = _pyplot()
    rows = found["importances"][::-1]
    fig, ax = plt.subplots(figsize=(7, 1.4 + 0.45 * len(rows)), layout="constrained")
    ax.barh([r["param"] for r in rows], [r["importance"] for r in rows], color="tab:blue")
    for i, r in enumerate(rows):
        ax.text(r["importance"], i, f" {r['importance']:.2f}", va="center", fontsize="small")
    ax.set_xlim(0, max(1.0, max(r["importance"] for r in rows) * 1.15))
    ax.set_title(f"Param importances for {spec.metric_key}: {spec.name}\n"
                 f"(Optuna fANOVA over {found['completed_trials']} completed trials)")
    ax.set_xlabel(f"importance (share of the variance of {spec.metric_key})")
    ax.set_ylabel("param")
    _save(fig, path)


def draw_parallel(spec: SearchSpec, study: optuna.Study, path: Path) -> None:
    """Optuna's parallel-coordinate plot of the completed trials (matplotlib)."""
    from optuna.exceptions import ExperimentalWarning

    done = [t for t in _ran(study) if t.state == TrialState.COMPLETE]
    keys = [k for k in spec.space if any(k in t.params for t in done)]  # an older file's keys
    _pyplot()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        warnings.simplefilter("ignore", UserWarning)  # a param with one value: axis widened
        ax = optuna.visualization.matplotlib.plot_parallel_coordinate(
            study, params=keys or None, target_name=spec.metric_key)
    ax.set_title(f"Parallel coordinates: {spec.name} (colour: {spec.metric_key})")
    fig = ax.figure
    fig.set_size_inches(max(7.0, 1.6 * (len(spec.space) + 1)), 4.5)
    _save(fig, path, tight=True)  # Optuna's twin axes defeat the constrained layout


def plots_yaml(spec: SearchSpec, written: set[str]) -> str:
    """A ``dvc.yaml`` with only a ``plots:`` section for the files in ``written`` (paths relative
    to its folder, which is how DVC reads a ``dvc.yaml`` in a subfolder)."""
    plots: list[Any] = [{f"{spec.name} optimisation history": {
        "template": "linear", "x": "trial", "y": {"history.json": ["value", "best"]},
        "title": f"Optimisation history: {spec.name} ({spec.metric_key}, {spec.mode})",
        "x_label": "trial number", "y_label": spec.metric_key}}]
    if "importances.png" in written:  # drawn exactly when there are rows to plot
        plots.append({f"{spec.name} param importances": {
            "template": "bar_horizontal", "x": "importance", "y": {"importances.json": "param"},
            "title": f"Param importances for {spec.metric_key}: {spec.name}",
            "x_label": "importance", "y_label": "param"}})
    plots += [name for name in ("history.png", "importances.png", "parallel.png") if name in written]
    head = "# Written by cvpipe search report; `dvc plots show` in the repository draws these.\n"
    return head + yaml.safe_dump({"plots": plots}, sort_keys=False)


def write_report(spec: SearchSpec, study: optuna.Study, out: Path) -> dict[str, Path]:
    """Write ``ranked.md``, ``importances.json`` (+ ``.png``), ``history.json`` (+ ``.png``),
    ``parallel.png`` and ``dvc.yaml`` into ``out``, as one set; return {file name: path}.
    :class:`InputError` when the study has no trials."""
    if not _ran(study):
        raise InputError(f"study {spec.name} has no trials yet: nothing to report")
    out = Path(out)
    history = history_rows(spec, study)
    found = importances(spec, study)
    completed = sum(r["state"] == "complete" for r in history)
    names = ["ranked.md", "importances.json", "history.json", "history.png"]
    if found["importances"]:
        names.append("importances.png")
    if completed >= 2:
        names.append("parallel.png")
    names.append("dvc.yaml")
    paths = [out / n for n in names]
    stale = [out / n for n in FILES if n not in names]
    with atomic_paths(paths, remove=stale) as temps:
        tmp = dict(zip(names, temps, strict=True))
        tmp["ranked.md"].write_text(ranked_markdown(spec, study), encoding="utf-8")
        tmp["importances.json"].write_text(json.dumps(found, indent=2) + "\n", encoding="utf-8")
        tmp["history.json"].write_text(json.dumps(history, indent=2) + "\n", encoding="utf-8")
        draw_history(spec, history, tmp["history.png"])
        if "importances.png" in tmp:
            draw_importances(spec, found, tmp["importances.png"])
        if "parallel.png" in tmp:
            draw_parallel(spec, study, tmp["parallel.png"])
        tmp["dvc.yaml"].write_text(plots_yaml(spec, set(names)), encoding="utf-8")
    return dict(zip(names, paths, strict=True))
