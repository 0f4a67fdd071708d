"""Bias/variance diagnosis by Ng's recipe: the error on each split and the gaps between them.

human-level (Bayes) error -> train -> train-dev -> val (dev) -> test. Each gap names a problem:

- avoidable bias = train - human-level: the model underfits (bigger model, train longer);
- variance = train-dev - train: it does not generalise to unseen images from the training
  distribution (more data, regularisation, augmentation);
- data mismatch = val - train-dev: the val/test images differ from the training ones;
- overfitting to val = test - val: too much tuning on the val split.

Without a train-dev split, variance and data mismatch cannot be told apart: their sum,
val - train, is reported as ``variance_or_mismatch``.

Small splits make noisy errors: with image counts, each gap gets the standard error of a
difference of two proportions (pooled, as in the two-proportion test), and a gap under twice
that is marked as noise.
"""

from __future__ import annotations

import math
from typing import Any

#: The splits in the order the recipe reads them.
ORDER = ("train", "train_dev", "val", "test")

_GAPS = (
    ("avoidable_bias", "human", "train", "bigger model, longer training, better optimizer"),
    ("variance", "train", "train_dev", "more data, regularisation, augmentation"),
    ("data_mismatch", "train_dev", "val", "make training data more like val/test"),
    ("val_overfit", "val", "test", "a larger val split, less tuning against it"),
)


def diagnose(errors: dict[str, float], human_error: float = 0.0,
             counts: dict[str, int] | None = None) -> dict[str, Any]:
    """The gaps between consecutive errors, and the largest one (the thing to work on next).

    ``errors`` maps split name to error rate (1 - rank-1) for the splits that exist; ``counts``
    (images per split) adds each gap's standard error and whether it stands out of the noise.
    """
    level = {"human": human_error, **errors}
    pairs = [(name, low, high) for name, low, high, _ in _GAPS if low in level and high in level]
    if "train_dev" not in errors and {"train", "val"} <= errors.keys():
        pairs.append(("variance_or_mismatch", "train", "val"))
    gaps = {name: level[high] - level[low] for name, low, high in pairs}
    noise = ({name: _standard_error(level, counts, low, high) for name, low, high in pairs}
             if counts else {})
    real = {k: v for k, v in gaps.items() if v > 2 * noise.get(k, 0.0)}
    largest = max(real, key=lambda k: real[k]) if real else None
    return {"human_error": human_error, "errors": dict(errors),
            "gaps": {k: round(v, 6) for k, v in gaps.items()},
            "standard_errors": {k: round(v, 6) for k, v in noise.items()}, "largest": largest}


def _standard_error(level: dict[str, float], counts: dict[str, int], low: str,
                    high: str) -> float:
    """Standard error of ``level[high] - level[low]``: the two-proportion test's, with the
    pooled error rate (so a split with no mistakes still counts as uncertain); a level without
    a count (human-level) adds no uncertainty."""
    sized = [(level[k], counts[k]) for k in (low, high) if counts.get(k)]
    if not sized:
        return 0.0
    pooled = sum(e * n for e, n in sized) / sum(n for _, n in sized)
    return math.sqrt(pooled * (1 - pooled) * sum(1 / n for _, n in sized))


def table_markdown(diagnosis: dict[str, Any]) -> str:
    """The diagnosis as a Markdown table, with the advice for the largest gap."""
    errors, gaps = diagnosis["errors"], diagnosis["gaps"]
    noise = diagnosis.get("standard_errors", {})
    lines = ["| level | error | gap to the level above | ± 1 s.e. | |",
             "|---|---:|---:|---:|---|",
             f"| human-level (params) | {diagnosis['human_error']:.4f} | | | |"]
    names = {high: name for name, _, high, _ in _GAPS}
    if "train_dev" not in errors:
        names["val"] = "variance_or_mismatch"
    for split in ORDER:
        if split in errors:
            gap = names.get(split)
            shown = f"{gaps[gap]:+.4f}" if gap in gaps else ""
            se = f"{noise[gap]:.4f}" if gap in noise else ""
            label = gap or ""
            if gap in noise and gaps[gap] <= 2 * noise[gap]:
                label += " (within noise)"
            lines.append(f"| {split} | {errors[split]:.4f} | {shown} | {se} | {label} |")
    largest = diagnosis["largest"]
    advice = {name: hint for name, _, _, hint in _GAPS}
    advice["variance_or_mismatch"] = "add a train-dev split (split.train_dev) to tell them apart"
    if largest:
        lines += ["", f"Largest gap: **{largest}** ({gaps[largest]:+.4f}): {advice[largest]}."]
    else:
        lines += ["", "No gap stands out of the noise (2 standard errors): more test/val images "
                  "would be needed to tell them apart."]
    return "\n".join(lines) + "\n"
