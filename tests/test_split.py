"""Hash-stable splits: fractions, stability under additions, duplicates together."""

from __future__ import annotations

import hashlib
from collections import Counter

from pipeline.config import SplitParams
from pipeline.data.split import assign, counts, split_rows


def rows(n: int, start: int = 0, classes: int = 4) -> list[dict[str, str]]:
    return [
        {"path": f"img{i}.png", "label": f"c{i % classes}",
         "sha256": hashlib.sha256(str(i).encode()).hexdigest()}
        for i in range(start, start + n)
    ]


def where(groups: dict) -> dict[str, str]:
    return {row["path"]: name for name, members in groups.items() for row in members}


def test_fractions_are_met_in_every_class() -> None:
    params = SplitParams(val=0.2, test=0.1, train_dev=0.25)
    groups = split_rows(rows(8000), seed=1, params=params)
    total = Counter({name: len(members) for name, members in groups.items()})
    assert abs(total["test"] / 8000 - 0.1) < 0.015
    assert abs(total["val"] / 8000 - 0.2) < 0.02
    assert abs(total["train_dev"] / (total["train"] + total["train_dev"]) - 0.25) < 0.025
    per_class = counts(groups, ["c0", "c1", "c2", "c3"])
    for label in ("c0", "c1", "c2", "c3"):
        assert abs(per_class["test"]["per_class"][label] / 2000 - 0.1) < 0.025


def test_adding_images_never_moves_existing_ones() -> None:
    params = SplitParams(val=0.15, test=0.15, train_dev=0.1)
    before = where(split_rows(rows(500), seed=7, params=params))
    after = where(split_rows(rows(500) + rows(300, start=500), seed=7, params=params))
    assert {path: after[path] for path in before} == before
    assert len(after) == 800


def test_seed_changes_assignment_and_duplicates_stay_together() -> None:
    params = SplitParams()
    digest = hashlib.sha256(b"x").hexdigest()
    assert {assign(digest, 3, params) for _ in range(5)} == {assign(digest, 3, params)}
    moved = sum(assign(r["sha256"], 1, params) != assign(r["sha256"], 2, params) for r in rows(200))
    assert moved > 50
    twins = [{"path": "a.png", "label": "x", "sha256": digest},
             {"path": "b.png", "label": "x", "sha256": digest}]
    placed = where(split_rows(twins, seed=0, params=params))
    assert placed["a.png"] == placed["b.png"]


def test_no_train_dev_unless_asked() -> None:
    groups = split_rows(rows(300), seed=0, params=SplitParams(train_dev=0.0))
    assert groups["train_dev"] == []
