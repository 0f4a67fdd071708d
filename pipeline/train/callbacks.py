"""Callbacks of every training run: the dvclive logger that also draws the curves PNG, and the
one line per epoch a person reads."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import keras

from pipeline.train.history import CLASSIFIER_PANELS, plot_curves
from pipeline.train.schedules import rate_at


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


def epoch_line(epoch: int, epochs: int, logs: dict[str, float], lr: float | None,
               images: int | None, train_s: float, total_s: float) -> str:
    """``epoch 3/8  loss 0.1605  accuracy 0.9449  val_loss 0.0996  ...  lr 0.05  1,234 img/s
    4.1 s``: ``epoch`` counted from 1, the training metrics (loss first), the validation ones,
    the learning rate, ``images`` over the training part's ``train_s`` seconds (validation
    left out) and the whole epoch's seconds."""
    def order(name: str) -> tuple[bool, bool, str]:
        bare = name.removeprefix("val_")
        return name.startswith("val_"), bare != "loss", bare

    names = sorted((n for n in logs if n != "learning_rate"), key=order)
    parts = [f"epoch {epoch}/{epochs}", *(f"{n} {float(logs[n]):.4f}" for n in names)]
    if lr is not None:
        parts.append(f"lr {lr:.4g}")
    if images:
        parts.append(f"{images / max(train_s, 1e-9):,.0f} img/s")
    parts.append(f"{total_s:.1f} s")
    return "  ".join(parts)


class EpochLine(keras.callbacks.Callback):
    """Prints :func:`epoch_line` to ``out`` (stdout) after every epoch, in place of Keras'
    ``verbose`` output (fit with ``verbose=0``).

    ``images``: training images per epoch (for the img/s figure); ``epochs``: the run's last
    epoch when it spans several ``fit`` calls (default: this fit's ``epochs``).
    """

    def __init__(self, images: int | None = None, epochs: int | None = None, out=None):
        super().__init__()
        self.images, self.epochs, self.out = images, epochs, out
        self._start = self._trained = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self._start = time.monotonic()
        self._trained = 0.0

    def on_test_begin(self, logs: dict[str, float] | None = None) -> None:
        if not self._trained:  # validation at the end of the epoch: training is over
            self._trained = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        now = time.monotonic()
        trained = (self._trained or now) - self._start
        optimizer = getattr(self.model, "optimizer", None)
        lr = rate_at(optimizer) if optimizer is not None else None
        epochs = self.epochs or self.params.get("epochs") or epoch + 1
        print(epoch_line(epoch + 1, epochs, logs or {}, lr, self.images, trained, now - self._start),
              file=self.out or sys.stdout, flush=True)


class EpochSeeds(keras.callbacks.Callback):
    """Sets every ``keras.random.SeedGenerator`` of the model (``Dropout``, ``GaussianNoise``,
    any random layer inside it) to a state derived from ``(seed, epoch)`` when an epoch begins.

    Within an epoch a generator advances one step per batch, so each batch's draws are a
    function of seed, epoch and batch. The generators' state is not in the weights that
    ``BackupAndRestore`` keeps, and a resumed run repeats its epoch from the start; without this
    it would draw from the state of a fresh process instead of the uninterrupted run's.
    Keras does the work: the states are the model's ``seed_generator_state`` variables, assigned
    before the epoch's first step (which every backend reads them at).
    """

    #: Tags this stream apart from the loader's crops (``(seed, epoch, batch)``), the DCGAN noise
    #: (``..., 1``) and the augmentation (``..., 2``).
    STREAM = 3

    def __init__(self, seed: int):
        super().__init__()
        self.seed = seed

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        import numpy as np

        states = [v for v in self.model.non_trainable_variables
                  if v.name == "seed_generator_state"]
        for i, state in enumerate(states):
            rng = np.random.default_rng([self.seed, epoch, i, self.STREAM])
            value = np.array([rng.integers(2**31 - 1), 0])
            state.assign(keras.ops.convert_to_tensor(value, dtype=state.dtype))
