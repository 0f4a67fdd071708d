"""Any window classifier as a detector: image pyramid, sliding window, batches, per-class NMS.

Windows from every level of the pyramid are gathered into batches of ``batch_size`` before they
are classified, so small levels do not mean small batches. Windows may reach past the image
border (``pad``, over the mirrored image) and be scored with their mirror images (``flip``).
Each window keeps its best object class when that score reaches the threshold; boxes go back to
the original image's pixels and greedy non-maxima suppression (OpenCV) runs within each class;
with ``vote_iou`` each kept box then moves to the score-weighted mean of the boxes around it. A
cascade (:mod:`pipeline.detect.cascade`) is a detector of its own with the same ``detect``
method.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from pipeline.detect.boxes import Detection
from pipeline.detect.geometry import cut_windows, nms_per_class, pyramid, vote, window_origins
from pipeline.detect.windows import read_image
from pipeline.io.images import RejectedImage
from pipeline.io.progress import progress


class WindowClassifier(Protocol):
    """What the sliding-window detector needs of a classifier."""

    window: tuple[int, int]
    channels: int
    classes: list[str]

    def scores(self, windows: np.ndarray) -> np.ndarray:
        """``(N, len(classes))`` scores of uint8 ``(N, h, w, channels)`` windows."""
        ...


class Detector(Protocol):
    """Finds boxes in one image."""

    channels: int

    def detect(self, image: np.ndarray) -> list[Detection]: ...


@dataclass(frozen=True)
class Scan:
    """How a window classifier is slid over an image."""

    threshold: float
    scale: float = 1.25
    upscale: float = 1.0
    step: int = 4
    batch_size: int = 512
    nms_iou: float = 0.3
    max_detections: int = 100
    pad: float = 0.0
    flip: bool = False
    vote_iou: float | None = None


def levels(image: np.ndarray, window: tuple[int, int], scan: Scan,
           ) -> Iterator[tuple[float, np.ndarray, np.ndarray, np.ndarray]]:
    """``(factor, level, origins, boxes)`` per pyramid level: the level (mirror-padded by
    ``scan.pad`` times the window on every side), the window corners ``(y, x)`` in it, and
    their boxes ``x0, y0, x1, y1`` in the original image's pixels (reaching past its border by
    up to the padding)."""
    wh, ww = window
    py, px = round(wh * scan.pad), round(ww * scan.pad)
    for factor, level in pyramid(image, scan.scale, window, scan.upscale):
        if py or px:
            spread = ((min(py, level.shape[0] - 1),) * 2, (min(px, level.shape[1] - 1),) * 2)
            level = np.pad(level, spread + ((0, 0),) * (level.ndim - 2), mode="reflect")
            top, left = spread[0][0], spread[1][0]
        else:
            top = left = 0
        origins = window_origins(level.shape[:2], window, scan.step)
        y, x = origins[:, 0] - top, origins[:, 1] - left
        yield factor, level, origins, np.column_stack([x, y, x + ww, y + wh]) * factor


def scan_windows(image: np.ndarray, window: tuple[int, int], scan: Scan,
                 ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Batches of ``(windows, boxes)``: windows of every pyramid level (see :func:`levels`),
    boxes ``x0, y0, x1, y1`` in the original image's pixels, ``scan.batch_size`` at a time (the
    last one smaller).

    The corners of every level are listed first, so a batch spans levels and each window is
    copied once, straight into its batch."""
    wh, ww = window
    pixels, corners, boxes = [], [], []
    for index, (_, level, origins, level_boxes) in enumerate(levels(image, window, scan)):
        pixels.append(level)
        corners.append(np.column_stack([np.full(len(origins), index), origins]))
        boxes.append(level_boxes)
    if not corners:
        return
    every, every_box = np.concatenate(corners), np.concatenate(boxes)
    for start in range(0, len(every), scan.batch_size):
        chunk = every[start:start + scan.batch_size]
        windows = np.empty((len(chunk), wh, ww, *image.shape[2:]), image.dtype)
        for index in np.unique(chunk[:, 0]):
            mine = chunk[:, 0] == index
            windows[mine] = cut_windows(pixels[index], chunk[mine, 1:], window)
        yield windows, every_box[start:start + scan.batch_size]


