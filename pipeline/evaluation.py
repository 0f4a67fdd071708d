"""Scoring a trained model on a split: rank-k accuracy, per-class report, confusion matrix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def rank_k(probabilities: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fraction of rows whose true label is among the ``k`` most probable classes."""
    if probabilities.shape[0] == 0:
        raise ValueError("no predictions to score")
    top = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == labels[:, None], axis=1)))


def scores(probabilities: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Metrics (rank-1, rank-5 where there are more than 5 classes) and the per-class report."""
    from sklearn.metrics import classification_report, confusion_matrix

    predicted = probabilities.argmax(axis=1)
    metrics: dict[str, Any] = {"rank1": rank_k(probabilities, labels, 1), "images": len(labels)}
    notes = []
    if len(classes) > 5:
        metrics["rank5"] = rank_k(probabilities, labels, 5)
    else:
        notes.append(f"rank-5 not reported: {len(classes)} classes, rank-5 would be trivially 1.0")
    index = list(range(len(classes)))
    report = classification_report(
        labels, predicted, labels=index, target_names=classes, output_dict=True, zero_division=0
    )
    matrix = confusion_matrix(labels, predicted, labels=index)
    metrics["per_class"] = {
        name: {"precision": round(report[name]["precision"], 6),
               "recall": round(report[name]["recall"], 6)}
        for name in classes
    }
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

    from pipeline.atomic import atomic_path

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


def evaluate_model(model_dir: Path, split_path: Path, batch_size: int) -> dict[str, Any]:
    """Predict ``split_path`` with the model in ``model_dir`` and score it (see :func:`scores`).

    A Keras model (``model.keras`` + ``preprocess.json``) reads a split of images; a logistic
    regression (``model.joblib``, from ``train_logreg``) reads the same split's features file.
    """
    from pipeline import logreg

    if (model_dir / logreg.MODEL).exists():
        from pipeline.features import FeatureSplit

        model, meta = logreg.load(model_dir)
        split = FeatureSplit(split_path)
        classes, labels, paths = meta["classes"], split.labels, split.paths
        probabilities = logreg.probabilities(model, split, len(classes))
    else:
        import keras

        from pipeline.loader import HDF5Loader, eval_data
        from pipeline.preprocess import load_spec

        preprocessor, spec = load_spec(model_dir / "preprocess.json")
        # Without the optimizer: scoring needs none, and its custom schedule may not be imported.
        model = keras.models.load_model(model_dir / "model.keras", compile=False)
        loader = HDF5Loader(split_path, batch_size, preprocessor)
        probabilities = model.predict(eval_data(loader), verbose=0)
        classes, labels, paths = spec["classes"], loader.split.labels, loader.split.paths()
    result = scores(probabilities, labels, classes)
    result.update(classes=classes, labels=labels, paths=paths)
    return result


def write_outputs(result: dict[str, Any], out: Path, split: str) -> dict[str, Any]:
    """``metrics.json``, ``report.json``/``.txt``, ``predictions.csv``, ``confusion.png``."""
    from pipeline import atomic
    from pipeline.tables import write_csv

    classes = result["classes"]
    metrics = {"split": split, **result["metrics"]}
    atomic.write_json(out / "metrics.json", metrics)
    atomic.write_json(out / "report.json", {"notes": result["notes"], "report": result["report"],
                                            "confusion": result["confusion"], "classes": classes})
    atomic.write_text(out / "report.txt", result["report_text"])
    write_csv(out / "predictions.csv", ["path", "actual", "predicted"], [
        {"path": p, "actual": classes[t], "predicted": classes[q]}
        for p, t, q in zip(result["paths"], result["labels"], result["predicted"], strict=True)
    ])
    confusion_png(result["confusion"], classes, out / "confusion.png",
                  f"{split}: rank-1 {metrics['rank1']:.4f}")
    return metrics
