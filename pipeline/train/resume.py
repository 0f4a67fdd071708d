"""Resuming training after a kill: the persistent checkpoint folder and when it may be used.

The folder (a ``persist: true`` output in ``dvc.yaml``) holds Keras's ``BackupAndRestore``
backup (weights with optimizer state, the next epoch) and ``state.json`` with a fingerprint of
everything the backup depends on: the stage's params, the seed, the architecture and the training
data. A backup whose fingerprint differs is deleted and training starts fresh.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import keras

from pipeline.io import atomic

STATE = "state.json"


def backup_dir(checkpoint_dir: Path) -> Path:
    return checkpoint_dir / "backup"


def _file_digest(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def fingerprint(settings: dict, seed: int, model: keras.Model, train_file: Path) -> str:
    """A hash of what a backup is only valid for: the stage's ``settings`` (JSON-able params),
    the seed, the architecture and the training data."""
    parts = {
        **settings,
        "seed": seed,
        "architecture": json.loads(model.to_json()),
        "data": _file_digest(train_file),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def prepare(checkpoint_dir: Path, expected: str) -> tuple[int, str]:
    """The epoch to start from, and why; clears a backup that does not fit ``expected``."""
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    state_file = checkpoint_dir / STATE
    state = atomic.read_json(state_file) if state_file.exists() else {}
    meta = backup_dir(checkpoint_dir) / "training_metadata.json"
    if not meta.exists():
        reason = "starting fresh (no interrupted run to resume)"
    elif state.get("fingerprint") != expected:
        reason = ("starting fresh: the checkpoint was made with other params, architecture or "
                  "data, so it was discarded")
    else:
        epoch = int(json.loads(meta.read_text())["epoch"])
        return epoch, f"resuming an interrupted run from epoch {epoch + 1}"
    shutil.rmtree(backup_dir(checkpoint_dir), ignore_errors=True)
    (checkpoint_dir / "best.keras").unlink(missing_ok=True)
    atomic.write_json(state_file, {"fingerprint": expected, "complete": False})
    return 0, reason


def finish(checkpoint_dir: Path, expected: str) -> None:
    """The run completed: drop the backup so that the next run starts fresh."""
    shutil.rmtree(backup_dir(checkpoint_dir), ignore_errors=True)
    atomic.write_json(checkpoint_dir / STATE, {"fingerprint": expected, "complete": True})


def completed(checkpoint_dir: Path, expected: str) -> bool:
    """Whether a run with fingerprint ``expected`` finished in ``checkpoint_dir``."""
    state_file = checkpoint_dir / STATE
    state = atomic.read_json(state_file) if state_file.exists() else {}
    return state.get("fingerprint") == expected and bool(state.get("complete"))
