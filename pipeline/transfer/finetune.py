"""Fine-tuning a pretrained backbone: a new head trained with the body frozen (warm-up), then the
top of the body unfrozen and trained at a low rate. With pretrained weights, BatchNorm layers stay
frozen and in inference mode throughout; with ``weights: none`` there are no statistics worth
keeping, so unfrozen BatchNorm layers train like the rest. Both phases log to one dvclive history,
and a killed run resumes in either phase.
"""

from __future__ import annotations

from pathlib import Path

import keras
from keras import layers

from pipeline.config import FinetuneParams, HeadParams, Params, PhaseParams
from pipeline.io.atomic import atomic_path
from pipeline.io.hdf5 import Split
from pipeline.models import backbones
from pipeline.train import augment, distribute, resume
from pipeline.train.lifecycle import TrainingRun
from pipeline.train.loader import HDF5Loader, eval_data
from pipeline.train.preprocess import Preprocessor
from pipeline.train.schedules import make_optimizer
from pipeline.train.training import compile_model, one_hot, save
from pipeline.transfer.layers import require_layer


def build_model(body: keras.Model, head: HeadParams, classes: int,
                pretrained: bool = True) -> keras.Model:
    """``body`` (in inference mode when ``pretrained``) + pooling + dense/dropout head + softmax."""
    inputs = keras.Input(body.input_shape[1:])
    x = body(inputs, training=False) if pretrained else body(inputs)
    x = {"avg": layers.GlobalAveragePooling2D, "max": layers.GlobalMaxPooling2D,
         "flatten": layers.Flatten}[head.pooling]()(x)
    for units in head.units:
        x = layers.Dense(units, activation="relu")(x)
        if head.dropout:
            x = layers.Dropout(head.dropout)(x)
    if not head.units and head.dropout:
        x = layers.Dropout(head.dropout)(x)
    outputs = layers.Dense(classes, activation="softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name=f"{body.name}_finetune")


def unfreeze(body: keras.Model, params: FinetuneParams, pretrained: bool = True) -> int:
    """Make the body trainable from ``unfreeze_from`` (or its last ``unfreeze_last`` layers)
    upwards, BatchNorm excepted when ``pretrained``; return how many layers that is. A name
    the body lacks is a params error listing its layers."""
    names = [layer.name for layer in body.layers]
    if params.unfreeze_from is not None:
        require_layer(params.unfreeze_from, names, "finetune.unfreeze_from", body.name)
        first = names.index(params.unfreeze_from)
    else:
        first = max(0, len(names) - params.unfreeze_last)
    body.trainable = True
    count = 0
    for index, layer in enumerate(body.layers):
        frozen_bn = pretrained and isinstance(layer, layers.BatchNormalization)
        layer.trainable = index >= first and not frozen_bn
        count += layer.trainable and bool(layer.weights)
    return count


def finetune(params: Params, hdf5_dir: Path, model_dir: Path, live_dir: Path,
             checkpoint_dir: Path) -> keras.Model:
    """Both phases on ``hdf5_dir/train.h5`` (validating on ``val.h5``); saves like ``train``.

    ``checkpoint_dir`` persists between runs. It holds a backup per phase and the warmed-up
    weights, so a run killed in either phase continues from its last finished epoch. Under
    ``finetune.distribution`` (:mod:`pipeline.train.distribute`) only the chief writes them.
    """
    fp, bp, seed = params.finetune, params.backbone, params.base.seed
    dist = distribute.setup(fp.distribution, "finetune", fp.batch_size)  # before the backend runs
    model_dir, live_dir, checkpoint_dir = dist.outputs(model_dir, live_dir, checkpoint_dir)
    run = TrainingRun("finetune", checkpoint_dir, live_dir, seed, fp.deterministic)
    train_split = Split(hdf5_dir / "train.h5")
    classes = len(train_split.classes)
    preprocessor = Preprocessor(size=tuple(bp.image_size), rgb=True, backbone=bp.name)
    loader_args = {
        "batch_size": fp.batch_size, "preprocessor": preprocessor, "seed": seed,
        "memory_limit_mb": fp.loader.memory_limit_mb, "block_size": fp.loader.block_size,
        "workers": fp.loader.workers, "one_hot": classes if one_hot(fp) else None,
    }
    train_data = HDF5Loader(train_split.path, training=True, augment=augment.build(fp.augment, seed),
                            **{**loader_args, "batch_size": dist.replica_batch(fp.batch_size)})
    val_path = hdf5_dir / "val.h5"
    val_data = HDF5Loader(val_path, **loader_args) if len(Split(val_path)) else None

    with dist.scope():
        body = backbones.build(bp.name, bp.weights, tuple(bp.image_size), bp.alpha)
        model = build_model(body, fp.head, classes, bp.weights != "none")
    if dist.active:
        print(dist.describe(fp.batch_size))
    if fp.unfreeze_from is not None:  # before the warm-up, not after it
        require_layer(fp.unfreeze_from, [layer.name for layer in body.layers],
                      "finetune.unfreeze_from", body.name)
    pretrained = bp.weights != "none"
    run.identify({"finetune": fp.model_dump(mode="json"), "backbone": bp.model_dump(mode="json")},
                 model, train_split.path)
    warm_dir, tune_dir = checkpoint_dir / "warmup", checkpoint_dir / "unfreeze"
    warm_weights = checkpoint_dir / "warmup.weights.h5"
    warm_done = warm_weights.exists() and run.completed(warm_dir)
    start = max(run.resume(tune_dir), fp.warmup.epochs) if warm_done else run.resume(warm_dir)
    dist.agree(start)

    best = checkpoint_dir / "best.keras"
    if start == 0:
        best.unlink(missing_ok=True)
    with run.logging(start, parameters=int(model.count_params())):
        fit = _Phases(run, model, train_data, val_data, fp, classes, dist)
        if not warm_done:
            body.trainable = False
            print(f"finetune: warm-up, body frozen: {_trainable(model):,} trainable parameters")
            fit(fp.warmup, warm_dir, start, 0)
            with atomic_path(warm_weights, suffix=".weights.h5") as tmp:
                model.save_weights(tmp)
            run.finish(warm_dir)
            resume.prepare(tune_dir, run.fingerprint)
            start = fp.warmup.epochs
        else:
            model.load_weights(warm_weights)
        layers_on = unfreeze(body, fp, pretrained)
        print(f"finetune: {layers_on} backbone layers unfrozen: {_trainable(model):,} trainable "
              "parameters")
        fit(fp.unfreeze, tune_dir, start, fp.warmup.epochs)
    save(run, model, model_dir, preprocessor, train_split, params)
    run.keep_best(model_dir / "best.keras")
    run.finish(tune_dir)
    warm_weights.unlink(missing_ok=True)
    return model


def _trainable(model: keras.Model) -> int:
    return sum(int(keras.ops.size(w)) for w in model.trainable_weights)


class _Phases:
    """Runs one phase's ``model.fit`` with its own optimizer and backup, on a shared history."""

    def __init__(self, run: TrainingRun, model, train_data, val_data, params: FinetuneParams,
                 classes: int, dist: distribute.Distribution):
        self.run, self.model, self.train_data, self.val_data = run, model, train_data, val_data
        self.dist = dist
        self.params, self.classes = params, classes
        self.monitor = params.checkpoint_monitor
        self.epochs = params.warmup.epochs + params.unfreeze.epochs  # for the epoch lines

    def __call__(self, phase: PhaseParams, backup: Path, start: int, offset: int) -> None:
        """Epochs ``offset .. offset + phase.epochs`` of the run, resuming at ``start``."""
        end = offset + phase.epochs
        if start >= end:
            return
        name = "warmup" if phase is self.params.warmup else "unfreeze"
        dist, batch = self.dist, self.params.batch_size
        steps = len(self.train_data.split) // batch if dist.active else len(self.train_data)
        optimizer = make_optimizer(dist.scaled(phase, self.params.lr_scaling), steps,
                                   f"finetune.{name}")
        with dist.scope():
            compile_model(self.model, optimizer, self.classes, one_hot=one_hot(self.params),
                          label_smoothing=self.params.label_smoothing)
        dist.adopt(self.model, self.train_data)
        data, steps = dist.fit_data(self.train_data, start, end, batch)
        # The schedule runs over this phase's epochs, counted by the optimizer's own steps.
        self.model.fit(
            data, steps_per_epoch=steps, epochs=end, initial_epoch=start, shuffle=False,
            validation_data=eval_data(self.val_data) if self.val_data else None, verbose=0,
            callbacks=self.run.callbacks(self.monitor, self.val_data is not None, backup=backup,
                                         images=len(self.train_data.split), epochs=self.epochs),
        )
