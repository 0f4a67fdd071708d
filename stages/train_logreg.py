"""Stage `train_logreg`: grid-searched logistic regression on the extracted features."""

from __future__ import annotations

from pathlib import Path

import click

from stages.common import Stage, file_option, folder_option, load_or_exit, params_option


@click.command(name="train_logreg", cls=Stage)
@params_option
@folder_option("--features", "data/features", exists=True, help="Folder written by extract_features.")
@folder_option("--out", "models/logreg", "Folder for model.joblib and model.json.")
@file_option("--metrics", "results/train_logreg/metrics.json", dest="metrics_path")
def cli(params_path: Path, features: Path, out: Path, metrics_path: Path) -> None:
    """Fit ``LogisticRegression`` with ``GridSearchCV`` over ``train_logreg.grid`` on the train
    split's features (stratified ``cv`` folds, ``n_jobs`` parallel fits), refit the best on all
    of train, and score val.

    Saves ``model.joblib`` (a pickled scikit-learn pipeline: load it only if this pipeline
    wrote it), ``model.json`` (classes, best parameters, CV accuracy) and the model card
    (``card.json``, ``MODEL_CARD.md``). Metrics: best
    parameters, CV and val accuracy.
    """
    params = load_or_exit(params_path)
    from pipeline.evaluate.evaluation import rank_k
    from pipeline.io import atomic
    from pipeline.transfer import logreg
    from pipeline.transfer.features import FeatureSplit

    train = FeatureSplit(features / "train.h5")
    search = logreg.fit(train, params.train_logreg, params.base.seed)
    meta = logreg.save(search, out, train)
    metrics = {"best_params": meta["best_params"], "cv_accuracy": round(meta["cv_accuracy"], 6)}
    val_path = features / "val.h5"
    if val_path.exists() and len(val := FeatureSplit(val_path)):
        probs = logreg.probabilities(search.best_estimator_, val, len(train.classes))
        metrics["val_accuracy"] = round(rank_k(probs, val.labels, 1), 6)
    atomic.write_json(metrics_path, metrics)
    from pipeline.io import model_card

    summary = model_card.linear_summary("logistic_regression", search.best_estimator_,
                                        len(train.classes))
    settings = {name: getattr(params, name).model_dump(mode="json")
                for name in ("train_logreg", "extract_features", "backbone")}
    model_card.write(out, model_card.build_from("train_logreg", summary, out, settings,
                                                features / "train.h5", metrics))
    shown = ", ".join(f"{k} {v}" for k, v in metrics.items())
    click.echo(f"train_logreg: {shown}")


if __name__ == "__main__":
    cli()
