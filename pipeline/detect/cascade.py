"""OpenCV's boosted cascades (Haar or LBP features, Viola & Jones, 2001) as detectors.

``cv2.CascadeClassifier`` does the work: the image is made greyscale and histogram-equalised
(``cv2.equalizeHist``), then ``detectMultiScale3`` with ``outputRejectLevels`` gives each box the
weight of the last stage it passed, which serves as its score for precision-recall curves.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from pipeline.config.detect import CascadeParams
from pipeline.detect.boxes import Detection
from pipeline.io.errors import InputError

#: A detector's ``model`` with this prefix names a cascade shipped with OpenCV.
PREFIX = "cascade:"


def shipped() -> list[str]:
    """The cascade files ``opencv-python`` ships (``cv2.data.haarcascades``)."""
    return sorted(path.name for path in Path(cv2.data.haarcascades).glob("*.xml"))


def is_cascade(model: str) -> bool:
    """Whether a detector's ``model`` is a cascade: ``cascade:NAME`` or an ``.xml`` path."""
    return model.startswith(PREFIX) or model.lower().endswith(".xml")


def cascade_path(model: str) -> Path:
    """The XML file of ``cascade:NAME`` (one of :func:`shipped`) or of a path."""
    if model.startswith(PREFIX):
        name = model.removeprefix(PREFIX)
        if name not in shipped():
            raise InputError(f"{model}: OpenCV ships no cascade named {name!r}",
                             ["available: " + ", ".join(shipped())])
        return Path(cv2.data.haarcascades) / name
    path = Path(model)
    if not path.is_file():
        raise InputError(f"{model}: cascade file not found")
    return path


def greyscale(image: np.ndarray) -> np.ndarray:
    """A uint8 grey, grey ``(H, W, 1)``, RGB or RGBA image as ``(H, W)`` grey (OpenCV's luma)."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"cascade detectors take uint8 images, got {image.dtype}")
    if image.ndim == 3 and image.shape[-1] == 1:
        return image[..., 0]
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY if image.shape[-1] == 3 else cv2.COLOR_RGBA2GRAY)
    if image.ndim != 2:
        raise ValueError(f"cascade detectors take (H, W) or (H, W, 1|3|4) images, got {image.shape}")
    return image


class CascadeDetector:
    """An OpenCV cascade whose boxes are all ``label``, scored by their level weight; boxes
    scoring under ``threshold`` are dropped."""

    #: Cascades work on grey images.
    channels = 1

    def __init__(self, model: str, label: str, params: CascadeParams,
                 threshold: float = float("-inf")):
        self.model, self.label, self.params, self.threshold = model, label, params, threshold
        self.path = cascade_path(model)
        self.cascade = cv2.CascadeClassifier()
        try:
            loaded = self.cascade.load(str(self.path))
        except cv2.error as error:
            raise InputError(f"{model}: not a cascade OpenCV can load",
                             [str(error).strip().splitlines()[-1]]) from error
        if not loaded or self.cascade.empty():
            raise InputError(f"{model}: not a cascade OpenCV can load",
                             ["cv2.CascadeClassifier.load found no cascade in it"])

    def detect(self, image: np.ndarray) -> list[Detection]:
        """The boxes ``detectMultiScale3`` finds in a uint8 grey or RGB image, best first."""
        grey = cv2.equalizeHist(np.ascontiguousarray(greyscale(image)))
        boxes, _, weights = self.cascade.detectMultiScale3(
            grey, scaleFactor=self.params.scale_factor, minNeighbors=self.params.min_neighbors,
            minSize=tuple(self.params.min_size), outputRejectLevels=True)
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        weights = np.asarray(weights, np.float64).reshape(-1)
        found = [Detection(self.label, float(score), x, y, x + w, y + h)
                 for (x, y, w, h), score in zip(boxes.tolist(), weights.tolist(), strict=True)
                 if score >= self.threshold]
        return sorted(found, key=lambda d: -d.score)
