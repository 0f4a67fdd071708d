"""Scores and pictures of one detector's run over the test split.

pycocotools gives AP at IoU 0.5 and COCO mAP@[.5:.95] (:mod:`pipeline.detect.scoring`); greedy
matching gives the recall at the equal-error point, by IoU >= 0.5 and by the dataset's own rule
where it has one. Pictures are drawn at the detector's operating point, the score threshold of
best F by IoU: test images with ground truth (green) and detections (blue when right, red
when wrong), a grid of the highest-scoring false positives and one of the missed objects.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline.detect.boxes import AnnotatedImage, Detection
from pipeline.detect.detector import DetectRun
from pipeline.detect.drawing import crop_grid, cut, misses, save_drawn, save_image, worst_false_positives
from pipeline.detect.scoring import Rule, coco_scores, dataset_rule_scores, match_image
from pipeline.detect.windows import read_image
from pipeline.io import atomic


def aligned(test: Sequence[AnnotatedImage], run: DetectRun) -> list[list[Detection]]:
    """The run's detections in the order of ``test``; an image the run skipped has none (its
    objects count as missed)."""
    by_path = dict(zip(run.paths, run.detections, strict=True))
    return [list(by_path.get(image.path, [])) for image in test]


def _operating(detections: list[list[Detection]], threshold: float | None) -> list[list[Detection]]:
    if threshold is None:
        return detections
    return [[d for d in dets if d.score >= threshold] for dets in detections]


def _pr_csv(points: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["recall", "precision"], lineterminator="\n")
    writer.writeheader()
    writer.writerows({"recall": round(p["recall"], 4), "precision": round(p["precision"], 4)}
                     for p in points)
    return buffer.getvalue()


class _Pixels:
    """RGB pixels of ``test[i]``, each image decoded once however many crops it gives."""

    def __init__(self, test: Sequence[AnnotatedImage]):
        self.test, self.cache = test, {}

    def __getitem__(self, index: int) -> np.ndarray:
        if index not in self.cache:
            self.cache[index] = read_image(self.test[index].path, 3)
        return self.cache[index]


def score(name: str, test: Sequence[AnnotatedImage], labels: Sequence[str], run: DetectRun,
          out: Path, rule: Rule | None = None, draw: int = 6, grid: int = 16) -> dict:
    """Score ``run`` against ``test``; write ``out/pr/<name>.csv`` and the pictures under
    ``out/images/``; return the full record (the stage keeps headline numbers as metrics)."""
    detections = aligned(test, run)
    coco = coco_scores(test, labels, detections)
    by_iou = dataset_rule_scores(test, detections, "iou")
    record = {"ap50": coco["ap50"], "map": coco["map"], "eer_recall_iou": by_iou["eer_recall"],
              "per_class": coco["per_class"], "iou": by_iou,
              "seconds_per_image": (sorted(run.seconds)[len(run.seconds) // 2]
                                    if run.seconds else None),
              "images": len(test), "skipped": len(run.skipped)}
    if rule is not None:
        record["dataset_rule"] = dataset_rule_scores(test, detections, rule)
    atomic.write_text(out / "pr" / f"{name}.csv", _pr_csv(coco["pr"]))
    shown = _operating(detections, by_iou.get("f_threshold"))
    record["drawn_at"] = by_iou.get("f_threshold")
    pictures = out / "images"
    pixels = _Pixels(test)
    with_boxes = sorted(range(len(test)), key=lambda i: (not test[i].boxes, test[i].path))
    for rank, index in enumerate(with_boxes[:draw]):
        image = test[index]
        tp, _ = match_image(image, shown[index])
        save_drawn(pictures / f"{name}_{rank:02d}.png", pixels[index], image.boxes,
                   shown[index], tp)
    false = worst_false_positives(test, shown, grid)
    save_image(pictures / f"{name}_false_positives.png", crop_grid(
        [cut(pixels[i], d.xyxy) for i, d in false],
        [f"{d.label} {d.score:.2f}" for _, d in false], cols=8))
    missed = misses(test, shown, grid)
    save_image(pictures / f"{name}_misses.png", crop_grid(
        [cut(pixels[i], b.xyxy) for i, b in missed],
        [f"{b.label} {Path(test[i].path).name}" for i, b in missed], cols=8))
    return record


def headline(records: dict[str, dict]) -> dict[str, dict]:
    """The few numbers per detector that go to metrics.json."""
    out = {}
    for name, record in records.items():
        numbers = {"ap50": record["ap50"], "map": record["map"],
                   "eer_recall_iou": record["eer_recall_iou"]}
        if "dataset_rule" in record:
            numbers["eer_recall_rule"] = record["dataset_rule"]["eer_recall"]
        if record["seconds_per_image"] is not None:
            numbers["ms_per_image"] = round(record["seconds_per_image"] * 1000, 1)
        out[name] = {k: round(v, 4) if isinstance(v, float) else v for k, v in numbers.items()}
    return out
