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
