"""Each export scored by its own runtime beside the Keras model: same rank-1, same probabilities.

:func:`export_and_score` is the export stage: every format of ``export.formats`` is written into a
temporary folder and scored on ``export.split``; only when all of them match the Keras model
(the same rank-1, no class probability further than ``export.tolerance`` from the Keras one) does
the folder replace ``models/export`` and ``metrics.json`` get written. :func:`export_checked` is
``cvpipe export``: one format, checked on seeded random images (no labels needed).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.evaluate.evaluation import rank_k
from pipeline.export import formats, runtimes
from pipeline.io.atomic import write_json
from pipeline.io.errors import InputError

if TYPE_CHECKING:
    from pipeline.config.export import ExportParams


class ParityError(RuntimeError):
    """An export that does not give the Keras model's predictions (the stage exits 1)."""


@dataclass(frozen=True)
class Parity:
    """One export against the Keras model on the same images."""

    fmt: str
    rank1_keras: float
    rank1: float
    max_abs_diff: float
    tolerance: float

    @property
    def holds(self) -> bool:
        return self.rank1 == self.rank1_keras and self.max_abs_diff <= self.tolerance

    def describe(self) -> str:
        return (f"{self.fmt}: rank-1 {self.rank1:.4f} (Keras {self.rank1_keras:.4f}), "
                f"max |p - p_keras| {self.max_abs_diff:.2e} (tolerance {self.tolerance:.0e})")


def compare(fmt: str, keras_probs: np.ndarray, probs: np.ndarray, labels: np.ndarray,
            tolerance: float) -> Parity:
    """:class:`Parity` of ``probs`` (N, classes) with ``keras_probs`` on images of ``labels``."""
    if probs.shape != keras_probs.shape:
        raise ParityError(f"{fmt}: predictions of shape {probs.shape}, Keras {keras_probs.shape}")
    return Parity(fmt, rank_k(keras_probs, labels, 1), rank_k(probs, labels, 1),
                  float(np.max(np.abs(probs - keras_probs))), tolerance)


def keras_runner(source: formats.Source) -> runtimes.Run:
    """The Keras model on uint8 batches, preprocessed as in evaluation (the reference)."""
    return lambda batch: source.model.predict_on_batch(source.preprocessor(batch))


def _check(parities: list[Parity], tolerance_key: str) -> None:
    broken = [p for p in parities if not p.holds]
    if broken:
        raise ParityError(f"parity broken ({tolerance_key} {broken[0].tolerance:.0e}), nothing "
                          f"written: {'; '.join(p.describe() for p in broken)}")


def export_and_score(settings: ExportParams, data: Path, out: Path,
                     metrics_path: Path) -> tuple[dict[str, Any], list[Parity]]:
    """Export ``settings.model`` in each of ``settings.formats`` to ``out/<format>/``, score each
    on ``data/<split>.h5`` with its runtime, and write ``metrics_path``; :class:`ParityError`
    (and nothing written) if any export disagrees with the Keras model."""
    from pipeline.io.hdf5 import Split

    split_path = Path(data) / f"{settings.split}.h5"
    if not split_path.is_file():
        raise InputError(f"export.split: no {split_path} (the hdf5 stage writes it)")
    split = Split(split_path)
    if not len(split):
        raise InputError(f"export.split: {split_path} holds no images")
    source = formats.load_source(Path(settings.model))
    reference = runtimes.predict_batches(keras_runner(source), split, settings.batch_size)
    parities = []
    with formats.staged_folder(out) as tmp:
        for fmt in settings.formats:
            formats.export(source, fmt, tmp / fmt)
            exported = runtimes.load(tmp / fmt)
            probs = runtimes.predict_batches(exported.run, split, settings.batch_size)
            parities.append(compare(fmt, reference, probs, split.labels, settings.tolerance))
        _check(parities, "export.tolerance")
    metrics: dict[str, Any] = {"split": settings.split, "images": len(split),
                               "rank1_keras": parities[0].rank1_keras}
    for parity in parities:
        metrics[parity.fmt] = {"rank1": parity.rank1, "max_abs_diff": parity.max_abs_diff}
    write_json(metrics_path, metrics)
    return metrics, parities


def export_checked(model_dir: Path, fmt: str, out: Path, tolerance: float = 1e-4,
                   images: int = 64, seed: int = 0) -> tuple[dict[str, Any], Parity]:
    """``cvpipe export``: ``model_dir`` as ``fmt`` in ``out`` (replaced as a whole), checked
    on ``images`` seeded random images; "rank-1" is agreement with the Keras model's top class.
    :class:`ParityError`, and ``out`` untouched, if it disagrees."""
    source = formats.load_source(Path(model_dir), key="MODEL")
    batch = np.random.default_rng(seed).integers(0, 256, (images, *source.image_shape),
                                                 dtype=np.uint8)
    reference = keras_runner(source)(batch)
    with formats.staged_folder(out) as tmp:
        manifest = formats.export(source, fmt, tmp)
        probs = runtimes.load(tmp).run(batch)
        parity = compare(fmt, reference, probs, reference.argmax(axis=1), tolerance)
        _check([parity], "--tolerance")
    return manifest, parity
