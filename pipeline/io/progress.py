"""Progress bars on stderr for every long loop, all alike; tqdm does the work.

A bar is drawn only where a person watches and only for a loop worth watching: on a terminal
(tqdm's ``disable=None`` turns it off when stderr is not a TTY, so DVC logs and CI stay free of
``\\r`` frames) and once the loop has run for :data:`DELAY_S` seconds (a quick loop never
shows one). It is cleared when the loop ends; the stage's own summary line follows.
``CVPIPE_PROGRESS=1`` draws bars anywhere, at once, and keeps each one's last state (a log
shows what ran, how far and how fast); ``0`` never draws them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any

from tqdm import tqdm

#: Seconds a loop runs before its bar appears.
DELAY_S = 1.0

#: Environment variable: ``1`` draws and keeps every bar, also off a terminal; ``0`` draws none.
VARIABLE = "CVPIPE_PROGRESS"


def progress(iterable: Iterable | None = None, desc: str = "", total: int | None = None,
             unit: str = "img", file: Any = None, enabled: bool = True) -> tqdm:
    """A tqdm bar over ``iterable`` (or one to ``update`` by hand, with ``total``) on stderr;
    none at all when not ``enabled``."""
    forced = os.environ.get(VARIABLE, "").strip()
    disable = True if not enabled else {"1": False, "0": True}.get(forced)
    return tqdm(iterable, desc=desc, total=total, unit=unit, file=file or sys.stderr,
                disable=disable, delay=0 if forced == "1" else DELAY_S, mininterval=0.5,
                dynamic_ncols=True, leave=forced == "1")


def predict_bar(desc: str, images: int, batch_size: int):
    """A Keras callback drawing a :func:`progress` bar over the ``images`` that ``model.predict``
    takes in batches of ``batch_size``: ``model.predict(data, verbose=0, callbacks=[bar])``."""
    import keras

    class _Bar(keras.callbacks.Callback):
        def on_predict_begin(self, logs=None):
            self.bar = progress(desc=desc, total=images)

        def on_predict_batch_end(self, batch, logs=None):
            self.bar.update(min(batch_size, images - self.bar.n))

        def on_predict_end(self, logs=None):
            self.bar.close()

    return _Bar()
