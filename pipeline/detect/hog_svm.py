"""HOG features and a linear SVM, with hard-negative mining (Dalal & Triggs, 2005).

scikit-image computes the HOG descriptor of each window (``skimage.feature.hog``, L2-Hys block
normalisation); scikit-learn fits a ``LinearSVC`` with its ``C`` chosen by ``GridSearchCV`` over
stratified folds. Mining slides the fitted classifier over images known to hold no object
(the sliding window of :mod:`pipeline.detect.detector`) and adds the highest-scoring windows to
the training set as background, then refits.

A saved model is a folder: ``svm.joblib`` (the fitted SVM, pickled by ``joblib``; load only
folders this pipeline wrote) and ``hog.json`` (HOG params, window, channels, classes).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pipeline.config.detect import HogSvmParams
from pipeline.detect.detector import Scan, WindowClassifier, scan_windows
from pipeline.io import atomic
from pipeline.io.errors import InputError
from pipeline.io.progress import progress

MODEL = "svm.joblib"
META = "hog.json"
#: Windows scored at once while mining.
BATCH = 4096
#: The ITU-R 601 luma weights, those of Pillow's "L" mode and of ``cv2.COLOR_RGB2GRAY``.
LUMA = np.array([0.299, 0.587, 0.114])
#: HogSvmParams fields that shape the features (the rest are training settings).
HOG_KEYS = ("orientations", "pixels_per_cell", "cells_per_block")


def scores(self, windows: np.ndarray) -> np.ndarray: ...


def feature_length(window: tuple[int, int], params: HogSvmParams) -> int:
    """Length of the HOG descriptor of a ``window`` (height, width): ``skimage.feature.hog``'s
    blocks times cells per block times orientations."""
    cells = [side // cell for side, cell in zip(window, params.pixels_per_cell, strict=True)]
    blocks = [max(0, n - b + 1) for n, b in zip(cells, params.cells_per_block, strict=True)]
    return blocks[0] * blocks[1] * params.cells_per_block[0] * params.cells_per_block[1] \
        * params.orientations


def greyscale(windows: np.ndarray) -> np.ndarray:
    """``(N, h, w)`` floats in [0, 1] of uint8 windows ``(N, h, w)``, ``(N, h, w, 1)`` or RGB
    ``(N, h, w, 3)`` (luma ``0.299 R + 0.587 G + 0.114 B``)."""
    windows = np.asarray(windows)
    if windows.ndim == 4 and windows.shape[-1] == 3:
        return (windows @ LUMA) / 255.0
    if windows.ndim == 4 and windows.shape[-1] == 1:
        windows = windows[..., 0]
    if windows.ndim != 3:
        raise ValueError(f"windows must be (N, h, w) or (N, h, w, 1 or 3), got {windows.shape}")
    return windows.astype(np.float64) / 255.0


def hog_features(windows: np.ndarray, params: HogSvmParams) -> np.ndarray:
    """``(N, D)`` float32 HOG descriptors (``skimage.feature.hog``, L2-Hys) of uint8 windows."""
    from skimage.feature import hog

    grey = greyscale(windows)
    out = np.empty((len(grey), feature_length(grey.shape[1:3], params)), np.float32)
    for i, window in enumerate(grey):
        out[i] = hog(window, orientations=params.orientations,
                     pixels_per_cell=params.pixels_per_cell, cells_per_block=params.cells_per_block,
                     block_norm="L2-Hys", feature_vector=True)
    return out


def fit(features: np.ndarray, labels: np.ndarray, params: HogSvmParams, seed: int):
    """A ``LinearSVC`` with ``C`` chosen among ``params.c_values`` by ``GridSearchCV``
    (``StratifiedKFold(params.folds)``, shuffled with ``seed``), refitted on all of ``features``.

    Returns the fitted SVM and a record: the chosen ``c``, its ``cv_accuracy``, and ``cv`` (the
    mean cross-validated accuracy of every ``C``). Every label needs at least ``folds`` samples.
    """
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.svm import LinearSVC

    labels = np.asarray(labels)
    values, counts = np.unique(labels, return_counts=True)
    if len(values) < 2:
        raise ValueError(f"HOG + SVM needs windows of at least two classes, got only {values.tolist()}")
    if counts.min() < params.folds:
        raise ValueError(f"HOG + SVM: class {values[counts.argmin()]} has {counts.min()} windows, "
                         f"fewer than hog_svm.folds ({params.folds})")
    svm = LinearSVC(dual="auto", max_iter=20000, random_state=seed)
    search = GridSearchCV(svm, {"C": list(params.c_values)}, refit=True,
                          cv=StratifiedKFold(params.folds, shuffle=True, random_state=seed))
    search.fit(features, labels)
    cv = [{"c": float(c), "accuracy": float(a)}
          for c, a in zip(search.cv_results_["param_C"], search.cv_results_["mean_test_score"],
                          strict=True)]
    record = {"c": float(search.best_params_["C"]), "cv_accuracy": float(search.best_score_),
              "cv": cv}
    return search.best_estimator_, record


class HogSvm:
    """A fitted HOG + linear SVM as a window classifier: ``scores`` are SVM margins.

    With two classes (background and one object) the columns are ``[-d, d]``, ``d`` the margin
    of the object; with more, each column is that class's one-vs-rest margin.
    """

    def __init__(self, svm, params: HogSvmParams, window: Sequence[int], channels: int,
                 classes: Sequence[str]):
        self.svm = svm
        self.params = params
        self.window = (int(window[0]), int(window[1]))
        self.channels = int(channels)
        self.classes = list(classes)
        fitted = [int(c) for c in svm.classes_]
        if fitted != list(range(len(self.classes))):
            raise ValueError(f"HOG + SVM: the SVM was fitted on labels {fitted}, not on one per "
                             f"class of {self.classes}")

    def features(self, windows: np.ndarray) -> np.ndarray:
        """HOG descriptors of ``windows``, which must be :attr:`window` sized."""
        windows = np.asarray(windows)
        if tuple(windows.shape[1:3]) != self.window:
            raise ValueError(f"HOG + SVM takes {self.window} windows, got {windows.shape[1:3]}")
        return hog_features(windows, self.params)

    def scores(self, windows: np.ndarray) -> np.ndarray:
        """``(N, len(classes))`` SVM margins (``decision_function``) of uint8 windows."""
        return self._margins(self.features(windows))

    def _margins(self, features: np.ndarray) -> np.ndarray:
        if not len(features):
            return np.empty((0, len(self.classes)))
        margins = self.svm.decision_function(features)
        if margins.ndim == 1:
            return np.column_stack([-margins, margins])
        return margins

    def level_scores(self, level: np.ndarray, origins: np.ndarray) -> np.ndarray:
        """The margins of the windows at ``origins`` of a whole pyramid level, from one HOG of
        the level per cell-grid offset among the origins (Dalal and Triggs' dense scan; a step
        of half a cell needs four). A window's descriptor is then the blocks under it, the same
        its own HOG would hold but for the gradients on its border, which see the pixels beyond
        it."""
        from skimage.feature import hog

        cell_h, cell_w = self.params.pixels_per_cell
        rows = self.window[0] // cell_h - self.params.cells_per_block[0] + 1
        cols = self.window[1] // cell_w - self.params.cells_per_block[1] + 1
        grey = greyscale(level[None])[0]
        features = np.empty((len(origins), feature_length(self.window, self.params)), np.float32)
        offsets = np.column_stack([origins[:, 0] % cell_h, origins[:, 1] % cell_w])
        for dy, dx in {(int(a), int(b)) for a, b in offsets}:
            mine = (offsets[:, 0] == dy) & (offsets[:, 1] == dx)
            blocks = hog(grey[dy:, dx:], orientations=self.params.orientations,
                         pixels_per_cell=self.params.pixels_per_cell,
                         cells_per_block=self.params.cells_per_block, block_norm="L2-Hys",
                         feature_vector=False)
            view = np.lib.stride_tricks.sliding_window_view(blocks, (rows, cols), axis=(0, 1))
            picked = view[(origins[mine, 0] - dy) // cell_h, (origins[mine, 1] - dx) // cell_w]
            # sliding_window_view puts the window's block axes last; hog's vector is row-major
            features[mine] = np.moveaxis(picked, (-2, -1), (1, 2)).reshape(int(mine.sum()), -1)
        return self._margins(features)

    def save(self, folder: str | Path) -> None:
        """Write ``svm.joblib`` and ``hog.json`` into ``folder``, both or neither."""
        import joblib

        folder = Path(folder)
        meta = {"kind": "hog_svm", "window": list(self.window), "channels": self.channels,
                "classes": self.classes, "features": feature_length(self.window, self.params),
                "hog": {key: getattr(self.params, key) for key in HOG_KEYS}}
        with atomic.atomic_paths([folder / MODEL, folder / META]) as (model_tmp, meta_tmp):
            joblib.dump(self.svm, model_tmp)
            meta_tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, folder: str | Path) -> HogSvm:
        """The model :meth:`save` wrote to ``folder`` (only this pipeline's own folders: pickle)."""
        import joblib

        folder = Path(folder)
        missing = [name for name in (MODEL, META) if not (folder / name).is_file()]
        if missing:
            raise InputError(f"{folder}: not a HOG + SVM model folder (missing {', '.join(missing)})",
                             ["train one with the hog_svm stage first"])
        try:
            meta = atomic.read_json(folder / META)
            params = HogSvmParams(**{key: meta["hog"][key] for key in HOG_KEYS})
            window, channels, classes = meta["window"], meta["channels"], meta["classes"]
        except (ValueError, KeyError, TypeError) as error:
            raise InputError(f"{folder / META}: unreadable HOG + SVM metadata ({error})") from error
        return cls(joblib.load(folder / MODEL), params, window, channels, classes)


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """A uint8 image as ``(H, W)`` greyscale (channels 1; ``cv2.COLOR_RGB2GRAY``) or
    ``(H, W, 3)`` RGB (channels 3; grey repeated)."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got {image.dtype}")
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        return image if channels == 1 else np.repeat(image[..., None], 3, axis=-1)
    if image.ndim == 3 and image.shape[-1] == 3:
        return image if channels == 3 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    raise ValueError(f"images must be (H, W), (H, W, 1) or (H, W, 3), got {image.shape}")


def scan(classifier: WindowClassifier, images: Sequence[np.ndarray], params: HogSvmParams,
         threshold: float = 0.0, keep: int = 0, desc: str = "scanning") -> tuple[int, np.ndarray]:
    """Slide ``classifier`` over every level of each image's pyramid (``params.mining_scale``,
    ``params.mining_step``): how many windows have a best object score >= ``threshold``, and
    the ``keep`` highest-scoring of them (uint8, best first)."""
    window, channels = classifier.window, classifier.channels
    shape = (0, *window) if channels == 1 else (0, *window, channels)
    kept, kept_scores = np.empty(shape, np.uint8), np.empty(0)
    count = 0
    sliding = Scan(threshold, scale=params.mining_scale, step=params.mining_step, batch_size=BATCH)
    for image in progress(images, desc=desc):
        for windows, _ in scan_windows(to_channels(image, channels), window, sliding):
            best = classifier.scores(windows)[:, 1:].max(axis=1)
            hits = best >= threshold
            count += int(hits.sum())
            if keep and hits.any():
                kept = np.concatenate([kept, windows[hits]])
                kept_scores = np.concatenate([kept_scores, best[hits]])
                order = np.argsort(-kept_scores, kind="stable")[:keep]
                kept, kept_scores = kept[order], kept_scores[order]
    return count, kept


def false_positives(classifier: WindowClassifier, negative_images: Sequence[np.ndarray],
                    params: HogSvmParams, threshold: float = 0.0) -> int:
    """Windows of images with no object that ``classifier`` scores >= ``threshold`` (see
    :func:`scan`)."""
    return scan(classifier, negative_images, params, threshold, desc="false positives")[0]


def mine(classifier: WindowClassifier, negative_images: Sequence[np.ndarray], params: HogSvmParams,
         threshold: float = 0.0, max_new: int | None = None) -> np.ndarray:
    """Hard negatives: the ``max_new`` (default ``params.mining_max``) highest-scoring windows
    of images with no object whose best object score is >= ``threshold``, as uint8 windows
    ready to be added as background."""
    keep = params.mining_max if max_new is None else max_new
    if keep <= 0:
        return scan(classifier, [], params)[1]
    return scan(classifier, negative_images, params, threshold, keep, desc="mining")[1]


def train_with_mining(windows: np.ndarray, labels: np.ndarray, classes: Sequence[str],
                      negative_images: Sequence[np.ndarray], params: HogSvmParams, seed: int,
                      log: Callable[[str], Any] = print) -> tuple[HogSvm, dict]:
    """:func:`fit` on ``windows`` (label 0: background), then ``params.mining_rounds`` rounds of:
    count the false positives (margin >= 0) on ``negative_images``, add up to
    ``params.mining_max`` of the highest-scoring as background, refit.

    Returns the final model and the record: the first fit's, then one entry per round
    (negatives added, false positives before and after, chosen C, its CV accuracy).
    """
    windows, labels = np.asarray(windows), np.asarray(labels).astype(np.int64)
    window = (windows.shape[1], windows.shape[2])
    channels = 3 if windows.ndim == 4 and windows.shape[-1] == 3 else 1
    features = hog_features(windows, params)
    svm, first = fit(features, labels, params, seed)
    model = HogSvm(svm, params, window, channels, classes)
    record: dict[str, Any] = {"initial": {"windows": len(labels), "features": features.shape[1], **first},
                              "rounds": []}
    log(f"hog_svm: {len(labels)} windows, {features.shape[1]} HOG features; C={first['c']:g} "
        f"(cv accuracy {first['cv_accuracy']:.4f})")
    if params.mining_rounds and not negative_images:
        log("hog_svm: no negative images to mine; skipping hard-negative mining")
        return model, record
    before, mined = (scan(model, negative_images, params, 0.0, params.mining_max, desc="mining 1")
                     if params.mining_rounds else (0, None))
    for number in range(1, params.mining_rounds + 1):
        if not len(mined):
            log(f"hog_svm: round {number}: no false positives left; stopping")
            break
        features = np.concatenate([features, hog_features(mined, params)])
        labels = np.concatenate([labels, np.zeros(len(mined), np.int64)])
        svm, chosen = fit(features, labels, params, seed)
        model = HogSvm(svm, params, window, channels, classes)
        keep = params.mining_max if number < params.mining_rounds else 0
        after, next_mined = scan(model, negative_images, params, 0.0, keep,
                                 desc=f"mining {number + 1}" if keep else "false positives")
        record["rounds"].append({"round": number, "negatives_added": len(mined),
                                 "false_positives_before": before, "false_positives_after": after,
                                 "windows": len(labels), **chosen})
        log(f"hog_svm: round {number}: {before} false positives, added {len(mined)} as background, "
            f"now {after}; C={chosen['c']:g} (cv accuracy {chosen['cv_accuracy']:.4f})")
        before, mined = after, next_mined
    return model, record
