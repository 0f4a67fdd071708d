"""A small git + DVC repository reproduced up to ``train``, for search and ablation tests.

The shrunk end-to-end config (12x12 grey digits, ShallowNet, two epochs): a trial, one
``dvc exp run --temp train``, takes seconds.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from pipeline.data.embedded import write_digits
from tests.conftest import copy_project, keep_stages, run
from tests.test_dvc_pipeline import shrink

DVC = [sys.executable, "-m", "dvc"]
CLI = [sys.executable, "-m", "stages.cli"]
#: The stages a trial (``dvc exp run --temp train``) reproduces, and evaluate after them, which a
#: trial must not run: the copy's dvc.yaml keeps these and their metrics files alone, as they
#: are. DVC parses dvc.yaml whole, and reads every declared metrics file of every experiment for
#: ``dvc exp show``, in each of the many commands these tests run.
KEPT = ("ingest", "split", "hdf5", "train", "evaluate@train")
KEPT_METRICS = ("results/ingest/", "results/split/", "results/train/", "results/evaluate/train/")


def search_repo(base: Path, **train: object) -> Path:
    """``base/repo``: the training stages (:data:`KEPT`) on ``base/source`` (digits),
    reproduced up to train and committed; ``train`` overrides keys of the train section."""
    source = base / "source"
    write_digits(source)
    root = copy_project(base / "repo")
    keep_stages(root, *KEPT, metrics=KEPT_METRICS)
    params = shrink(yaml.safe_load((root / "params.yaml").read_text()), source)
    params["train"].update(train)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "pipeline"], root)
    run([*DVC, "repro", "train"], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "trained"], root)
    return root


def write_spec(root: Path, name: str, space: dict, **fields: object) -> Path:
    """``root/NAME.yaml``, a search file (committed, so experiments see it)."""
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, **fields, "space": space}, sort_keys=False))
    return path
