"""Optimizers and learning-rate schedules from params.

Schedules are Keras ``LearningRateSchedule`` objects of the optimizer's step count. They are
saved with the optimizer, and resuming restores the step, so the rate picks up where it was.
"""

from __future__ import annotations

from typing import Any

import keras

from pipeline.config import ParamsError, PhaseParams, ScheduleParams, SrcnnParams, TrainParams


@keras.saving.register_keras_serializable(package="cvpipe")
class StepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """``lr * factor ** floor(step / (every * steps_per_epoch))``, after a linear warm-up."""

    def __init__(self, lr: float, factor: float, every_steps: int, warmup_steps: int = 0):
        self.lr, self.factor, self.every_steps, self.warmup_steps = lr, factor, every_steps, warmup_steps

    def __call__(self, step):
        ops = keras.ops
        step = ops.cast(step, "float32")
        rate = self.lr * ops.power(self.factor, ops.floor(step / self.every_steps))
        return _warm(rate, step, self.lr, self.warmup_steps)

    def get_config(self) -> dict:
        return {"lr": self.lr, "factor": self.factor, "every_steps": self.every_steps,
                "warmup_steps": self.warmup_steps}


@keras.saving.register_keras_serializable(package="cvpipe")
class Warmup(keras.optimizers.schedules.LearningRateSchedule):
    """A linear warm-up from 0 to ``lr`` over ``warmup_steps``, then ``after`` (shifted)."""

    def __init__(self, lr: float, warmup_steps: int, after):
        self.lr, self.warmup_steps = lr, warmup_steps
        self.after = (keras.optimizers.schedules.deserialize(after) if isinstance(after, dict)
                      else after)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        later = self.after(keras.ops.maximum(step - self.warmup_steps, 0.0))
        return _warm(later, step, self.lr, self.warmup_steps)

    def get_config(self) -> dict:
        return {"lr": self.lr, "warmup_steps": self.warmup_steps,
                "after": keras.optimizers.schedules.serialize(self.after)}


def _warm(rate, step, lr: float, warmup_steps: int):
    if not warmup_steps:
        return rate
    ops = keras.ops
    return ops.where(step < warmup_steps, lr * (step + 1.0) / warmup_steps, rate)


Rate = float | keras.optimizers.schedules.LearningRateSchedule


def learning_rate(params: TrainParams | PhaseParams | SrcnnParams, steps_per_epoch: int) -> Rate:
    """The rate (or schedule) for ``params.schedule`` over ``params.epochs`` epochs."""
    s: ScheduleParams = params.schedule
    warmup = s.warmup_epochs * steps_per_epoch
    decay_steps = max(1, (params.epochs - s.warmup_epochs) * steps_per_epoch)
    schedules = keras.optimizers.schedules
    if s.kind == "step":
        return StepDecay(params.lr, s.factor, s.every * steps_per_epoch, warmup)
    if s.kind == "polynomial":
        after = schedules.PolynomialDecay(params.lr, decay_steps, s.end_lr, power=s.power)
    elif s.kind == "cosine":
        after = schedules.CosineDecay(params.lr, decay_steps, alpha=s.end_lr / params.lr)
    elif warmup:
        after = schedules.PolynomialDecay(params.lr, 1, params.lr)  # constant after warm-up
    else:
        return params.lr
    return Warmup(params.lr, warmup, after) if warmup else after


def optimizer_named(name: str, lr: Any, momentum: float = 0.9, nesterov: bool = False,
                    weight_decay: float | None = None, **options: Any) -> keras.optimizers.Optimizer:
    """A Keras optimizer by its params name (sgd, adagrad, adadelta, rmsprop, adam, nadam, adamw).

    ``weight_decay`` applies to adamw; ``None`` keeps Keras's default. ``options`` are arguments
    every Keras optimizer takes (``clipnorm``, ``use_ema``, ``gradient_accumulation_steps``...).
    """
    if name == "sgd":
        return keras.optimizers.SGD(lr, momentum=momentum, nesterov=nesterov, **options)
    if name == "adamw" and weight_decay is not None:
        return keras.optimizers.AdamW(lr, weight_decay=weight_decay, **options)
    kinds = {"adagrad": keras.optimizers.Adagrad, "adadelta": keras.optimizers.Adadelta,
             "rmsprop": keras.optimizers.RMSprop, "adam": keras.optimizers.Adam,
             "nadam": keras.optimizers.Nadam, "adamw": keras.optimizers.AdamW}
    if name not in kinds:
        raise ValueError(f"unknown optimizer {name!r}; known: sgd, {', '.join(kinds)}")
    return kinds[name](lr, **options)


def optimizer_options(params: TrainParams | PhaseParams) -> dict[str, Any]:
    """The Keras optimizer arguments of the clipping, EMA and accumulation knobs that are on."""
    options: dict[str, Any] = {"clipnorm": params.clipnorm, "clipvalue": params.clipvalue}
    if params.ema:
        options.update(use_ema=True, ema_momentum=params.ema_momentum)
    if params.accumulate_steps > 1:
        options["gradient_accumulation_steps"] = params.accumulate_steps
    return {key: value for key, value in options.items() if value is not None}


def make_optimizer(params: TrainParams | PhaseParams, steps_per_epoch: int,
                   section: str | None = None) -> keras.optimizers.Optimizer:
    """The optimizer named in params, with its schedule, clipping, EMA and accumulation.

    With ``accumulate_steps`` the schedule still counts batches (Keras's ``iterations``), so it
    ends where it would without accumulation. Accumulating over more batches than an epoch has
    is allowed (updates span epochs, a note says so); over more than the whole run has, no
    update would ever happen: a :class:`~pipeline.config.ParamsError` naming
    ``<section>.accumulate_steps`` (default: ``train``, or ``finetune.<phase>`` for a phase).
    """
    section = section or ("train" if isinstance(params, TrainParams) else "finetune.<phase>")
    total = params.epochs * steps_per_epoch
    if params.accumulate_steps > total:
        raise ParamsError([f"{section}.accumulate_steps: {params.accumulate_steps} batches per "
                           f"update, but the run has {total} ({params.epochs} epochs of "
                           f"{steps_per_epoch}): no update would happen"])
    if params.accumulate_steps > steps_per_epoch:
        print(f"note: {section}.accumulate_steps {params.accumulate_steps} > {steps_per_epoch} "
              "batches per epoch: each update spans epochs")
    return optimizer_named(params.optimizer, learning_rate(params, steps_per_epoch),
                           params.momentum, params.nesterov, params.weight_decay,
                           **optimizer_options(params))


def rate_at(optimizer: keras.optimizers.Optimizer) -> float:
    """The optimizer's current learning rate as a float."""
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))
