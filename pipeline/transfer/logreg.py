"""Logistic regression on backbone features: a scikit-learn pipeline, grid-searched with CV.

The fitted model is saved with ``joblib`` (pickle) as ``model.joblib``, beside ``model.json``
(classes, best parameters, CV score, the features it expects). Pickle runs code when loaded:
:func:`load` is meant only for files this pipeline wrote itself, never for ones from elsewhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import TrainLogregParams
from pipeline.io import atomic
from pipeline.transfer.features import FeatureSplit

MODEL = "model.joblib"
META = "model.json"


def signed_power(features: np.ndarray, power: float) -> np.ndarray:
    """``sign(x) |x|^power``: power normalisation (0.5 = square root) of pooled features."""
    return np.sign(features) * np.abs(features) ** power


def estimator(params: TrainLogregParams, seed: int):
    """The unfitted scikit-learn pipeline: optional power normalisation and scaling, then
    ``LogisticRegression``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, Normalizer, StandardScaler

    steps: list[tuple[str, Any]] = []
    if params.power != 1.0:
        steps.append(("power", FunctionTransformer(signed_power, kw_args={"power": params.power})))
    if params.scale == "standard":
        steps.append(("scale", StandardScaler()))
    elif params.scale == "l2":
        steps.append(("scale", Normalizer()))
    steps.append(("logreg", LogisticRegression(max_iter=params.max_iter, random_state=seed)))
    return Pipeline(steps)


def fit(train: FeatureSplit, params: TrainLogregParams, seed: int, verbose: int = 1):
    """``GridSearchCV`` over ``params.grid`` (stratified folds), refitted on all of ``train``.

    BLAS runs on one thread (``threadpoolctl``): lbfgs on features this size makes many small
    matrix products, where OpenBLAS's threads cost more than they give (measured here: 6.1 s on
    two threads, 0.33 s on one, for one fit on 1125 x 256 features; docs/results.md).
    Parallelism across folds and grid points is ``n_jobs``.
    """
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from threadpoolctl import threadpool_limits

    grid = {f"logreg__{key}": values for key, values in params.grid.items()}
    folds = StratifiedKFold(params.cv, shuffle=True, random_state=seed)
    search = GridSearchCV(estimator(params, seed), grid, cv=folds, n_jobs=params.n_jobs,
                          verbose=verbose, refit=True)
    with threadpool_limits(limits=1, user_api="blas"):
        search.fit(train.features, train.labels)
    return search


def save(search, out: Path, train: FeatureSplit) -> dict[str, Any]:
    """Write ``model.joblib`` (the refitted best pipeline) and ``model.json``; return the latter."""
    import joblib

    meta = {
        "kind": "logreg",
        "classes": train.classes,
        "best_params": {k.removeprefix("logreg__"): v for k, v in search.best_params_.items()},
        "cv_accuracy": float(search.best_score_),
        "features": {k: (v.tolist() if isinstance(v, np.ndarray | np.generic) else v)
                     for k, v in train.attrs.items()},
        "dimensions": int(train.features.shape[1]),
    }
    with atomic.atomic_path(out / MODEL, suffix=".joblib") as tmp:
        joblib.dump(search.best_estimator_, tmp)
    atomic.write_json(out / META, meta)
    return meta


def load(model_dir: Path):
    """The fitted pipeline and its metadata. Only for this pipeline's own artifacts (pickle)."""
    import joblib

    return joblib.load(model_dir / MODEL), atomic.read_json(model_dir / META)


def probabilities(model, split: FeatureSplit, classes: int) -> np.ndarray:
    """Class probabilities with one column per class, also for classes absent from training."""
    probs = model.predict_proba(split.features)
    full = np.zeros((len(split), classes), dtype=np.float64)
    full[:, model.classes_] = probs
    return full
