"""Scoring a trained model: rank-k accuracy (plain and oversampled), per-class report, confusion
matrix, misclassified examples and the bias/variance diagnosis."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from pipeline.config import EvaluateParams


def rank_k(probabilities: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fraction of rows whose true label is among the ``k`` most probable classes."""
    if probabilities.shape[0] == 0:
        raise ValueError("no predictions to score")
    top = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == labels[:, None], axis=1)))


def ranks(probabilities: np.ndarray, labels: np.ndarray, classes: int) -> dict[str, float]:
    """Rank-1, and rank-5 where there are more than 5 classes (else it is trivially 1.0)."""
    out = {"rank1": rank_k(probabilities, labels, 1)}
    if classes > 5:
        out["rank5"] = rank_k(probabilities, labels, 5)
    return out


def scores(probabilities: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Headline metrics (rank-1, rank-5 where there are more than 5 classes, images) and the
    per-class report (precision, recall, F1, support), which goes to ``report.json``."""
    from sklearn.metrics import classification_report, confusion_matrix

    predicted = probabilities.argmax(axis=1)
    metrics: dict[str, Any] = {**ranks(probabilities, labels, len(classes)),
                               "images": len(labels)}
    notes = []
    if len(classes) <= 5:
        notes.append(f"rank-5 not reported: {len(classes)} classes, rank-5 would be trivially 1.0")
    index = list(range(len(classes)))
    report = classification_report(
        labels, predicted, labels=index, target_names=classes, output_dict=True, zero_division=0
    )
    matrix = confusion_matrix(labels, predicted, labels=index)
    text = classification_report(
        labels, predicted, labels=index, target_names=classes, digits=4, zero_division=0
    )
    return {"metrics": metrics, "report": report, "report_text": text,
            "confusion": matrix.tolist(), "notes": notes, "predicted": predicted}


def confusion_png(matrix: list[list[int]], classes: list[str], target: Path, title: str) -> None:
    """Draw the confusion matrix (counts, rows = true class) to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pipeline.io.atomic import atomic_path

    counts = np.asarray(matrix)
    size = max(4.0, 0.45 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(counts, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046)
    ax.set_xticks(range(len(classes)), classes, rotation=90)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if len(classes) <= 20:
        limit = counts.max() / 2 if counts.size else 0
        for (i, j), value in np.ndenumerate(counts):
            ax.text(j, i, str(value), ha="center", va="center", fontsize=7,
                    color="white" if value > limit else "black")
    fig.tight_layout()
    with atomic_path(target, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


@dataclass
class Prediction:
    """Class probabilities for every image of a split, with what they are scored against."""

    probabilities: np.ndarray
    classes: list[str]
    labels: np.ndarray
    paths: list[str]


class Scorer:
    """A trained model loaded once, predicting whole splits.

    A Keras model (``model.keras`` + ``preprocess.json``) reads a split of images; a logistic
    regression (``model.joblib``, from ``train_logreg``) reads the same split's features file.
    """

    def __init__(self, model_dir: Path, batch_size: int = 256):
        from pipeline.transfer import logreg

        self.model_dir = Path(model_dir)
        self.batch_size = batch_size
        self.is_keras = not (self.model_dir / logreg.MODEL).exists()
        if self.is_keras:
            from pipeline.models import zoo
            from pipeline.train.preprocess import load_spec

            self.preprocessor, self.spec = load_spec(self.model_dir / "preprocess.json")
            # Without the optimizer: scoring needs none, and its custom schedule may not import.
            self.model = zoo.load(self.model_dir / "model.keras")
            self.classes: list[str] = self.spec["classes"]
        else:
            self.model, meta = logreg.load(self.model_dir)
            self.classes = meta["classes"]

    def predict(self, split_path: Path) -> Prediction:
        """Probabilities for every image of ``split_path``, in file order."""
        if not self.is_keras:
            from pipeline.transfer import logreg
            from pipeline.transfer.features import FeatureSplit

            split = FeatureSplit(split_path)
            probabilities = logreg.probabilities(self.model, split, len(self.classes))
            return Prediction(probabilities, self.classes, split.labels, split.paths)
        from pipeline.io.progress import predict_bar
        from pipeline.train.loader import HDF5Loader, eval_data

        loader = HDF5Loader(split_path, self.batch_size, self.preprocessor)
        probabilities = self.model.predict(
            eval_data(loader), verbose=0,
            callbacks=[predict_bar(f"predict {split_path.stem}", len(loader.split), self.batch_size)])
        return Prediction(probabilities, self.classes, loader.split.labels, loader.split.paths())

    def predict_oversampled(self, split_path: Path, fraction: float,
                            flip: bool) -> tuple[Prediction, int]:
        """Probabilities averaged over 5 crops (corners, centre) and, with ``flip``, their
        mirrors (the 10-crop of the AlexNet paper), and the number of views. Keras models only."""
        from pipeline.evaluate.oversample import predict_views
        from pipeline.io.hdf5 import Split

        if not self.is_keras:
            raise ValueError("oversampling needs a model that reads images, not features")
        split = Split(split_path)
        probabilities, n_views = predict_views(self.model, self.preprocessor, split,
                                               self.batch_size, fraction, flip)
        return Prediction(probabilities, self.classes, split.labels, split.paths()), n_views


def evaluate_model(model_dir: Path, split_path: Path, batch_size: int) -> dict[str, Any]:
    """Predict ``split_path`` with the model in ``model_dir`` and score it (see :func:`scores`)."""
    return score_prediction(Scorer(model_dir, batch_size).predict(split_path))


def score_prediction(prediction: Prediction) -> dict[str, Any]:
    """:func:`scores` plus what :func:`write_outputs` needs to name rows."""
    result = scores(prediction.probabilities, prediction.labels, prediction.classes)
    result.update(classes=prediction.classes, labels=prediction.labels, paths=prediction.paths)
    return result


def evaluate(model_dir: Path, data: Path, images: Path | None,
             params: EvaluateParams) -> dict[str, Any]:
    """Everything the evaluate stage reports for one model.

    Scores ``params.split`` of ``data`` (plain, and oversampled for Keras models when asked),
    and with ``params.diagnose`` every other split there too, for the bias/variance table.
    ``images`` is the folder of image splits the misclassified grid is drawn from.
    """
    from pipeline.evaluate.diagnosis import ORDER, diagnose

    scorer = Scorer(model_dir, params.batch_size)
    split_path = data / f"{params.split}.h5"
    prediction = scorer.predict(split_path)
    result = score_prediction(prediction)
    result["prediction"] = prediction
    metrics = result["metrics"]
    if params.oversample.enabled and scorer.is_keras:
        views, n_views = scorer.predict_oversampled(split_path, params.oversample.crop,
                                                    params.oversample.flip)
        over = ranks(views.probabilities, views.labels, len(views.classes))
        metrics["oversampled"] = {
            "views": n_views, **over,
            "rank1_gain": round(over["rank1"] - metrics["rank1"], 6),
        }
    elif params.oversample.enabled:
        result["notes"].append("oversampling skipped: this model scores precomputed features")
    if params.diagnose:
        errors, counts = {}, {}
        for name in ORDER:
            path = data / f"{name}.h5"
            if name == params.split:
                errors[name], counts[name] = 1.0 - metrics["rank1"], len(prediction.labels)
            elif path.exists() and _count(path) > 0:
                other = scorer.predict(path)
                errors[name] = 1.0 - rank_k(other.probabilities, other.labels, 1)
                counts[name] = len(other.labels)
        result["diagnosis"] = {**diagnose(errors, params.human_error, counts), "images": counts}
        # The gaps are the headline; each split's error and image count go to report.json.
        metrics["diagnosis"] = dict(result["diagnosis"]["gaps"])
    result["images"] = images / f"{params.split}.h5" if images is not None else None
    return result


def _count(split_path: Path) -> int:
    """Images in a split file of images or of features (an empty train-dev split has none)."""
    import h5py

    with h5py.File(split_path, "r") as f:
        return int(f["labels"].shape[0])


def write_outputs(result: dict[str, Any], out: Path, split: str,
                  misclassified: int = 25) -> dict[str, Any]:
    """``metrics.json``, ``report.json``/``.txt``, ``predictions.csv``, ``confusion.png``,
    ``misclassified.png`` (when the image split is known) and ``diagnosis.md`` (when made).

    ``metrics.json`` (declared as DVC metrics) holds the headline numbers only; the per-class
    report, the confusion matrix, the diagnosis's per-split errors and any ``details`` (e.g. an
    ensemble's members) go to ``report.json``.
    """
    from pipeline.io import atomic
    from pipeline.io.tables import write_csv

    classes = result["classes"]
    metrics = {"split": split, **result["metrics"]}
    atomic.write_json(out / "metrics.json", metrics)
    report = {"notes": result["notes"], "report": result["report"],
              "confusion": result["confusion"], "classes": classes}
    if "diagnosis" in result:
        report["diagnosis"] = result["diagnosis"]
    atomic.write_json(out / "report.json", {**report, **result.get("details", {})})
    atomic.write_text(out / "report.txt", result["report_text"])
    write_csv(out / "predictions.csv", ["path", "actual", "predicted"], [
        {"path": p, "actual": classes[t], "predicted": classes[q]}
        for p, t, q in zip(result["paths"], result["labels"], result["predicted"], strict=True)
    ])
    confusion_png(result["confusion"], classes, out / "confusion.png",
                  f"{split}: rank-1 {metrics['rank1']:.4f}")
    if result.get("images") is not None:
        _misclassified_png(result, out / "misclassified.png", split, misclassified)
    if "diagnosis" in result:
        from pipeline.evaluate.diagnosis import table_markdown

        atomic.write_text(out / "diagnosis.md", table_markdown(result["diagnosis"]))
    return metrics


def _misclassified_png(result: dict[str, Any], target: Path, split: str, limit: int) -> None:
    from pipeline.evaluate.gallery import grid_png, misclassified
    from pipeline.io.hdf5 import Split

    images = result["images"]
    if Split(images).paths() != list(result["paths"]):
        raise ValueError(f"{images} does not hold the images that were scored, in that order")
    classes, probabilities = result["classes"], result["prediction"].probabilities
    predicted = result["predicted"]
    picked = misclassified(result["labels"], predicted, probabilities.max(axis=1), limit)
    titles = [f"true {classes[result['labels'][i]]}\npred {classes[predicted[i]]} "
              f"({probabilities[i].max():.2f})" for i in picked]
    wrong = int((result["labels"] != predicted).sum())
    grid_png(images, picked, titles, target,
             f"{split}: {len(picked)} of {wrong} misclassified, most confident first")