@dataclass
class WindowDetector:
    """A :class:`WindowClassifier` slid over the image pyramid."""

    classifier: WindowClassifier
    scan: Scan
    windows_seen: int = field(default=0, init=False)

    @property
    def channels(self) -> int:
        return self.classifier.channels

    def _scored(self, image: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(scores, boxes)`` for every window: level by level where the classifier scores a
        whole level at once (HOG + SVM), else batch by batch. With ``scan.flip`` a window's
        score is the mean of its own and its mirror image's."""
        window, scan = self.classifier.window, self.scan
        dense = getattr(self.classifier, "level_scores", None)
        if dense is not None:
            for _, level, origins, boxes in levels(image, window, scan):
                if not len(origins):
                    continue
                scores = np.asarray(dense(level, origins))
                if scan.flip:
                    mirrored = origins.copy()
                    mirrored[:, 1] = level.shape[1] - window[1] - origins[:, 1]
                    scores = (scores + np.asarray(dense(level[:, ::-1], mirrored))) / 2
                yield scores, boxes
            return
        for windows, boxes in scan_windows(image, window, scan):
            scores = np.asarray(self.classifier.scores(windows))
            if scan.flip:
                scores = (scores + np.asarray(self.classifier.scores(windows[:, :, ::-1]))) / 2
            yield scores, boxes

    def detect(self, image: np.ndarray) -> list[Detection]:
        boxes, scores, classes = [], [], []
        for objects, level_boxes in self._scored(image):
            self.windows_seen += len(objects)
            objects = np.asarray(objects)[:, 1:]
            best = objects.argmax(axis=1)
            best_score = objects[np.arange(len(objects)), best]
            keep = best_score >= self.scan.threshold
            boxes.append(level_boxes[keep])
            scores.append(best_score[keep])
            classes.append(best[keep] + 1)
        if not boxes:
            return []
        all_boxes, all_scores = np.concatenate(boxes), np.concatenate(scores)
        all_classes = np.concatenate(classes)
        kept = nms_per_class(all_boxes, all_scores, all_classes, self.scan.nms_iou,
                             self.scan.max_detections or None)
        found = (all_boxes[kept] if self.scan.vote_iou is None
                 else vote(all_boxes, all_scores, all_classes, kept, self.scan.vote_iou))
        names = self.classifier.classes
        return [Detection(names[all_classes[i]], float(all_scores[i]), *map(float, box))
                for i, box in zip(kept, found, strict=True)]


@dataclass
class DetectRun:
    """Detections per image, images that could not be read, and seconds per image."""

    paths: list[str]
    detections: list[list[Detection]]
    skipped: list[tuple[str, str]]
    seconds: list[float]


def run(detector: Detector, paths: Sequence[str | Path], max_pixels: int | None,
        desc: str = "detect") -> DetectRun:
    """Run ``detector`` over image files, a progress bar over images; unreadable ones (and
    those over ``max_pixels``) are listed in ``skipped``, not fatal."""
    result = DetectRun([], [], [], [])
    for path in progress(list(paths), desc=desc, unit="image"):
        try:
            pixels = read_image(path, detector.channels, max_pixels)
        except RejectedImage as exc:
            result.skipped.append((str(path), str(exc)))
            continue
        except (OSError, ValueError, SyntaxError) as exc:
            result.skipped.append((str(path), f"unreadable: {exc}"))
            continue
        start = time.perf_counter()
        found = detector.detect(pixels)
        result.seconds.append(time.perf_counter() - start)
        result.paths.append(str(path))
        result.detections.append(found)
    return result


def save_run(result: DetectRun, target: str | Path, **meta: object) -> None:
    """Write ``result`` (and ``meta``: the detector's name, model, threshold) as JSON."""
    from pipeline.io.atomic import write_json

    seconds = sorted(result.seconds)
    write_json(target, {
        **meta,
        "seconds_per_image": seconds[len(seconds) // 2] if seconds else None,
        "images": [{"path": path, "seconds": round(s, 5),
                    "detections": [{"label": d.label, "score": round(d.score, 6),
                                    "box": [round(v, 2) for v in d.xyxy]} for d in found]}
                   for path, s, found in zip(result.paths, result.seconds, result.detections,
                                             strict=True)],
        "skipped": [{"path": path, "reason": reason} for path, reason in result.skipped],
    })


def load_run(path: str | Path) -> tuple[DetectRun, dict]:
    """A run :func:`save_run` wrote, and its other keys."""
    from pipeline.io.atomic import read_json

    data = read_json(path)
    result = DetectRun(
        [entry["path"] for entry in data["images"]],
        [[Detection(d["label"], d["score"], *d["box"]) for d in entry["detections"]]
         for entry in data["images"]],
        [(entry["path"], entry["reason"]) for entry in data["skipped"]],
        [entry["seconds"] for entry in data["images"]],
    )
    meta = {key: value for key, value in data.items() if key not in ("images", "skipped")}
    return result, meta


def draw_run(result: DetectRun, out: Path) -> list[Path]:
    """Each image of ``result`` with its boxes drawn, as ``out/<name>.png``; the paths written."""
    from pipeline.detect.drawing import save_drawn

    written = []
    for index, (path, found) in enumerate(zip(result.paths, result.detections, strict=True)):
        target = out / f"{Path(path).stem}.png"
        if target in written:
            target = out / f"{Path(path).stem}_{index}.png"
        save_drawn(target, read_image(path, 3), [], found, [True] * len(found))
        written.append(target)
    return written
