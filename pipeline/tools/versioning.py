"""Bringing a user's dataset into the repository as DVC-tracked data."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path


def add_dataset(source: Path, target: Path) -> Path:
    """Copy ``source`` (folder or file) to ``target`` and ``dvc add`` it; return ``target``.

    A CSV manifest is copied together with its folder, so relative paths stay valid.
    """
    if target.exists():
        raise FileExistsError(f"{target} already exists; pick another --name")
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        shutil.copy2(source, target)
    done = subprocess.run(
        [sys.executable, "-m", "dvc", "add", str(target)], capture_output=True, text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"dvc add {target} failed:\n{done.stderr.strip()}")
    return target
