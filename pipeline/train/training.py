"""Training with ``model.fit`` on the HDF5 loader: callbacks, dvclive logging, resume after a kill."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

from pipeline.config import EarlyStoppingParams, Params, TrainParams
from pipeline.io.atomic import atomic_path, read_json
from pipeline.io.hdf5 import Split
from pipeline.models import zoo as models
from pipeline.train import augment, resume
from pipeline.train.history import CLASSIFIER_PANELS, live_run, plot_curves
from pipeline.train.loader import HDF5Loader, eval_data, fit_data
from pipeline.train.preprocess import Preprocessor, save_spec
from pipeline.train.schedules import make_optimizer, rate_at


class LiveLogger(keras.callbacks.Callback):
    """Logs each epoch's metrics and learning rate to a dvclive ``Live``; draws the curves PNG.

    The PNG is redrawn after an epoch when ``redraw_s`` seconds have passed since the last
    drawing (every epoch of a long run; drawing takes about half a second), and always when
    training ends. dvclive's own Keras callback imports TensorFlow; this one works on every
    Keras backend.
    """

    def __init__(self, live: Any, panels: tuple[str, ...] = CLASSIFIER_PANELS,
                 redraw_s: float = 15.0):
        super().__init__()
        self.live = live
        self.panels = panels
        self.redraw_s = redraw_s
        self._drawn = time.monotonic()

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        self._drawn = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        for name, value in (logs or {}).items():
            if name == "learning_rate":
                continue
            key = f"val/{name.removeprefix('val_')}" if name.startswith("val_") else f"train/{name}"
            self.live.log_metric(key, float(value))
        self.live.log_metric("learning_rate", rate_at(self.model.optimizer))
        self.live.next_step()
        if time.monotonic() - self._drawn >= self.redraw_s:
            self.draw()

    def on_train_end(self, logs: dict[str, float] | None = None) -> None:
        self.draw()

    def draw(self) -> None:
        plot_curves(Path(self.live.plots_dir) / "metrics", Path(self.live.dir) / "curves.png",
                    self.panels)
        self._drawn = time.monotonic()


def configure_backend(seed: int, deterministic: bool, mixed_precision: bool = False) -> None:
    """Seed everything; deterministic TensorFlow ops and the mixed-precision policy."""
    keras.utils.set_random_seed(seed)
    if deterministic and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    keras.config.set_dtype_policy("mixed_float16" if mixed_precision else "float32")


def preprocessor_for(params: TrainParams, hdf5_dir: Path) -> Preprocessor:
    """The preprocessor params ask for, with the train split's mean when it is subtracted."""
    mean = None
    if params.preprocess.mean_subtract:
        mean = tuple(read_json(hdf5_dir / "mean.json")["mean"])
    crop = params.preprocess.crop
    return Preprocessor(scale=params.preprocess.scale, mean=mean, crop=tuple(crop) if crop else None)


def compile_model(model: keras.Model, optimizer: keras.optimizers.Optimizer, classes: int,
                  jit_compile: str = "auto") -> None:
    """Sparse cross-entropy, accuracy, and rank-5 accuracy when there are more than 5 classes."""
    metrics: list[Any] = ["accuracy"]
    if classes > 5:
        metrics.append(keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="rank5"))
    jit = {"auto": "auto", "true": True, "false": False}[jit_compile]
    model.compile(optimizer, "sparse_categorical_crossentropy", metrics=metrics, jit_compile=jit)


def class_weights(labels: np.ndarray, classes: int) -> dict[int, float]:
    """Inverse-frequency weights (scikit-learn's ``balanced``); absent classes get 1."""
    from sklearn.utils.class_weight import compute_class_weight

    present = np.unique(labels)
    weights = compute_class_weight("balanced", classes=present, y=labels)
    out = dict.fromkeys(range(classes), 1.0)
    out.update({int(c): float(w) for c, w in zip(present, weights, strict=True)})
    return out


