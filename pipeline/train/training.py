"""Training a classifier from the zoo with ``model.fit`` on the HDF5 loader (the ``train`` stage).

The run itself (seed, resume after a kill, dvclive logging, backup and best model, atomic save)
is :class:`pipeline.train.lifecycle.TrainingRun`. Labels are class indices and the loss sparse
cross-entropy, unless labels are smoothed or images mixed (MixUp, CutMix): then every batch,
validation's too, carries one-hot labels and Keras's ``CategoricalCrossentropy`` (with its
``label_smoothing``) scores them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np

from pipeline.config import FinetuneParams, Params, ParamsError, TrainParams
from pipeline.io.atomic import read_json
from pipeline.io.errors import InputError
from pipeline.io.hdf5 import Split
from pipeline.models import zoo as models
from pipeline.train import augment, distribute
from pipeline.train.lifecycle import TrainingRun
from pipeline.train.loader import HDF5Loader, eval_data
from pipeline.train.preprocess import Preprocessor, save_spec
from pipeline.train.schedules import make_optimizer
from pipeline.train.trial_report import trial_callbacks


def preprocessor_for(params: TrainParams, hdf5_dir: Path) -> Preprocessor:
    """The preprocessor params ask for, with the train split's mean (and std) from
    ``mean.json`` when they are used. Standardised and GCN pixels are unit-free: no scaling."""
    p = params.preprocess
    mean = std = None
    if p.mean_subtract:
        stats = read_json(hdf5_dir / "mean.json")
        mean = tuple(stats["mean"])
        if p.standardize:
            std = _channel_std(stats, hdf5_dir / "mean.json")
    return Preprocessor(scale=p.scale and not (p.standardize or p.gcn), mean=mean, std=std,
                        gcn=p.gcn, gcn_eps=p.gcn_eps, crop=tuple(p.crop) if p.crop else None)


def _channel_std(stats: dict[str, Any], path: Path) -> tuple[float, ...]:
    """The per-channel std ``mean.json`` holds; :class:`InputError` naming the file where it
    has none (written before it kept one) or one of them is 0 (a constant channel)."""
    if "std" not in stats:
        raise InputError(f"{path}: no per-channel std for preprocess.standardize (written by an "
                         "older hdf5 stage); run the hdf5 stage again")
    std = tuple(float(s) for s in stats["std"])
    if min(std) <= 0:
        raise InputError(f"{path}: a channel's std is {min(std)} (the channel is constant); "
                         "standardizing would divide by it")
    return std


def one_hot(params: TrainParams | FinetuneParams) -> bool:
    """Whether ``params`` need one-hot labels: smoothed, or mixed by MixUp/CutMix."""
    return params.label_smoothing > 0 or params.augment.mixes


def compile_model(model: keras.Model, optimizer: keras.optimizers.Optimizer, classes: int,
                  jit_compile: str = "auto", *, one_hot: bool = False,
                  label_smoothing: float = 0.0) -> None:
    """Cross-entropy, accuracy, and rank-5 accuracy when there are more than 5 classes: sparse
    (labels are class indices), or with ``one_hot`` categorical, smoothed by ``label_smoothing``."""
    if label_smoothing and not one_hot:
        raise ValueError(f"label_smoothing {label_smoothing} needs one-hot labels")
    jit = {"auto": "auto", "true": True, "false": False}[jit_compile]
    metrics: list[Any]
    if one_hot:
        loss: Any = keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)
        metrics = [keras.metrics.CategoricalAccuracy(name="accuracy")]
        top_k = keras.metrics.TopKCategoricalAccuracy
    else:
        loss, metrics = "sparse_categorical_crossentropy", ["accuracy"]
        top_k = keras.metrics.SparseTopKCategoricalAccuracy
    if classes > 5:
        metrics.append(top_k(k=5, name="rank5"))
    model.compile(optimizer, loss, metrics=metrics, jit_compile=jit)


def class_weights(labels: np.ndarray, classes: int) -> dict[int, float]:
    """Inverse-frequency weights (scikit-learn's ``balanced``); absent classes get 1."""
    from sklearn.utils.class_weight import compute_class_weight

    present = np.unique(labels)
    weights = compute_class_weight("balanced", classes=present, y=labels)
    out = dict.fromkeys(range(classes), 1.0)
    out.update({int(c): float(w) for c, w in zip(present, weights, strict=True)})
    return out


def train(params: Params, hdf5_dir: Path, model_dir: Path, live_dir: Path,
          checkpoint_dir: Path, section: str = "train") -> keras.Model:
    """Train ``params.train.model`` on ``hdf5_dir/train.h5`` (validating on ``val.h5``).

    ``checkpoint_dir`` persists between runs: after a kill the next run continues from the last
    finished epoch (weights, optimizer state and schedule position, loader order, dvclive
    history) unless params or data changed, in which case it starts fresh and says why.
    Under ``train.distribution`` (:mod:`pipeline.train.distribute`) only the chief writes them.
    ``section`` is the params section the settings came from, named in messages and errors
    (``detect_train`` hands its section over as ``params.train`` and names it here).
    """
    tp = params.train
    dist = distribute.setup(tp.distribution, section, tp.batch_size)  # before the backend runs
    if dist.active and tp.class_weight != "none":
        raise ParamsError([f"{section}.class_weight: {tp.class_weight} is not supported with "
                           f"{section}.distribution {tp.distribution}; use none"])
    model_dir, live_dir, checkpoint_dir = dist.outputs(model_dir, live_dir, checkpoint_dir)
    run = TrainingRun(section, checkpoint_dir, live_dir, params.base.seed, tp.deterministic,
                      tp.mixed_precision)
    train_split = Split(hdf5_dir / "train.h5")
    classes = len(train_split.classes)
    preprocessor = preprocessor_for(tp, hdf5_dir)
    loader_args = {
        "batch_size": tp.batch_size, "preprocessor": preprocessor, "seed": params.base.seed,
        "memory_limit_mb": tp.loader.memory_limit_mb, "block_size": tp.loader.block_size,
        "workers": tp.loader.workers, "one_hot": classes if one_hot(tp) else None,
    }
    train_data = HDF5Loader(
        train_split.path, training=True, augment=augment.build(tp.augment, params.base.seed),
        **{**loader_args, "batch_size": dist.replica_batch(tp.batch_size)},
    )
    val_path = hdf5_dir / "val.h5"
    val_data = HDF5Loader(val_path, **loader_args) if len(Split(val_path)) else None

    steps = len(train_split) // tp.batch_size if dist.active else len(train_data)
    with dist.scope():
        model = models.build(tp.model, preprocessor.output_shape(train_split.shape[1:]), classes,
                             tp.arch)
        compile_model(model, make_optimizer(dist.scaled(tp, tp.lr_scaling), steps, section), classes,
                      tp.jit_compile, one_hot=one_hot(tp), label_smoothing=tp.label_smoothing)
    dist.adopt(model, train_data)
    if dist.active:
        print(dist.describe(tp.batch_size))
    print(f"{model.name}: {model.count_params():,} parameters, {len(train_split)} training images")

    run.identify({"train": tp.model_dump(mode="json", exclude={"early_stopping"})}, model,
                 train_split.path)
    initial_epoch = run.resume()
    dist.agree(initial_epoch)
    fit_train, steps_per_epoch = dist.fit_data(train_data, initial_epoch, tp.epochs, tp.batch_size)
    summary = {"replicas": dist.replicas} if dist.active else {}
    with run.logging(initial_epoch, parameters=int(model.count_params()), **summary):
        if train_data.augment is not None:  # after dvclive set up its plots folder
            augment.write_preview(train_data.augment, train_split.read(0, 8),
                                  live_dir / "plots" / "augment.png")
        weights = (class_weights(train_split.labels, classes) if tp.class_weight == "balanced"
                   else None)
        model.fit(
            fit_train, steps_per_epoch=steps_per_epoch, epochs=tp.epochs,
            validation_data=eval_data(val_data) if val_data else None,
            initial_epoch=initial_epoch, shuffle=False, verbose=0, class_weight=weights,
            callbacks=run.callbacks(tp.checkpoint_monitor, has_val=val_data is not None,
                                    es=tp.early_stopping, images=len(train_split),
                                    extra=trial_callbacks(tp.trial)),
        )
    save(run, model, model_dir, preprocessor, train_split, params)
    run.keep_best(model_dir / "best.keras")
    run.finish()
    return model


def save(run: TrainingRun, model: keras.Model, model_dir: Path, preprocessor: Preprocessor,
         split: Split, params: Params) -> None:
    """Write ``model.keras`` and ``preprocess.json`` atomically."""
    run.save(model, model_dir / "model.keras")
    save_spec(
        model_dir / "preprocess.json", preprocessor, classes=split.classes,
        size=list(split.shape[1:3]), channels=split.shape[3],
        resize=split.decoding.get("resize", params.hdf5.resize),
        interpolation=split.decoding.get("interpolation", params.hdf5.interpolation),
    )
