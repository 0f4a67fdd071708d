"""Ensembles: average the class probabilities of several trained models on one split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.evaluate.evaluation import Prediction, Scorer, ranks


def predict_members(models: dict[str, Path], images: Path, features: Path, split: str,
                    batch_size: int) -> dict[str, Prediction]:
    """Each member's probabilities on ``split``: Keras models read ``images``, logistic
    regressions read ``features``; all must agree on classes and image order."""
    out: dict[str, Prediction] = {}
    for name, folder in models.items():
        scorer = Scorer(folder, batch_size)
        out[name] = scorer.predict((images if scorer.is_keras else features) / f"{split}.h5")
    first_name, first = next(iter(out.items()))
    for name, other in out.items():
        if other.classes != first.classes or list(other.paths) != list(first.paths):
            raise ValueError(f"members {first_name} and {name} were not scored on the same "
                             "images and classes")
    return out


def average(predictions: dict[str, Prediction]) -> Prediction:
    """The ensemble: the mean of the members' probabilities."""
    first = next(iter(predictions.values()))
    mean = np.mean([p.probabilities for p in predictions.values()], axis=0)
    return Prediction(mean, first.classes, first.labels, first.paths)


def member_scores(predictions: dict[str, Prediction]) -> dict[str, dict[str, float]]:
    """Rank-1 (and rank-5 above 5 classes) of each member."""
    return {name: ranks(p.probabilities, p.labels, len(p.classes))
            for name, p in predictions.items()}


def best_member(members: dict[str, dict[str, float]]) -> str:
    """The member with the highest rank-1 (the first listed on a tie)."""
    return max(members, key=lambda name: members[name]["rank1"])


def summary(members: dict[str, dict[str, float]], ensemble: dict[str, Any]) -> dict[str, Any]:
    """The ensemble's headline metrics: its own, the best member's rank-1 and the gain over it.
    Each member's scores go to ``report.json`` (their number is not bounded)."""
    best = members[best_member(members)]["rank1"]
    return {**ensemble, "best_member_rank1": best,
            "rank1_gain_over_best": round(ensemble["rank1"] - best, 6)}