def callbacks(live: Any, checkpoint_dir: Path, monitor: str, has_val: bool,
              es: EarlyStoppingParams | None = None, best: Path | None = None,
              panels: tuple[str, ...] = CLASSIFIER_PANELS) -> list:
    """Logging first (so a kill never logs an epoch the backup lacks), then the backup in
    ``checkpoint_dir``, the best model (``best``, by default in ``checkpoint_dir``), early
    stopping."""
    out: list[keras.callbacks.Callback] = [
        LiveLogger(live, panels),
        keras.callbacks.BackupAndRestore(str(resume.backup_dir(checkpoint_dir)),
                                         double_checkpoint=True, delete_checkpoint=False),
    ]
    monitor = monitor if has_val else monitor.removeprefix("val_")
    out.append(keras.callbacks.ModelCheckpoint(str(best or checkpoint_dir / "best.keras"),
                                               monitor=monitor, save_best_only=True, verbose=0))
    if es is not None and es.enabled:
        out.append(keras.callbacks.EarlyStopping(
            monitor=es.monitor if has_val else es.monitor.removeprefix("val_"),
            patience=es.patience, min_delta=es.min_delta, restore_best_weights=es.restore_best,
        ))
    return out


def train(params: Params, hdf5_dir: Path, model_dir: Path, live_dir: Path,
          checkpoint_dir: Path) -> keras.Model:
    """Train ``params.train.model`` on ``hdf5_dir/train.h5`` (validating on ``val.h5``).

    ``checkpoint_dir`` persists between runs: after a kill the next run continues from the last
    finished epoch (weights, optimizer state and schedule position, loader order, dvclive
    history) unless params or data changed, in which case it starts fresh and says why.
    """
    tp = params.train
    configure_backend(params.base.seed, tp.deterministic, tp.mixed_precision)
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
    model = models.build(tp.model, preprocessor.output_shape(train_split.shape[1:]), classes, tp.arch)
    compile_model(model, make_optimizer(tp, len(train_data)), classes, tp.jit_compile)
    print(f"{model.name}: {model.count_params():,} parameters, {len(train_split)} training images")

    fingerprint = resume.fingerprint(
        {"train": tp.model_dump(mode="json", exclude={"early_stopping"})}, params.base.seed,
        model, train_split.path,
    )
    initial_epoch, why = resume.prepare(checkpoint_dir, fingerprint)
    print(f"train: {why}")
    fit_train, steps_per_epoch = fit_data(train_data, initial_epoch, tp.epochs)
    with live_run(live_dir, initial_epoch) as live:
        live.summary["parameters"] = int(model.count_params())
        weights = (class_weights(train_split.labels, classes) if tp.class_weight == "balanced"
                   else None)
        model.fit(
            fit_train, steps_per_epoch=steps_per_epoch, epochs=tp.epochs,
            validation_data=eval_data(val_data) if val_data else None,
            initial_epoch=initial_epoch, shuffle=False, verbose=2, class_weight=weights,
            callbacks=callbacks(live, checkpoint_dir, tp.checkpoint_monitor,
                                has_val=val_data is not None, es=tp.early_stopping),
        )
    save(model, model_dir, preprocessor, train_split, params)
    best = checkpoint_dir / "best.keras"
    if best.exists():
        with atomic_path(model_dir / "best.keras", suffix=".keras") as tmp:
            shutil.copyfile(best, tmp)
    resume.finish(checkpoint_dir, fingerprint)
    return model


def save(model: keras.Model, model_dir: Path, preprocessor: Preprocessor, split: Split,
         params: Params) -> None:
    """Write ``model.keras`` and ``preprocess.json`` atomically."""
    with atomic_path(model_dir / "model.keras", suffix=".keras") as tmp:
        model.save(tmp)
    save_spec(
        model_dir / "preprocess.json", preprocessor, classes=split.classes,
        size=list(split.shape[1:3]), channels=split.shape[3],
        resize=split.decoding.get("resize", params.hdf5.resize),
        interpolation=split.decoding.get("interpolation", params.hdf5.interpolation),
    )
