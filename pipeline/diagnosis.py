"""Bias/variance diagnosis by Ng's recipe: the error on each split and the gaps between them.

human-level (Bayes) error -> train -> train-dev -> val (dev) -> test. Each gap names a problem:

- avoidable bias = train - human-level: the model underfits (bigger model, train longer);
- variance = train-dev - train: it does not generalise to unseen images from the training
  distribution (more data, regularisation, augmentation);
- data mismatch = val - train-dev: the val/test images differ from the training ones;
- overfitting to val = test - val: too much tuning on the val split.

Without a train-dev split, variance and data mismatch cannot be told apart: their sum,
val - train, is reported as ``variance_or_mismatch``.
"""

from __future__ import annotations

from typing import Any

#: The splits in the order the recipe reads them.
ORDER = ("train", "train_dev", "val", "test")

_GAPS = (
    ("avoidable_bias", "human", "train", "bigger model, longer training, better optimizer"),
    ("variance", "train", "train_dev", "more data, regularisation, augmentation"),
    ("data_mismatch", "train_dev", "val", "make training data more like val/test"),
    ("val_overfit", "val", "test", "a larger val split, less tuning against it"),
)


def diagnose(errors: dict[str, float], human_error: float = 0.0) -> dict[str, Any]:
    """The gaps between consecutive errors, and the largest one (the thing to work on next).

    ``errors`` maps split name to error rate (1 - rank-1) for the splits that exist.
    """
    level = {"human": human_error, **errors}
    gaps: dict[str, float] = {}
    for name, low, high, _ in _GAPS:
        if low in level and high in level:
            gaps[name] = level[high] - level[low]
    if "train_dev" not in errors and {"train", "val"} <= errors.keys():
        gaps["variance_or_mismatch"] = errors["val"] - errors["train"]
    largest = max(gaps, key=lambda k: gaps[k]) if gaps else None
    return {"human_error": human_error, "errors": dict(errors),
            "gaps": {k: round(v, 6) for k, v in gaps.items()}, "largest": largest}


def table_markdown(diagnosis: dict[str, Any]) -> str:
    """The diagnosis as a Markdown table, with the advice for the largest gap."""
    errors, gaps = diagnosis["errors"], diagnosis["gaps"]
    lines = ["| level | error | gap to the level above | |", "|---|---:|---:|---|",
             f"| human-level (params) | {diagnosis['human_error']:.4f} | | |"]
    names = {high: name for name, _, high, _ in _GAPS}
    if "train_dev" not in errors:
        names["val"] = "variance_or_mismatch"
    for split in ORDER:
        if split in errors:
            gap = names.get(split)
            shown = f"{gaps[gap]:+.4f}" if gap in gaps else ""
            lines.append(f"| {split} | {errors[split]:.4f} | {shown} | {gap or ''} |")
    largest = diagnosis["largest"]
    advice = {name: hint for name, _, _, hint in _GAPS}
    advice["variance_or_mismatch"] = "add a train-dev split (split.train_dev) to tell them apart"
    if largest:
        lines += ["", f"Largest gap: **{largest}** ({gaps[largest]:+.4f}): {advice[largest]}."]
    return "\n".join(lines) + "\n"
