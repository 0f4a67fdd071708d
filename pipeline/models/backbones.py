"""Pretrained ``keras.applications`` backbones by name, their ``preprocess_input``, and weights
that never download.

``weights`` is ``imagenet`` (only from Keras's local cache: a missing file is an error that names
the file to fetch and where to put it, never a download), a path to a weights file, or ``none``.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pipeline.io.errors import InputError
from pipeline.models import BACKBONES, WITH_ALPHA


class WeightsUnavailable(InputError, RuntimeError):
    """ImageNet weights were asked for but are not on this machine (``backbone.weights``)."""


@contextlib.contextmanager
def _no_downloads() -> Iterator[None]:
    """Make Keras's weight fetcher use its cache only: a missing file raises at once.

    ``keras.applications`` fetch weights through ``file_utils.get_file``; that function is
    swapped for the duration of the call (Keras offers no offline switch).
    """
    from keras.src.backend.config import keras_home
    from keras.src.utils import file_utils

    fetch = file_utils.get_file

    def cached_only(fname=None, origin=None, *args, cache_subdir="datasets", **kwargs):
        name = fname or os.path.basename(origin or "")
        homes = [Path(keras_home()).expanduser(), Path("/tmp/.keras")]
        if not any((home / cache_subdir / name).is_file() for home in homes):
            raise WeightsUnavailable(
                f"ImageNet weights {name} are not in the Keras cache ({homes[0] / cache_subdir}) "
                f"and cvpipe never downloads. Fetch {origin} on a machine with internet and set "
                "backbone.weights to the file's path (or copy it into that cache folder)."
            )
        return fetch(fname, origin, *args, cache_subdir=cache_subdir, **kwargs)

    file_utils.get_file = cached_only
    try:
        yield
    finally:
        file_utils.get_file = fetch


def build(name: str, weights: str, size: tuple[int, int] | None, alpha: float = 1.0):
    """The backbone (a ``keras.Model``) without its top, for ``size`` (height, width) RGB
    inputs, or any size (``(None, None, 3)`` inputs) if ``size`` is None, with the weights
    asked for."""
    import keras

    constructor, _, _ = BACKBONES[name]
    kwargs = {"alpha": alpha} if name in WITH_ALPHA else {}
    chosen = None if weights == "none" else weights
    with _no_downloads():
        return getattr(keras.applications, constructor)(
            include_top=False, weights=chosen, input_shape=(*(size or (None, None)), 3), **kwargs
        )


def preprocess_input(name: str, batch: np.ndarray) -> np.ndarray:
    """The backbone's own ``preprocess_input`` on float RGB pixels in 0..255 (a copy)."""
    import keras

    module = importlib.import_module(f"keras.applications.{BACKBONES[name][1]}")
    out = module.preprocess_input(np.array(batch, dtype=np.float32))
    return np.asarray(keras.ops.convert_to_numpy(out), dtype=np.float32)
