"""Top-k predictions for image files with a trained model and the preprocessing stored beside it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.images import RejectedImage, load
from pipeline.params import IngestParams

IMAGE_EXTENSIONS = frozenset(IngestParams().extensions)


@dataclass(frozen=True)
class Prediction:
    path: str
    top: list[tuple[str, float]]


def expand(paths: list[Path]) -> list[Path]:
    """Files as given, and the image files inside folders (recursively, sorted)."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(p for p in path.rglob("*")
                              if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS))
        else:
            out.append(path)
    return out


def predict(model_dir: Path, paths: list[Path], top_k: int = 5,
            batch_size: int = 64) -> tuple[list[Prediction], list[tuple[str, str]]]:
    """Predictions for the readable images, and ``(path, reason)`` for those that were skipped."""
    import keras

    from pipeline.preprocess import load_spec

    preprocessor, spec = load_spec(model_dir / "preprocess.json")
    model = keras.models.load_model(model_dir / "model.keras", compile=False)
    classes: list[str] = spec["classes"]
    arrays, kept, skipped = [], [], []
    for path in expand(paths):
        try:
            arrays.append(load(path, tuple(spec["size"]), spec["channels"], spec["resize"],
                               spec["interpolation"]))
            kept.append(path)
        except RejectedImage as exc:
            skipped.append((str(path), exc.reason))
        except (OSError, ValueError, SyntaxError) as exc:
            skipped.append((str(path), f"unreadable: {exc}"))
    if not arrays:
        return [], skipped
    probabilities = model.predict(preprocessor(np.stack(arrays)), batch_size=batch_size, verbose=0)
    k = min(top_k, len(classes))
    results = []
    for path, row in zip(kept, probabilities, strict=True):
        order = np.argsort(-row, kind="stable")[:k]
        results.append(Prediction(str(path), [(classes[i], float(row[i])) for i in order]))
    return results, skipped
