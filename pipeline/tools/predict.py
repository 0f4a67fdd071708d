"""Top-k predictions for image files with a trained model and the preprocessing stored beside it,
or with an export of one (``cvpipe export``, the export stage) on its own runtime."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.io.errors import InputError
from pipeline.io.images import DEFAULT_MAX_PIXELS, RejectedImage, expand, load
from pipeline.io.progress import predict_bar, progress

#: The model's classes, how to decode an image (``size``, ``channels``, ``resize``,
#: ``interpolation``) and a function from a uint8 batch to probabilities.
Loaded = tuple[list[str], dict[str, Any], Callable[[np.ndarray], np.ndarray]]


@dataclass(frozen=True)
class Prediction:
    path: str
    top: list[tuple[str, float]]


def predict(model_dir: Path, paths: list[Path], top_k: int = 5, batch_size: int = 64,
            max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[list[Prediction], list[tuple[str, str]]]:
    """Predictions for the readable images, and ``(path, reason)`` for those that were skipped.

    ``model_dir`` is a trained model folder (``model.keras`` and ``preprocess.json``: Keras) or
    an export (a folder with ``export.json``, or its .onnx/.tflite file: its own runtime, the
    preprocessing in the graph; ONNX imports neither TensorFlow nor Keras). Images of more than
    ``max_pixels`` pixels are skipped (``too-many-pixels``) before decoding.

    :class:`InputError` if ``model_dir`` lacks its files or no image is readable.
    """
    from pipeline.export.runtimes import is_export

    classes, decode, probabilities_of = (
        _exported(model_dir, batch_size) if is_export(model_dir) else _keras(model_dir, batch_size))
    arrays, kept, skipped = [], [], []
    for path in progress(expand(paths), desc="read", unit="image"):
        try:
            arrays.append(load(path, tuple(decode["size"]), decode["channels"], decode["resize"],
                               decode["interpolation"], max_pixels))
            kept.append(path)
        except RejectedImage as exc:
            skipped.append((str(path), str(exc)))
        except (OSError, ValueError, SyntaxError) as exc:
            skipped.append((str(path), f"unreadable: {exc}"))
    if not arrays:
        raise InputError("no readable image", [f"{path}: {reason}" for path, reason in skipped])
    probabilities = probabilities_of(np.stack(arrays))
    k = min(top_k, len(classes))
    results = []
    for path, row in zip(kept, probabilities, strict=True):
        order = np.argsort(-row, kind="stable")[:k]
        results.append(Prediction(str(path), [(classes[i], float(row[i])) for i in order]))
    return results, skipped


def _keras(model_dir: Path, batch_size: int) -> Loaded:
    from pipeline.models import zoo
    from pipeline.train.preprocess import load_spec

    for name in ("model.keras", "preprocess.json"):
        if not (model_dir / name).is_file():
            raise InputError(f"no {name} in {model_dir} (the train stage writes it)")
    preprocessor, spec = load_spec(model_dir / "preprocess.json")
    model = zoo.load(model_dir / "model.keras")

    def probabilities_of(batch: np.ndarray) -> np.ndarray:
        return model.predict(preprocessor(batch), batch_size=batch_size, verbose=0,
                             callbacks=[predict_bar("predict", len(batch), batch_size)])

    return spec["classes"], spec, probabilities_of


def _exported(path: Path, batch_size: int) -> Loaded:
    from pipeline.export.runtimes import load as load_export
    from pipeline.export.runtimes import predict_batches

    exported = load_export(path)
    return (exported.classes, exported.manifest["decode"],
            lambda batch: predict_batches(exported.run, batch, batch_size))
