"""The explain stage: a split predicted, its most confident mistakes and one correct image per
class explained by Grad-CAM, drawn, checked and written.

The model is read as ``evaluate`` reads it (:class:`pipeline.evaluate.evaluation.Scorer`:
``model.keras`` and the preprocessing of ``preprocess.json``) and the mistakes are picked as
its ``misclassified.png`` picks them (:func:`pipeline.evaluate.gallery.misclassified`). Two
checks say whether the heatmaps point at something: the share of heat on the image's
brighter-than-average pixels (beside their share of the area, what a flat map would score),
and the drop of the explained class's probability when the hottest pixels are blacked out
(beside the drop for as many random pixels).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from pipeline.io import atomic
from pipeline.io.errors import InputError

if TYPE_CHECKING:
    from pipeline.config.explain import ExplainParams

#: Share of each image's pixels blacked out by the deletion check.
DELETED = 0.1


@dataclass(frozen=True)
class Pick:
    """One explained image: its index in the split, why it was picked, its labels."""

    index: int
    kind: str  # "mistake" or "correct"
    label: int
    predicted: int
    confidence: float


def pick(labels: np.ndarray, probabilities: np.ndarray, mistakes: int,
         per_class: int) -> list[Pick]:
    """The ``mistakes`` most confident wrong predictions, then the ``per_class`` most confident
    right ones of each class (fewer where a class has fewer)."""
    from pipeline.evaluate.gallery import misclassified

    predicted = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    chosen = [("mistake", int(i)) for i in misclassified(labels, predicted, confidence, mistakes)]
    for c in range(probabilities.shape[1]):
        right = np.flatnonzero((labels == c) & (predicted == c))
        best = right[np.argsort(-confidence[right], kind="stable")][:per_class]
        chosen.extend(("correct", int(i)) for i in best)
    return [Pick(i, kind, int(labels[i]), int(predicted[i]), float(confidence[i]))
            for kind, i in chosen]


def read_images(path: Path, indices: list[int]) -> np.ndarray:
    """The images at ``indices`` of an HDF5 split, in that order (read in file order)."""
    with h5py.File(path, "r") as f:
        images = f["images"]
        if not indices:
            return np.empty((0, *images.shape[1:]), images.dtype)
        read = {i: images[i] for i in sorted(set(indices))}
    return np.stack([read[i] for i in indices])


def brightness_share(heat: np.ndarray, view: np.ndarray) -> tuple[float, float]:
    """Share of the heat ``(H, W)`` on the pixels of ``view`` ``(H, W, C)`` brighter than its
    mean, and those pixels' share of the area (what a flat heatmap would score); NaN heat
    share for a map without heat."""
    grey = np.asarray(view, np.float32).mean(axis=-1)
    bright = grey > grey.mean()
    total = float(heat.sum())
    return (float(heat[bright].sum()) / total if total > 0 else float("nan"),
            float(bright.mean()))


def deleted(views: np.ndarray, heat: np.ndarray, rng: np.random.Generator
            ) -> tuple[np.ndarray, np.ndarray]:
    """``views`` with the hottest :data:`DELETED` of each image's pixels set to 0, and with as
    many random pixels set to 0."""
    n, h, w = heat.shape
    count = max(1, round(DELETED * h * w))
    hot, random = views.copy(), views.copy()
    for i in range(n):
        top = np.argsort(-heat[i].ravel(), kind="stable")[:count]
        hot[i].reshape(h * w, -1)[top] = 0
        random[i].reshape(h * w, -1)[rng.choice(h * w, count, replace=False)] = 0
    return hot, random


def explain(params: ExplainParams, data: Path, out: Path, seed: int = 0) -> dict[str, Any]:
    """Explain ``params.split`` of ``data`` with the model in ``params.model``; write
    ``images/*.png`` (one overlay each, labels and confidence in the name), ``grid.png``,
    ``report.json`` (one row per image) and ``metrics.json`` as one set. Returns the metrics.

    :class:`InputError` for a model folder without a Keras model, a split without images or a
    layer the model does not have.
    """
    from pipeline.evaluate.evaluation import Scorer
    from pipeline.explain.gradcam import GradCAM, upsample

    model_dir = Path(params.model)
    if not (model_dir / "model.keras").is_file() or not (model_dir / "preprocess.json").is_file():
        raise InputError(f"explain.model: {model_dir} has no model.keras and preprocess.json "
                         "(Grad-CAM needs a Keras model that reads images, from train or finetune)")
    split_path = data / f"{params.split}.h5"
    scorer = Scorer(model_dir, params.batch_size)
    prediction = scorer.predict(split_path)
    if not len(prediction.labels):
        raise InputError(f"explain.split: {split_path} has no images")
    cam = GradCAM(scorer.model, params.layer)
    picks = pick(prediction.labels, prediction.probabilities, params.mistakes, params.per_class)
    views = np.asarray(scorer.preprocessor.crop_batch(read_images(split_path, [p.index for p in picks])))
    inputs = scorer.preprocessor.normalise(views)
    maps = cam.heatmaps(inputs, [p.predicted for p in picks]) if picks else np.zeros((0, 1, 1))
    heat = upsample(maps, views.shape[1:3])
    rows, checks = _rows(picks, prediction, heat, views, maps)
    drops = _deletion(scorer, cam, views, heat, picks, seed)
    wrong = int((prediction.labels != prediction.probabilities.argmax(axis=1)).sum())
    mistakes = [p for p in picks if p.kind == "mistake"]
    metrics = {
        "split": params.split, "layer": cam.layer, "images": len(picks),
        "mistakes_found": wrong, "mistakes_explained": len(mistakes),
        "correct_explained": len(picks) - len(mistakes),
        "rank1": round(1.0 - wrong / len(prediction.labels), 6),
        "mistake_confidence": _mean([p.confidence for p in mistakes]),
        "heat_on_bright": _mean([c[0] for c in checks]),
        "bright_area": _mean([c[1] for c in checks]),
        **drops,
        "flat_maps": int(sum(not m.any() for m in maps)),
    }
    _write(params, out, picks, rows, views, maps, prediction.classes, metrics)
    return metrics


def _mean(values: list[float]) -> float | None:
    kept = [v for v in values if not np.isnan(v)]
    return round(float(np.mean(kept)), 6) if kept else None


def _rows(picks: list[Pick], prediction: Any, heat: np.ndarray, views: np.ndarray,
          maps: np.ndarray) -> tuple[list[dict[str, Any]], list[tuple[float, float]]]:
    from pipeline.explain.overlay import safe

    classes, rows, checks = prediction.classes, [], []
    counts = {"mistake": 0, "correct": 0}
    for p, h, view, m in zip(picks, heat, views, maps, strict=True):
        counts[p.kind] += 1
        check = brightness_share(h, view)
        checks.append(check)
        peak = np.unravel_index(int(np.argmax(h)), h.shape)
        rows.append({
            "file": f"images/{p.kind}_{counts[p.kind]:02d}_true-{safe(classes[p.label])}_pred-"
                    f"{safe(classes[p.predicted])}_{p.confidence:.2f}.png",
            "kind": p.kind, "index": p.index, "path": prediction.paths[p.index],
            "true": classes[p.label], "predicted": classes[p.predicted],
            "confidence": round(p.confidence, 6), "peak": [int(peak[0]), int(peak[1])],
            "heat_on_bright": None if np.isnan(check[0]) else round(check[0], 6),
            "flat": not m.any(),
        })
    return rows, checks


def _deletion(scorer: Any, cam: Any, views: np.ndarray, heat: np.ndarray, picks: list[Pick],
              seed: int) -> dict[str, float | None]:
    """Mean drop of the explained class's probability with the hottest pixels blacked out, and
    with random ones."""
    if not picks:
        return {"drop_hot": None, "drop_random": None}
    hot, random = deleted(views, heat, np.random.default_rng(seed))
    batch = np.concatenate([views, hot, random])
    probabilities = scorer.model.predict(scorer.preprocessor.normalise(batch),
                                         batch_size=scorer.batch_size, verbose=0)
    target = np.asarray([p.predicted for p in picks])
    before, after_hot, after_random = (probabilities[k * len(picks):(k + 1) * len(picks)]
                                       [np.arange(len(picks)), target] for k in range(3))
    return {"drop_hot": round(float(np.mean(before - after_hot)), 6),
            "drop_random": round(float(np.mean(before - after_random)), 6)}


def _write(params: ExplainParams, out: Path, picks: list[Pick], rows: list[dict[str, Any]],
           views: np.ndarray, maps: np.ndarray, classes: list[str],
           metrics: dict[str, Any]) -> None:
    """Every output as one set; overlays of an earlier run that this one lacks are removed."""
    from pipeline.explain.overlay import blend, captioned_grid, save_png

    overlays = [blend(v, m, params.colormap, params.alpha, params.display)
                for v, m in zip(views, maps, strict=True)]
    files = [out / row["file"] for row in rows]
    old = sorted((out / "images").glob("*.png")) if (out / "images").is_dir() else []
    titles = [f"{p.kind}: true {classes[p.label]}\npred {classes[p.predicted]} ({p.confidence:.2f})"
              for p in picks]
    targets = [*files, out / "grid.png", out / "report.json", out / "metrics.json"]
    with atomic.atomic_paths(targets, remove=[f for f in old if f not in files]) as temps:
        for overlay, tmp in zip(overlays, temps, strict=False):
            save_png(overlay, tmp)
        save_png(captioned_grid(overlays, titles, f"Grad-CAM at {metrics['layer']} "
                                f"({params.split}): {metrics['mistakes_explained']} most "
                                f"confident mistakes, {metrics['correct_explained']} correct"),
                 temps[len(files)])
        report = {"model": params.model, "layer": metrics["layer"], "classes": classes,
                  "images": rows}
        temps[-2].write_text(_json(report))
        temps[-1].write_text(_json(metrics))


def _json(data: Any) -> str:
    import json

    return json.dumps(data, indent=2) + "\n"
