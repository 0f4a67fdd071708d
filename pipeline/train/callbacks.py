"""Callbacks of every training run: the dvclive logger that also draws the curves PNG."""

from __future__ import annotations

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
