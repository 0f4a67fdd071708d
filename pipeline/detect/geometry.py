"""Image pyramids, sliding windows, IoU and non-maxima suppression.

OpenCV does the resizing (``cv2.resize`` with area interpolation when shrinking) and the greedy
IoU suppression (``cv2.dnn.NMSBoxes``); numpy's ``sliding_window_view`` cuts the windows without
copying the image. Box voting (Gidaris and Komodakis, ICCV 2015) is numpy here: no maintained
library refines one detector's kept boxes this way (ensemble-boxes' fusion also re-scores them
and clusters without NMS).
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np


def resize(image: np.ndarray, factor: float) -> np.ndarray:
    """``image`` scaled by ``factor`` (area interpolation when shrinking, linear when enlarging)."""
    height, width = image.shape[:2]
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    out = cv2.resize(image, size, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)
    return out.reshape(size[1], size[0], *image.shape[2:])


def pyramid(image: np.ndarray, scale: float, min_hw: tuple[int, int],
            upscale: float = 1.0) -> Iterator[tuple[float, np.ndarray]]:
    """Levels of ``image`` from ``upscale`` times its size down by ``scale`` each step, while
    both sides are at least ``min_hw``; each comes with the factor from level to original pixels.

    ``scale`` must exceed 1. A level is resized from the original, not from the one before.
    """
    if scale <= 1.0:
        raise ValueError(f"pyramid scale must exceed 1, got {scale}")
    height, width = image.shape[:2]
    factor = upscale
    while round(height * factor) >= min_hw[0] and round(width * factor) >= min_hw[1]:
        yield 1.0 / factor, image if factor == 1.0 else resize(image, factor)
        factor /= scale


def window_origins(image_hw: tuple[int, int], window_hw: tuple[int, int], step: int) -> np.ndarray:
    """``(N, 2)`` top-left corners ``(y, x)`` of every ``window_hw`` window ``step`` pixels apart
    that fits inside ``image_hw``, row by row."""
    ys = np.arange(0, image_hw[0] - window_hw[0] + 1, step)
    xs = np.arange(0, image_hw[1] - window_hw[1] + 1, step)
    grid = np.stack(np.meshgrid(ys, xs, indexing="ij"), axis=-1)
    return grid.reshape(-1, 2)


def cut_windows(image: np.ndarray, origins: np.ndarray, window_hw: tuple[int, int]) -> np.ndarray:
    """The ``(N, h, w, ...)`` windows of ``image`` at ``origins`` (a copy)."""
    if not len(origins):
        return np.empty((0, *window_hw, *image.shape[2:]), image.dtype)
    view = np.lib.stride_tricks.sliding_window_view(image, window_hw, axis=(0, 1))
    windows = view[origins[:, 0], origins[:, 1]]
    # sliding_window_view puts the window axes last: (N, C, h, w) for colour images.
    return np.moveaxis(windows, (-2, -1), (1, 2)) if image.ndim == 3 else windows


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(N, M)`` intersection over union of ``x0, y0, x1, y1`` boxes ``a`` and ``b``."""
    a = np.asarray(a, np.float64).reshape(-1, 4)[:, None]
    b = np.asarray(b, np.float64).reshape(-1, 4)[None]
    w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = w * h
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a + area_b - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices of the boxes greedy non-maxima suppression keeps, best score first: a box is
    dropped when its IoU with a kept, higher-scoring one exceeds ``iou``."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if not len(boxes):
        return np.empty(0, np.int64)
    xywh = np.column_stack([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]])
    # OpenCV wants float32 scores >= its threshold >= 0: pass dense ranks (1, 2, ...), which
    # keep the order and the ties exactly however wide the scores range.
    ranks = np.unique(np.asarray(scores, np.float64), return_inverse=True)[1] + 1.0
    keep = cv2.dnn.NMSBoxes(xywh.tolist(), ranks.reshape(-1).tolist(), 0.0, float(iou))
    return np.asarray(keep, np.int64).reshape(-1)


def nms_per_class(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float,
                  cap: int | None = None) -> np.ndarray:
    """:func:`nms` within each class; the kept indices by descending score, at most ``cap``."""
    classes = np.asarray(classes)
    kept = [np.flatnonzero(classes == c)[nms(boxes[classes == c], scores[classes == c], iou)]
            for c in np.unique(classes)]
    order = np.concatenate(kept) if kept else np.empty(0, np.int64)
    order = order[np.argsort(-np.asarray(scores)[order], kind="stable")]
    return order[:cap] if cap else order


def vote(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, kept: np.ndarray,
         iou: float) -> np.ndarray:
    """Box voting: each kept box moved to the mean of the boxes of its class that overlap it by
    IoU >= ``iou`` (itself included), each weighted by its score through the logistic function
    (the probability, for log-odds scores). ``(len(kept), 4)`` boxes in ``kept``'s order; the
    scores stay the kept boxes' own."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    kept = np.asarray(kept, np.int64).reshape(-1)
    if not len(kept):
        return np.empty((0, 4))
    classes = np.asarray(classes)
    weights = 1.0 / (1.0 + np.exp(-np.asarray(scores, np.float64)))
    near = (iou_matrix(boxes[kept], boxes) >= iou) & (classes[kept][:, None] == classes[None])
    near[np.arange(len(kept)), kept] = True
    voting = near * weights[None]
    return voting @ boxes / voting.sum(axis=1, keepdims=True)
