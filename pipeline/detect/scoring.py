"""Scoring detections: COCO average precision, and greedy matching by IoU or the UIUC rule.

``pycocotools`` does the COCO scores (``COCOeval`` with ``iouType="bbox"``: AP at IoU 0.5, mAP over
IoU 0.5:0.95, the interpolated precision-recall curve). The greedy matcher below gives the
figures a dataset's own evaluator reports: recall and precision at the equal-error point and at
the best F. It keeps one detection per object, highest score first; the other detections of a
matched object are false positives, and so is every detection on a negative image.

Two matching rules:

- ``"iou"``: same label and IoU >= ``iou`` (0.5 by default); a detection takes the still
  unmatched box it overlaps most, as ``COCOeval`` does.
- ``"uiuc"`` / ``"uiuc_scale"``: the UIUC cars criterion (Agarwal, Awan & Roth, TPAMI 2004; the
  CarData README): the detection's centre lies within an ellipse centred at the true box's centre
  whose semi-axes are 25% of the true box's width and height. ``"uiuc_scale"`` is the multi-scale
  test's ellipsoid, which adds the width as a third axis of the same ellipsoid (semi-axis 25% of
  the true width): ``(dx / .25w)² + (dy / .25h)² + (dw / .25w)² <= 1``. The true box is its
  unclipped ``Box.source`` (``x0, y0, x1, y1``) where it has one. The dataset's evaluator compares
  top-left corners; with the fixed 100 x 40 window of the single-scale test that is the same as
  comparing centres, and centres are used here so that a box of another size is judged by where
  it is, not by where its corner is. A detection takes the unmatched true box nearest in that
  ellipse distance.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Literal

import numpy as np

from pipeline.detect.boxes import AnnotatedImage, Box, Detection, to_coco, xyxy
from pipeline.detect.geometry import iou_matrix

Rule = Literal["iou", "uiuc", "uiuc_scale"]
RULES = ("iou", "uiuc", "uiuc_scale")
UIUC_AXIS = 0.25


def _check(images: Sequence[AnnotatedImage], detections: Sequence[Sequence[Detection]]) -> None:
    if len(images) != len(detections):
        raise ValueError(f"{len(detections)} detection lists for {len(images)} images: "
                         "detections[i] must belong to images[i]")


def _order(dets: Sequence[Detection]) -> np.ndarray:
    """Indices of ``dets`` by descending score, ties in list order (as ``COCOeval`` sorts)."""
    return np.argsort(-np.asarray([d.score for d in dets], np.float64), kind="stable")


def _uiuc_distance(boxes: Sequence[Box], dets: Sequence[Detection], scale: bool) -> np.ndarray:
    """``(D, B)`` squared ellipse (or ellipsoid) distance of each detection from each true box;
    at most 1 is a hit."""
    true = np.asarray([box.source if box.source is not None else box.xyxy for box in boxes],
                      np.float64).reshape(-1, 4)
    found = xyxy(dets)
    width, height = true[:, 2] - true[:, 0], true[:, 3] - true[:, 1]
    centre_t = (true[:, :2] + true[:, 2:]) / 2
    centre_d = (found[:, :2] + found[:, 2:]) / 2
    dx = (centre_d[:, None, 0] - centre_t[None, :, 0]) / (UIUC_AXIS * width)
    dy = (centre_d[:, None, 1] - centre_t[None, :, 1]) / (UIUC_AXIS * height)
    distance = dx**2 + dy**2
    if scale:
        dw = ((found[:, 2] - found[:, 0])[:, None] - width[None]) / (UIUC_AXIS * width)
        distance = distance + dw**2
    return distance


def match_image(image: AnnotatedImage, dets: Sequence[Detection], iou: float = 0.5,
                rule: Rule = "iou") -> tuple[np.ndarray, np.ndarray]:
    """Greedy one-to-one matching in one image: ``(tp, matched)``, ``tp[i]`` whether ``dets[i]``
    is a true positive, ``matched[j]`` whether ``image.boxes[j]`` was found.

    Detections are taken highest score first; each takes the best unmatched box of its label
    that passes ``rule`` (largest IoU for ``"iou"``, smallest ellipse distance for the UIUC
    rules); a detection left without one is a false positive.
    """
    if rule not in RULES:
        raise ValueError(f"unknown matching rule {rule!r}; expected one of {', '.join(RULES)}")
    tp = np.zeros(len(dets), bool)
    matched = np.zeros(len(image.boxes), bool)
    if not len(dets) or not len(image.boxes):
        return tp, matched
    same = np.asarray([[d.label == b.label for b in image.boxes] for d in dets])
    if rule == "iou":
        quality = iou_matrix(xyxy(dets), xyxy(image.boxes))
        passes = (quality >= iou) & same
    else:
        quality = -_uiuc_distance(image.boxes, dets, scale=rule == "uiuc_scale")
        passes = (quality >= -1.0) & same
    for i in _order(dets):
        candidates = np.flatnonzero(passes[i] & ~matched)
        if len(candidates):
            matched[candidates[np.argmax(quality[i, candidates])]] = True
            tp[i] = True
    return tp, matched


def greedy_match(images: Sequence[AnnotatedImage], detections: Sequence[Sequence[Detection]],
                 rule: Rule = "iou", iou: float = 0.5) -> tuple[np.ndarray, np.ndarray, int]:
    """Every detection of every image matched by :func:`match_image`: ``(scores, tp, n_gt)``,
    the scores in descending order (ties keep image order), whether each is a true positive, and
    the number of true boxes."""
    _check(images, detections)
    scores, flags = [], []
    for image, dets in zip(images, detections, strict=True):
        tp, _ = match_image(image, dets, iou=iou, rule=rule)
        scores.append(np.asarray([d.score for d in dets], np.float64))
        flags.append(tp)
    scores_all = np.concatenate([np.empty(0), *scores])
    tp_all = np.concatenate([np.empty(0, bool), *flags])
    order = np.argsort(-scores_all, kind="stable")
    return scores_all[order], tp_all[order], sum(len(image.boxes) for image in images)


def pr_curve(scores: np.ndarray, tp: np.ndarray,
             n_gt: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(recall, precision, thresholds)`` of keeping every detection scoring at least each
    threshold; ``scores`` descending as :func:`greedy_match` returns them. Tied scores give one
    point (a threshold cannot split them)."""
    scores = np.asarray(scores, np.float64)
    tp = np.asarray(tp, bool)
    if not len(scores):
        return np.empty(0), np.empty(0), np.empty(0)
    true_pos = np.cumsum(tp)
    kept = np.arange(1, len(tp) + 1)
    last = np.flatnonzero(np.r_[scores[1:] != scores[:-1], True])
    recall = true_pos[last] / n_gt if n_gt else np.zeros(len(last))
    return recall, true_pos[last] / kept[last], scores[last]


