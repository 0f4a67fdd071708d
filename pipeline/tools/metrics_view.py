"""The workspace's metrics one file at a time, wrapped to the terminal: a narrow view of
``dvc metrics show``.

DVC reads the metrics (``dvc metrics show --json``); its own table has one column per distinct key
across all files, which no terminal is wide enough for once a pipeline has a dozen metrics files.
This view prints each file as a heading and its keys as ``key value`` pairs packed into lines.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from pipeline.io.errors import InputError


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested metrics as dotted keys, in file order."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def read_metrics(repo: Path, targets: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
    """Metrics file -> its dotted keys and values, as ``dvc metrics show --json`` reads them."""
    done = subprocess.run(["dvc", "metrics", "show", "--json", *targets], cwd=repo,
                          capture_output=True, text=True, check=False)
    if done.returncode:
        raise InputError(f"dvc metrics show failed: {done.stderr.strip() or done.stdout.strip()}")
    shown = json.loads(done.stdout or "{}")
    files: dict[str, dict[str, Any]] = {}
    for revision in shown.values():
        for path, entry in (revision.get("data") or {}).items():
            if "data" in entry:
                files[path] = flatten(entry["data"])
    return files


def _show(value: Any, precision: int) -> str:
    if isinstance(value, float):
        return f"{value:.{precision}g}"
    return str(value)


def render(files: dict[str, dict[str, Any]], width: int = 120, precision: int = 5) -> str:
    """Each file as a heading line, then its ``key value`` pairs packed into lines of at most
    ``width`` characters (a pair longer than that stands on a line of its own)."""
    lines: list[str] = []
    for path, metrics in files.items():
        lines.append(path)
        line = " "
        for key, value in metrics.items():
            pair = f"  {key} {_show(value, precision)}"
            if len(line) + len(pair) > width and line.strip():
                lines.append(line.rstrip())
                line = " "
            line += pair
        if line.strip():
            lines.append(line.rstrip())
    return "\n".join(lines)
