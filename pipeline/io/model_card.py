"""The model card written beside every trained model: ``card.json`` and ``MODEL_CARD.md``.

What a user of the model needs without the repository: the data it was trained on and its
SHA-256, the params of its section, the run's headline metrics (dvclive's ``metrics.json``),
the input format (``preprocess.json`` or ``meta.json`` beside the model), the classes, and its
known limits. Written by :meth:`pipeline.train.lifecycle.TrainingRun.finish` for every Keras
model the training lifecycle saves (:func:`build`), and by the scikit-learn stages
(``train_logreg``, ``hog_svm``) through :func:`build_from`; nothing in it depends on the time or
the machine, so a re-run with the same inputs writes the same card.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import h5py

from pipeline.io import atomic

JSON, MARKDOWN = "card.json", "MODEL_CARD.md"

#: Files beside the model that describe its input (the first found is used): Keras models'
#: preprocessing, the DCGAN's and SRCNN's meta, logistic regression's and HOG + SVM's own.
INPUT_FILES = ("preprocess.json", "meta.json", "model.json", "hog.json")
#: Keys of those files that are not about the input (classes have their own entry).
NOT_INPUT = ("classes", "best_params", "cv_accuracy")


def _digest(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _examples(path: Path) -> int | None:
    """Rows of an HDF5 training file: its ``labels``, else its first dataset."""
    with h5py.File(path, "r") as f:
        name = "labels" if "labels" in f else next(
            (k for k in f if isinstance(f[k], h5py.Dataset)), None)
        return int(f[name].shape[0]) if name is not None else None


def _shape(tensor_shape: Any) -> list[int | None]:
    return list(tensor_shape)[1:]


def linear_summary(name: str, estimator: Any, classes: int) -> dict[str, Any]:
    """:func:`build_from`'s summary of a fitted scikit-learn linear model (``coef_``,
    ``intercept_``), or of a pipeline ending in one."""
    last = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    return {"name": name, "parameters": int(last.coef_.size + last.intercept_.size),
            "input_shape": [int(last.coef_.shape[1])], "output_shape": [classes]}


def build(stage: str, model: Any, folder: Path, settings: dict[str, Any], data_file: Path,
          live_dir: Path) -> dict[str, Any]:
    """The card of the Keras ``model`` (saved in ``folder``) as a JSON-able dict."""
    metrics_file = live_dir / "metrics.json"
    summary = {"name": model.name, "parameters": int(model.count_params()),
               "input_shape": _shape(model.input_shape), "output_shape": _shape(model.output_shape)}
    return build_from(stage, summary, folder, settings, data_file,
                      atomic.read_json(metrics_file) if metrics_file.is_file() else {})


def build_from(stage: str, summary: dict[str, Any], folder: Path, settings: dict[str, Any],
               data_file: Path, metrics: dict[str, Any]) -> dict[str, Any]:
    """The card of any model saved in ``folder``: ``summary`` holds its name, parameter count
    and input/output shapes (per example); ``metrics`` its training run's headline numbers."""
    from pipeline.config import Params

    described = next((atomic.read_json(folder / n) for n in INPUT_FILES if (folder / n).is_file()),
                     {})
    classes = described.get("classes", [])
    params = {k: v for k, v in settings.items() if k in Params.model_fields}
    examples = _examples(data_file)
    card = {
        "model": {"stage": stage, **summary,
                  "files": sorted(p.name for p in folder.iterdir() if p.is_file()
                                  and p.name not in (JSON, MARKDOWN))},
        "data": {"path": str(data_file), "sha256": _digest(data_file), "examples": examples},
        "params": params,
        "metrics": metrics,
        "input": {k: v for k, v in described.items() if k not in NOT_INPUT},
        "classes": classes,
    }
    card["limits"] = limits(card, settings)
    return card


def limits(card: dict[str, Any], settings: dict[str, Any]) -> list[str]:
    """What the model is not to be trusted for, from what the card knows."""
    data = card["data"]
    out = [f"Trained on {data['examples'] or 'the'} examples of {data['path']} only: inputs "
           "unlike them (another size, channel count, preprocessing or kind of picture) are "
           "outside what it has seen."]
    if card["classes"] and card["model"]["output_shape"] == [len(card["classes"])]:
        out.append("Its class probabilities (or scores) are not calibrated: a confidence of 0.9 "
                   "does not mean right 9 times in 10.")
    out.append("The metrics are the training run's (train and validation splits); the test "
               "split is scored by the evaluate stages.")
    if settings.get("backbone", {}).get("weights") == "none":
        out.append("The backbone started from random weights (backbone.weights: none): its "
                   "scores show that the branch runs, not what transfer learning achieves.")
    return out


def _flat(tree: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(tree, dict):
        return [pair for k, v in tree.items() for pair in _flat(v, f"{prefix}{k}.")]
    return [(prefix.rstrip("."), tree)]


def markdown(card: dict[str, Any]) -> str:
    """The card as Markdown for people (``MODEL_CARD.md``)."""
    import yaml

    model, data = card["model"], card["data"]
    lines = [f"# Model card: {model['name']}", "",
             f"Trained by the `{model['stage']}` stage of cvpipe; `{JSON}` beside this file "
             "holds the same facts.", "", "## Model", "",
             f"- files: {', '.join(model['files'])}",
             f"- parameters: {model['parameters']:,}",
             f"- input shape {model['input_shape']}, output shape {model['output_shape']}", "",
             "## Data", "",
             f"- `{data['path']}`: {data['examples']} examples, SHA-256 `{data['sha256']}`", "",
             "## Input format", ""]
    lines += [f"- {k}: {v}" for k, v in _flat(card["input"]) if v is not None] or [
        "- as the input shape says"]
    if card["classes"]:
        lines += ["", "## Classes", "", ", ".join(map(str, card["classes"]))]
    lines += ["", "## Metrics", ""]
    lines += [f"- {k}: {v:.4g}" if isinstance(v, float) else f"- {k}: {v}"
              for k, v in _flat(card["metrics"])] or ["- none logged"]
    lines += ["", "## Params", "", "```yaml",
              yaml.safe_dump(card["params"], sort_keys=False).rstrip(), "```", "",
              "## Known limits", ""]
    lines += [f"- {line}" for line in card["limits"]]
    return "\n".join(lines) + "\n"


def write(folder: Path, card: dict[str, Any]) -> None:
    """``card.json`` and ``MODEL_CARD.md`` in ``folder``, as one set."""
    with atomic.atomic_paths([folder / JSON, folder / MARKDOWN]) as (json_tmp, md_tmp):
        atomic.write_json(json_tmp, card)
        atomic.write_text(md_tmp, markdown(card))