def eer(recall: np.ndarray, precision: np.ndarray,
        thresholds: np.ndarray | None = None) -> dict:
    """The equal-error point of a precision-recall curve, where precision equals recall.

    Points with recall 0 are passed over (precision = recall = 0 there says nothing). The answer
    is linearly interpolated between the last point with precision above recall and the first
    with precision at or below it; its ``threshold`` is that of the nearer of the two. On a
    curve from :func:`pr_curve` precision equals recall exactly where as many detections are kept
    as there are objects (false positives then equal misses). A curve whose precision stays
    above its recall (fewer detections than objects) has no such point: the point closest to it
    is returned. No true positive at all: zeros and no threshold.
    """
    recall = np.asarray(recall, np.float64)
    precision = np.asarray(precision, np.float64)
    useful = np.flatnonzero(recall > 0)
    if not len(useful):
        return {"recall": 0.0, "precision": 0.0, "threshold": None}
    gap = precision[useful] - recall[useful]

    def threshold(i: int) -> float | None:
        return None if thresholds is None else float(thresholds[useful[i]])

    below = np.flatnonzero(gap <= 0)
    if not len(below):
        i = int(np.argmin(np.abs(gap)))
        return {"recall": float(recall[useful[i]]), "precision": float(precision[useful[i]]),
                "threshold": threshold(i)}
    j = int(below[0])
    if j == 0:
        return {"recall": float(recall[useful[0]]), "precision": float(precision[useful[0]]),
                "threshold": threshold(0)}
    # gap goes from positive at j - 1 to <= 0 at j: its zero lies at fraction t of the step.
    t = gap[j - 1] / (gap[j - 1] - gap[j])
    r = recall[useful[j - 1]] + t * (recall[useful[j]] - recall[useful[j - 1]])
    p = precision[useful[j - 1]] + t * (precision[useful[j]] - precision[useful[j - 1]])
    return {"recall": float(r), "precision": float(p), "threshold": threshold(j if t >= 0.5 else j - 1)}


def best_f(recall: np.ndarray, precision: np.ndarray, thresholds: np.ndarray) -> dict:
    """The curve point with the largest F-measure (``2pr / (p + r)``): precision, recall, f,
    threshold (zeros and no threshold for an empty curve or no true positive)."""
    recall = np.asarray(recall, np.float64)
    precision = np.asarray(precision, np.float64)
    total = recall + precision
    f = np.divide(2 * recall * precision, total, out=np.zeros_like(total), where=total > 0)
    if not len(f) or f.max() <= 0:
        return {"precision": 0.0, "recall": 0.0, "f": 0.0, "threshold": None}
    i = int(np.argmax(f))
    return {"precision": float(precision[i]), "recall": float(recall[i]), "f": float(f[i]),
            "threshold": float(thresholds[i])}


