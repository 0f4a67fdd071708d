"""Top-k predictions for image files with a trained model and the preprocessing stored beside it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.io.errors import InputError
from pipeline.io.images import DEFAULT_MAX_PIXELS, RejectedImage, expand, load
from pipeline.io.progress import predict_bar, progress


@dataclass(frozen=True)
class Prediction:
    path: str
    top: list[tuple[str, float]]


def predict(model_dir: Path, paths: list[Path], top_k: int = 5, batch_size: int = 64,
            max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[list[Prediction], list[tuple[str, str]]]:
    """Predictions for the readable images, and ``(path, reason)`` for those that were skipped.

    Images of more than ``max_pixels`` pixels are skipped (``too-many-pixels``) before decoding.

    :class:`InputError` if ``model_dir`` lacks the train stage's files or no image is readable.
    """
    import keras

    from pipeline.train.preprocess import load_spec

    for name in ("model.keras", "preprocess.json"):
        if not (model_dir / name).is_file():
            raise InputError(f"no {name} in {model_dir} (the train stage writes it)")
    preprocessor, spec = load_spec(model_dir / "preprocess.json")
    model = keras.models.load_model(model_dir / "model.keras", compile=False)
    classes: list[str] = spec["classes"]
    arrays, kept, skipped = [], [], []
    for path in progress(expand(paths), desc="read", unit="image"):
        try:
            arrays.append(load(path, tuple(spec["size"]), spec["channels"], spec["resize"],
                               spec["interpolation"], max_pixels))
            kept.append(path)
        except RejectedImage as exc:
            skipped.append((str(path), str(exc)))
        except (OSError, ValueError, SyntaxError) as exc:
            skipped.append((str(path), f"unreadable: {exc}"))
    if not arrays:
        raise InputError("no readable image", [f"{path}: {reason}" for path, reason in skipped])
    probabilities = model.predict(
        preprocessor(np.stack(arrays)), batch_size=batch_size, verbose=0,
        callbacks=[predict_bar("predict", len(arrays), batch_size)])
    k = min(top_k, len(classes))
    results = []
    for path, row in zip(kept, probabilities, strict=True):
        order = np.argsort(-row, kind="stable")[:k]
        results.append(Prediction(str(path), [(classes[i], float(row[i])) for i in order]))
    return results, skipped
