"""The ranked table of a study's trials (Markdown), read from its Optuna storage.

Completed trials first, best first by the validation metric; then pruned ones (by the value they
had when stopped), then running and failed ones. Each row names the trial's DVC experiment, so
``dvc exp apply NAME && dvc repro`` evaluates the chosen one on the test split.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import TrialState

from pipeline.search.space import SearchSpec

ORDER = {TrialState.COMPLETE: 0, TrialState.PRUNED: 1, TrialState.RUNNING: 2,
         TrialState.WAITING: 3, TrialState.FAIL: 4}


def rows(spec: SearchSpec, study: optuna.Study) -> list[dict[str, Any]]:
    """One dict per trial that ran (over-budget asks left out), best first."""
    out = []
    for trial in study.get_trials(deepcopy=False):
        if trial.user_attrs.get("over_budget"):
            continue
        value = trial.value if trial.state == TrialState.COMPLETE else None
        if trial.state == TrialState.PRUNED:
            value = trial.user_attrs.get("value_when_pruned")
        out.append({"number": trial.number, "name": trial.user_attrs.get("experiment", ""),
                    "state": trial.state.name.lower(), "value": value,
                    "params": trial.user_attrs.get("overrides") or dict(trial.params),
                    "pruned_epoch": trial.user_attrs.get("pruned_epoch"),
                    "worker": trial.user_attrs.get("worker", "")})
    sign = -1.0 if spec.mode == "max" else 1.0
    out.sort(key=lambda r: (ORDER[TrialState[r["state"].upper()]],
                            sign * r["value"] if r["value"] is not None else 0.0, r["number"]))
    return out


def experiment_rows(spec: SearchSpec, found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows for trials known only as DVC experiments (a search that was queued, not run), from
    ``pipeline.search.experiments.experiments()``: those with the metric first, best first, as
    complete; the rest in DVC's state (queued, running, failed)."""
    out = []
    for r in found:
        value = r["metrics"].get(spec.metric)
        scored = isinstance(value, int | float)
        out.append({"name": r["name"], "state": "complete" if scored else str(r["status"]).lower(),
                    "pruned_epoch": None, "value": value if scored else None,
                    "params": r["params"]})
    sign = -1.0 if spec.mode == "max" else 1.0
    out.sort(key=lambda r: (r["value"] is None, sign * r["value"] if r["value"] is not None else 0))
    return out


def markdown(spec: SearchSpec, ranked: list[dict[str, Any]]) -> str:
    """Rank, experiment, state, the metric and every searched param."""
    keys = list(spec.space)
    lines = [f"| rank | experiment | state | {spec.metric} | " + " | ".join(keys) + " |",
             "|---:|---|---|---:|" + "---:|" * len(keys)]
    for rank, row in enumerate(ranked, 1):
        value = row["value"]
        state = row["state"] + (f" (epoch {row['pruned_epoch']})" if row["pruned_epoch"] else "")
        shown = f"{value:.4f}" if isinstance(value, int | float) else ""
        cells = [str(row["params"].get(k, "")) for k in keys]
        lines.append(f"| {rank} | {row['name']} | {state} | {shown} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def best(ranked: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The best completed trial, if any."""
    return next((r for r in ranked if r["state"] == "complete"), None)
