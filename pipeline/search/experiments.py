"""DVC's side of a search: ``-S`` arguments, experiments as rows, one experiment's metric.

``dvc exp show --json`` lists every experiment with flat params and metrics; a finished trial's
metric is read straight from its commit (``refs/exps/.../NAME``) with ``git show``, which stays
fast however many experiments the repository holds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

DVC = [sys.executable, "-m", "dvc"]


def set_args(overrides: dict[str, Any]) -> list[str]:
    """``-S key=value`` arguments; values as JSON, which DVC reads as YAML."""
    args = []
    for key, value in overrides.items():
        args += ["-S", f"{key}={value if isinstance(value, str) else json.dumps(value)}"]
    return args


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    if not isinstance(data, dict):
        return {prefix: data}
    out: dict[str, Any] = {}
    for key, value in data.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def experiments(repo: Path) -> list[dict[str, Any]]:
    """Every experiment ``dvc exp show --json`` lists: name, status, flat params and metrics."""
    done = subprocess.run([*DVC, "exp", "show", "--json"], cwd=repo, capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise RuntimeError(f"dvc exp show failed: {done.stderr.strip()}")
    rows = []
    for baseline in json.loads(done.stdout or "[]"):
        for exp in baseline.get("experiments") or []:
            for rev in exp.get("revs") or []:
                data = rev.get("data") or {}
                params = {k: v for src in (data.get("params") or {}).values()
                          for k, v in flatten(src.get("data") or {}).items()}
                metrics = {f"{path}:{key}": value
                           for path, src in (data.get("metrics") or {}).items()
                           for key, value in flatten(src.get("data") or {}).items()}
                rows.append({"name": rev.get("name") or exp.get("name") or rev.get("rev"),
                             "rev": rev.get("rev"),
                             "status": data.get("status") or "Success",
                             "params": params, "metrics": metrics})
    return rows


def metric_parts(metric: str) -> tuple[str, str]:
    """``FILE:KEY`` -> ``(FILE, KEY)``."""
    file, key = metric.split(":", 1)
    return file, key


def experiment_ref(repo: Path, name: str) -> str | None:
    """The newest git ref of experiment ``name`` (``refs/exps/<baseline>/<name>``), if any."""
    listed = subprocess.run(
        ["git", "for-each-ref", "--sort=-committerdate", "--format=%(refname)", "refs/exps"],
        cwd=repo, capture_output=True, text=True, check=True).stdout.split()
    return next((ref for ref in listed if ref.rsplit("/", 1)[-1] == name), None)


def experiment_metric(repo: Path, name: str, file: str, key: str) -> float | None:
    """``key`` (dotted) of metrics ``file`` in experiment ``name``; None when absent."""
    ref = experiment_ref(repo, name)
    if ref is None:
        return None
    shown = subprocess.run(["git", "show", f"{ref}:{file}"], cwd=repo, capture_output=True,
                           text=True)
    if shown.returncode != 0:
        return None
    value = flatten(json.loads(shown.stdout)).get(key)
    return float(value) if isinstance(value, int | float) else None
