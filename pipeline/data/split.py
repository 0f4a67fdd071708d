"""Hash-stable stratified splits.

An image's split is a function of its content hash and the seed alone: a uniform number
``u = H(seed, sha256)`` in [0, 1) falls into the test, val or train interval. Adding or removing
other images never moves it, exact duplicates always land together, and because ``u`` is
independent of the label every class is split in the same proportions in expectation (the
per-class counts are written out so the realised stratification can be checked). This is the
split without ``split.group``; :mod:`pipeline.data.groups` keeps groups of images together.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping

from pipeline.config import SplitParams

SPLITS = ("train", "train_dev", "val", "test")


def unit_interval(seed: int, sha256: str) -> float:
    """A uniform number in [0, 1) determined by the seed and an image's content hash."""
    digest = hashlib.sha256(f"{seed}:{sha256}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def assign(sha256: str, seed: int, params: SplitParams, source_split: str = "") -> str:
    """The split of one image: ``test``, ``val``, ``train_dev`` or ``train``.

    A source may fix it (``source_split``, from a CSV ``split`` column): ``test`` and ``val``
    are kept as they are, and ``train`` images are divided into train, val and train-dev by the
    hash as usual but never into test (the fractions then apply to the train images alone).
    """
    if source_split in {"test", "val"}:
        return source_split
    return place(unit_interval(seed, sha256), params, source_split == "train")


def place(u: float, params: SplitParams, no_test: bool = False) -> str:
    """The split a number ``u`` in [0, 1) falls into: test, val, then train-dev within train
    (``no_test``: a source's train image, never test)."""
    test = 0.0 if no_test else params.test
    if u < test:
        return "test"
    if u < test + params.val:
        return "val"
    rest = (u - test - params.val) / (1.0 - test - params.val)
    return "train_dev" if rest < params.train_dev else "train"


def split_rows(
    rows: Iterable[Mapping[str, str]], seed: int, params: SplitParams
) -> dict[str, list[Mapping[str, str]]]:
    """Group manifest rows by split, keeping manifest order within each split."""
    out: dict[str, list[Mapping[str, str]]] = {name: [] for name in SPLITS}
    for row in rows:
        out[assign(row["sha256"], seed, params, row.get("source_split", ""))].append(row)
    return out


def counts(splits: Mapping[str, list[Mapping[str, str]]], classes: list[str]) -> dict[str, object]:
    """Per-split totals and per-class counts, and the fractions they achieve: of all images,
    and of each class's (the split stage's ``report.json``; the totals alone are its metrics
    file)."""
    everything = Counter(row["label"] for rows in splits.values() for row in rows)
    total = sum(everything.values())
    result: dict[str, object] = {}
    for name, rows in splits.items():
        per_class = Counter(row["label"] for row in rows)
        result[name] = {
            "total": len(rows),
            "fraction": round(len(rows) / total, 4) if total else 0.0,
            "per_class": {c: per_class.get(c, 0) for c in classes},
            "per_class_fraction": {c: round(per_class.get(c, 0) / everything[c], 4)
                                   if everything[c] else 0.0 for c in classes},
        }
    return result
