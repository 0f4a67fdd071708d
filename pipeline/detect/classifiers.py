"""Window classifiers the detector can slide: a Keras model from ``train``, HOG + SVM, or
logistic regression on backbone features.

Each takes uint8 windows of exactly its ``window`` size and returns one score per class, column 0
the background. A Keras model is the folder ``train`` writes (``model.keras`` and
``preprocess.json``, whose classes name the background first when it was trained on the windows
``detect_windows`` cut); it runs with ``predict_on_batch`` on batches of ``batch_size``, a short
last one padded to a power of two, so only a few batch shapes are ever traced. The HOG + SVM
lives in :mod:`pipeline.detect.hog_svm`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline.config.detect import DetectorParams, DetectParams
from pipeline.detect.detector import Detector, WindowClassifier
from pipeline.io.errors import InputError


class KerasWindows:
    """A Keras classifier and the preprocessing it was trained with."""

    def __init__(self, model, preprocessor, window: tuple[int, int], channels: int,
                 classes: list[str], batch_size: int = 512):
        self.model, self.preprocessor = model, preprocessor
        self._head = _softmax_head(model)
        self.window = (int(window[0]), int(window[1]))
        self.channels, self.classes = int(channels), list(classes)
        self.batch_size = batch_size
        if len(self.classes) < 2:
            raise InputError(f"a detector needs a background class and at least one object "
                             f"class, the model has {self.classes}")
        net = model if self._head is None else self._head[0]
        self._net = _uint8_input(net, preprocessor, self.window, self.channels)
        self._fused = self._net is not None
        if self._net is None:
            self._net = net

    @classmethod
    def load(cls, folder: Path, batch_size: int = 512) -> KerasWindows:
        """The model and preprocessing the ``train`` library saved in ``folder``."""
        from pipeline.models import zoo
        from pipeline.train.preprocess import load_spec

        for name in ("model.keras", "preprocess.json"):
            if not (folder / name).is_file():
                raise InputError(f"{folder}: no {name} (the train stage writes it)")
        preprocessor, spec = load_spec(folder / "preprocess.json")
        model = zoo.load(folder / "model.keras")
        return cls(model, preprocessor, spec["size"], spec["channels"], spec["classes"],
                   batch_size)

    def scores(self, windows: np.ndarray) -> np.ndarray:
        """Each class's log-odds (``log p / (1 - p)``), ``batch_size`` windows a call (a short
        last batch padded to :func:`batch_shape`). From the logits when the model ends in a
        softmax Dense layer (the zoo's do), so that a probability that rounds to 1.0 in float32
        is still ranked. Where the preprocessing is a mean and a scale (a per-channel std is
        one), it runs in the graph on the uint8 windows (a quarter of the bytes to hand over,
        no float copy in numpy); anything else (GCN, crops, backbones) runs in numpy first."""
        out = []
        for start in range(0, len(windows), self.batch_size):
            batch = windows[start:start + self.batch_size]
            if not self._fused:
                batch = self.preprocessor(batch)
            n = len(batch)
            shape = batch_shape(n, self.batch_size)
            if n < shape:
                pad = np.zeros((shape - n, *batch.shape[1:]), batch.dtype)
                batch = np.concatenate([batch, pad])
            found = np.asarray(self._net.predict_on_batch(batch), np.float64)[:n]
            if self._head is None:
                p = np.clip(found, 1e-12, 1 - 1e-12)
                out.append(np.log(p) - np.log1p(-p))
            else:
                _, kernel, bias = self._head
                out.append(log_odds(found @ kernel + bias))
        return np.concatenate(out) if out else np.empty((0, len(self.classes)))


def batch_shape(n: int, batch_size: int, smallest: int = 16) -> int:
    """How many rows a batch of ``n`` windows is padded to: the next power of two (at least
    ``smallest``), at most ``batch_size``. A short last batch then costs little, and at most a
    handful of batch shapes are ever compiled (JAX compiles one graph per shape)."""
    return min(batch_size, max(smallest, 1 << max(0, n - 1).bit_length()))


def log_odds(logits: np.ndarray) -> np.ndarray:
    """``log p_c - log(1 - p_c)`` of the softmax of ``logits`` (rows), computed stably:
    ``z_c - logsumexp(z without c)``."""
    logits = np.asarray(logits, np.float64)
    out = np.empty_like(logits)
    for c in range(logits.shape[1]):
        others = np.delete(logits, c, axis=1)
        top = others.max(axis=1, keepdims=True)
        rest = top[:, 0] + np.log(np.exp(others - top).sum(axis=1))
        out[:, c] = logits[:, c] - rest
    return out


def _uint8_input(net, preprocessor, window: tuple[int, int], channels: int):
    """``net`` behind the preprocessor's mean subtraction, division by the std and scaling,
    taking uint8 windows, when that is all the preprocessor does to windows of this size (no
    crop, resize, grey to RGB, GCN or backbone preprocessing); else ``None``. The same float32
    operations as the preprocessor's, so the same scores."""
    import keras

    if preprocessor.crop is not None or preprocessor.backbone is not None or preprocessor.gcn or \
            (preprocessor.rgb and channels == 1) or \
            (preprocessor.size is not None and tuple(preprocessor.size) != tuple(window)):
        return None
    inputs = keras.Input((*window, channels), dtype="uint8")
    x = keras.ops.cast(inputs, "float32")
    if preprocessor.mean is not None:
        x = x - np.asarray(preprocessor.mean, np.float32)
    if preprocessor.std is not None:
        x = x / np.asarray(preprocessor.std, np.float32)
    if preprocessor.scale:
        x = x * np.float32(1.0 / 255.0)
    return keras.Model(inputs, net(x))


def _softmax_head(model):
    """``(body, kernel, bias)`` when ``model`` ends in a softmax ``Dense`` layer: the model up to
    that layer's input, and its weights as float64; else ``None``."""
    import keras

    last = model.layers[-1] if model.layers else None
    if not isinstance(last, keras.layers.Dense) or \
            getattr(last.activation, "__name__", "") != "softmax":
        return None
    kernel, bias = (np.asarray(w, np.float64) for w in last.get_weights())
    return keras.Model(model.inputs, last.input), kernel, bias


def load_classifier(folder: str | Path, batch_size: int = 512) -> WindowClassifier:
    """The window classifier saved in ``folder``: HOG + SVM (``hog.json``), logistic regression
    on backbone features (``model.joblib``) or Keras (``model.keras``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such model folder")
    if (folder / "hog.json").is_file():
        from pipeline.detect.hog_svm import HogSvm

        return HogSvm.load(folder)
    if (folder / "model.joblib").is_file():
        return FeatureLogreg(folder, batch_size)
    return KerasWindows.load(folder, batch_size)


class FeatureLogreg:
    """Logistic regression on a backbone's pooled features (``train_logreg`` after
    ``extract_features`` on the detection windows): the backbone is rebuilt from the settings
    the features were extracted with and runs on each batch of windows."""

    def __init__(self, folder: Path, batch_size: int = 512):
        from pipeline.models import backbones
        from pipeline.train.preprocess import Preprocessor
        from pipeline.transfer import logreg
        from pipeline.transfer.features import feature_model

        self.model, meta = logreg.load(folder)
        settings = meta["features"]
        if "source_size" not in settings:
            raise InputError(f"{folder}: its features predate the window size record; run "
                             f"extract_features and train_logreg again")
        size = tuple(int(v) for v in settings["size"])
        body = backbones.build(str(settings["backbone"]), str(settings["weights"]), size,
                               float(settings.get("alpha", 1.0)))
        self.features = feature_model(body, str(settings["pooling"]),
                                      str(settings.get("layer") or "") or None)
        self.preprocessor = Preprocessor(size=size, rgb=True, backbone=str(settings["backbone"]))
        self.window = tuple(int(v) for v in settings["source_size"])
        self.channels = int(settings["source_channels"])
        self.classes: list[str] = list(meta["classes"])
        self.flip = bool(settings.get("flip", False))
        self.batch_size = batch_size

    def scores(self, windows: np.ndarray) -> np.ndarray:
        """Class probabilities (a column per class, also for classes absent from training)."""
        from pipeline.transfer.features import forward

        out = np.zeros((len(windows), len(self.classes)))
        for start in range(0, len(windows), self.batch_size):
            batch = self.preprocessor(windows[start:start + self.batch_size])
            rows = forward(self.features, batch, self.flip).reshape(len(batch), -1)
            out[start:start + len(batch), self.model.classes_] = self.model.predict_proba(rows)
        return out


def build(spec: DetectorParams, params: DetectParams, labels: Sequence[str]) -> Detector:
    """The detector ``spec`` names: a cascade (``cascade:NAME`` or an ``.xml`` path) or a window
    classifier's folder slid with ``params``' pyramid and window settings."""
    from pipeline.detect.cascade import CascadeDetector, is_cascade

    if is_cascade(spec.model):
        label = labels[0] if len(labels) == 1 else "object"
        return CascadeDetector(spec.model, label, params.cascade, threshold=spec.threshold)
    from pipeline.detect.detector import Scan, WindowDetector

    scan = Scan(spec.threshold, params.scale, params.upscale, params.step, params.batch_size,
                params.nms_iou, params.max_detections, params.pad, params.flip, params.vote_iou)
    return WindowDetector(load_classifier(spec.model, params.batch_size), scan)
