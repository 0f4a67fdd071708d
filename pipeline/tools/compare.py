"""Metric and param differences between two git revisions, from DVC's own diffs, as Markdown.

``dvc metrics diff`` and ``dvc params diff`` do the reading (the metrics files are git-tracked);
this module turns their JSON into tables and checks regression thresholds.
"""

from __future__ import annotations

import fnmatch
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Threshold:
    """``METRIC:DROP``: fail when METRIC falls by more than DROP (absolute)."""

    metric: str
    drop: float

    @classmethod
    def parse(cls, text: str) -> Threshold:
        metric, sep, drop = text.rpartition(":")
        try:
            value = float(drop)
        except ValueError:
            value = -1.0
        if not sep or not metric or value < 0:
            raise ValueError(f"expected METRIC:DROP with DROP >= 0, e.g. rank1:0.01, got {text!r}")
        return cls(metric, value)

    def matches(self, path: str, key: str) -> bool:
        """``rank1`` matches that key in any metrics file; ``path:key`` one file's key."""
        return self.metric in (key, f"{path}:{key}")


@dataclass(frozen=True)
class Row:
    path: str
    key: str
    old: Any
    new: Any

    @property
    def change(self) -> float | None:
        if _number(self.old) and _number(self.new):
            return float(self.new) - float(self.old)
        return None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def dvc_diff(kind: str, a_rev: str, b_rev: str | None, repo: Path) -> list[Row]:
    """Rows of ``dvc {metrics|params} diff A [B] --all --json`` (B omitted: the workspace)."""
    command = [sys.executable, "-m", "dvc", kind, "diff", a_rev, *([b_rev] if b_rev else []),
               "--all", "--json"]
    done = subprocess.run(command, cwd=repo, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"dvc {kind} diff failed: {done.stderr.strip() or done.stdout.strip()}")
    data = json.loads(done.stdout or "{}")
    rows = []
    for path, entries in sorted(data.items()):
        for key, value in sorted(entries.items()):
            rows.append(Row(path, key, value.get("old"), value.get("new")))
    return rows


def select(rows: list[Row], patterns: tuple[str, ...], changed_only: bool) -> list[Row]:
    """Rows whose key matches any glob in ``patterns`` (all without), changed ones only if asked."""
    out = [r for r in rows if not patterns or any(fnmatch.fnmatch(r.key, p) for p in patterns)]
    return [r for r in out if r.old != r.new] if changed_only else out


def violations(rows: list[Row], thresholds: list[Threshold]) -> list[str]:
    """One line per threshold broken; a threshold that matches no metric is an error too."""
    problems = []
    for threshold in thresholds:
        matched = [r for r in rows if threshold.matches(r.path, r.key)]
        if not matched:
            problems.append(f"{threshold.metric}: no such metric in either revision")
        for row in matched:
            if row.new is None:
                problems.append(f"{row.path}:{row.key}: missing in the new revision")
            elif row.change is not None and row.change < -threshold.drop:
                problems.append(f"{row.path}:{row.key} fell by {-row.change:.4f} "
                                f"({_fmt(row.old)} -> {_fmt(row.new)}), more than "
                                f"{threshold.drop:g}")
    return problems


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if _number(value) and not isinstance(value, int):
        return f"{value:.4f}"
    return str(value)


def markdown(metrics: list[Row], params: list[Row], a_label: str, b_label: str) -> str:
    """Both tables, metrics first; changes signed, unchanged values shown once per column."""
    lines = [f"### Metrics: `{a_label}` → `{b_label}`", ""]
    if metrics:
        lines += [f"| file | metric | {a_label} | {b_label} | change |", "|---|---|---:|---:|---:|"]
        for r in metrics:
            change = f"{r.change:+.4f}" if r.change not in (None, 0.0) else ""
            lines.append(f"| {r.path} | {r.key} | {_fmt(r.old)} | {_fmt(r.new)} | {change} |")
    else:
        lines.append("No metric differences.")
    lines += ["", f"### Params: `{a_label}` → `{b_label}`", ""]
    if params:
        lines += [f"| file | param | {a_label} | {b_label} |", "|---|---|---|---|"]
        lines += [f"| {r.path} | {r.key} | {_fmt(r.old)} | {_fmt(r.new)} |" for r in params]
    else:
        lines.append("No param differences.")
    return "\n".join(lines) + "\n"


def compare(a_rev: str, b_rev: str | None, repo: Path, patterns: tuple[str, ...] = (),
            show_all: bool = False, thresholds: list[Threshold] | None = None
            ) -> tuple[str, list[str]]:
    """The Markdown tables from ``a_rev`` to ``b_rev`` (None: the workspace), and one line per
    threshold broken. ``patterns`` filter the metrics; unchanged rows only with ``show_all``."""
    metrics = dvc_diff("metrics", a_rev, b_rev, repo)
    params = dvc_diff("params", a_rev, b_rev, repo)
    text = markdown(select(metrics, patterns, not show_all), select(params, (), not show_all),
                    a_rev, b_rev or "workspace")
    return text, violations(metrics, thresholds or [])