def dataset_rule_scores(images: Sequence[AnnotatedImage], detections: Sequence[Sequence[Detection]],
                        rule: Rule = "iou", iou: float = 0.5) -> dict:
    """A dataset evaluator's figures under ``rule``: the equal-error point (``eer_recall``,
    ``eer_precision``, ``eer_threshold``), the best-F point (``precision``, ``recall``, ``f``,
    ``f_threshold``) and the counts (``detections``, ``true_positives`` over all detections,
    ``objects``)."""
    scores, tp, n_gt = greedy_match(images, detections, rule=rule, iou=iou)
    recall, precision, thresholds = pr_curve(scores, tp, n_gt)
    equal = eer(recall, precision, thresholds)
    best = best_f(recall, precision, thresholds)
    return {"rule": rule,
            "eer_recall": equal["recall"], "eer_precision": equal["precision"],
            "eer_threshold": equal["threshold"],
            "precision": best["precision"], "recall": best["recall"], "f": best["f"],
            "f_threshold": best["threshold"],
            "detections": len(scores), "true_positives": int(tp.sum()), "objects": n_gt}


def _coco_eval(images: Sequence[AnnotatedImage], labels: Sequence[str],
               detections: Sequence[Sequence[Detection]]):
    """A ``COCOeval`` after ``evaluate`` and ``accumulate``, its prints swallowed."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    ids = {label: i + 1 for i, label in enumerate(labels)}
    results = []
    for image_id, dets in enumerate(detections, start=1):
        for det in dets:
            if det.label not in ids:
                raise ValueError(f"detection label {det.label!r} in image {images[image_id - 1].path} "
                                 f"is not one of the labels {list(labels)}")
            results.append({"image_id": image_id, "category_id": ids[det.label],
                            "bbox": det.xywh, "score": float(det.score)})
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO()
        truth.dataset = to_coco(images, labels)
        truth.createIndex()
        found = truth.loadRes(results)
        evaluation = COCOeval(truth, found, iouType="bbox")
        most = max(len(dets) for dets in detections)
        evaluation.params.maxDets = [1, 10, max(100, most)]
        evaluation.evaluate()
        evaluation.accumulate()
    return evaluation


def _mean_valid(values: np.ndarray) -> float | None:
    valid = values[values > -1]
    return float(valid.mean()) if valid.size else None


def coco_scores(images: Sequence[AnnotatedImage], labels: Sequence[str],
                detections: Sequence[Sequence[Detection]]) -> dict:
    """COCO box scores of ``detections`` (``detections[i]`` found in ``images[i]``) by ``COCOeval``.

    ``ap50``: AP at IoU 0.5 and ``map``: AP averaged over IoU 0.5:0.95, each the mean over the
    classes that have ground truth (``None`` when none has); ``per_class``: the same per label
    (``None`` for a label without ground truth); ``pr``: the 101-point interpolated
    precision-recall curve at IoU 0.5 averaged over those classes; ``eer_recall_iou``: recall at
    the equal-error point of greedy IoU >= 0.5 matching (:func:`dataset_rule_scores`). The
    per-image detection cap is raised to the most detections in one image, so none is dropped;
    detections on negative images are false positives.
    """
    _check(images, detections)
    has_truth = {label: any(box.label == label for image in images for box in image.boxes)
                 for label in labels}
    recall_points = np.linspace(0.0, 1.0, 101)
    if not any(len(dets) for dets in detections):
        per_class = {label: ({"ap50": 0.0, "map": 0.0} if has_truth[label] else None)
                     for label in labels}
        pr = [{"recall": float(r), "precision": 0.0} for r in recall_points]
        some = any(has_truth.values())
        return {"ap50": 0.0 if some else None, "map": 0.0 if some else None,
                "per_class": per_class, "pr": pr if some else [], "eer_recall_iou": 0.0}
    evaluation = _coco_eval(images, labels, detections)
    # precision: [IoU thresholds, recall thresholds, classes, area ranges, max dets]; -1 where a
    # class has no ground truth. Area range 0 is "all", the last max-dets entry the uncapped one.
    precision = evaluation.eval["precision"][:, :, :, 0, -1]
    per_class = {}
    for k, label in enumerate(labels):
        ap50, mean_ap = _mean_valid(precision[0, :, k]), _mean_valid(precision[:, :, k])
        per_class[label] = None if ap50 is None else {"ap50": ap50, "map": mean_ap}
    scored = [v for v in per_class.values() if v is not None]
    pr = []
    for r, row in zip(evaluation.params.recThrs, precision[0], strict=True):
        value = _mean_valid(row)
        if value is not None:
            pr.append({"recall": float(r), "precision": value})
    return {"ap50": float(np.mean([v["ap50"] for v in scored])) if scored else None,
            "map": float(np.mean([v["map"] for v in scored])) if scored else None,
            "per_class": per_class, "pr": pr,
            "eer_recall_iou": dataset_rule_scores(images, detections, "iou")["eer_recall"]}
