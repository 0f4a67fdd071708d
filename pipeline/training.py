"""Training with ``model.fit`` on the HDF5 loader, logging every epoch to dvclive."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras

from pipeline import augment, models
from pipeline.atomic import atomic_path, read_json
from pipeline.hdf5 import Split
from pipeline.loader import HDF5Loader
from pipeline.params import Params, TrainParams
from pipeline.preprocess import Preprocessor, save_spec


class LiveLogger(keras.callbacks.Callback):
    """Logs each epoch's metrics to a dvclive ``Live`` and advances its step.

    dvclive's own Keras callback imports TensorFlow; this one works on every Keras backend.
    """

    def __init__(self, live: Any):
        super().__init__()
        self.live = live

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        for name, value in (logs or {}).items():
            if name == "learning_rate":
                self.live.log_metric(name, float(value), plot=True)
            elif name.startswith("val_"):
                self.live.log_metric(f"val/{name.removeprefix('val_')}", float(value))
            else:
                self.live.log_metric(f"train/{name}", float(value))
        self.live.next_step()


def make_optimizer(params: TrainParams) -> keras.optimizers.Optimizer:
    """The optimizer named in params, at ``lr``."""
    if params.optimizer == "sgd":
        return keras.optimizers.SGD(params.lr, momentum=params.momentum)
    if params.optimizer == "adam":
        return keras.optimizers.Adam(params.lr)
    return keras.optimizers.RMSprop(params.lr)


def preprocessor_for(params: TrainParams, hdf5_dir: Path) -> Preprocessor:
    """The preprocessor params ask for, with the train split's mean when it is subtracted."""
    mean = None
    if params.preprocess.mean_subtract:
        mean = tuple(read_json(hdf5_dir / "mean.json")["mean"])
    crop = params.preprocess.crop
    return Preprocessor(scale=params.preprocess.scale, mean=mean, crop=tuple(crop) if crop else None)


def compile_model(model: keras.Model, params: TrainParams, classes: int) -> None:
    """Sparse cross-entropy, accuracy, and rank-5 accuracy when there are more than 5 classes."""
    metrics: list[Any] = ["accuracy"]
    if classes > 5:
        metrics.append(keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="rank5"))
    model.compile(make_optimizer(params), "sparse_categorical_crossentropy", metrics=metrics)


def train(params: Params, hdf5_dir: Path, model_dir: Path, live_dir: Path) -> keras.Model:
    """Train ``params.train.model`` on ``hdf5_dir/train.h5`` (validating on ``val.h5``)."""
    from dvclive import Live

    tp = params.train
    keras.utils.set_random_seed(params.base.seed)
    train_split = Split(hdf5_dir / "train.h5")
    preprocessor = preprocessor_for(tp, hdf5_dir)
    loader_args = {
        "batch_size": tp.batch_size, "preprocessor": preprocessor, "seed": params.base.seed,
        "memory_limit_mb": tp.loader.memory_limit_mb, "block_size": tp.loader.block_size,
        "workers": tp.loader.workers,
    }
    train_data = HDF5Loader(
        train_split.path, training=True, augment=augment.build(tp.augment, params.base.seed),
        **loader_args,
    )
    val_path = hdf5_dir / "val.h5"
    val_data = HDF5Loader(val_path, **loader_args) if len(Split(val_path)) else None

    classes = len(train_split.classes)
    model = models.build(tp.model, preprocessor.output_shape(train_split.shape[1:]), classes)
    compile_model(model, tp, classes)
    print(f"{model.name}: {model.count_params():,} parameters, {len(train_split)} training images")

    with Live(str(live_dir), save_dvc_exp=False, dvcyaml=None) as live:
        live.summary["parameters"] = int(model.count_params())
        model.fit(
            train_data, validation_data=val_data, epochs=tp.epochs, shuffle=False, verbose=2,
            callbacks=[LiveLogger(live)],
        )
    save(model, model_dir, preprocessor, train_split, params)
    return model


def save(model: keras.Model, model_dir: Path, preprocessor: Preprocessor, split: Split,
         params: Params) -> None:
    """Write ``model.keras`` and ``preprocess.json`` atomically."""
    with atomic_path(model_dir / "model.keras", suffix=".keras") as tmp:
        model.save(tmp)
    save_spec(
        model_dir / "preprocess.json", preprocessor, classes=split.classes,
        size=list(params.hdf5.size), channels=split.shape[3], resize=params.hdf5.resize,
        interpolation=params.hdf5.interpolation,
    )
