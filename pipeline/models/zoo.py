"""Building an architecture of the zoo by its registered name (Keras)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import keras

from pipeline.models import ARCHITECTURES


def builder(name: str) -> Any:
    """The function that builds architecture ``name`` (imports its module, and so Keras)."""
    try:
        module = ARCHITECTURES[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {sorted(ARCHITECTURES)}") from None
    return getattr(importlib.import_module(f"pipeline.models.{module}"), name)


def build(name: str, input_shape: tuple[int, int, int], classes: int, arch: Any = None) -> keras.Model:
    """Build the architecture registered as ``name``; ``arch`` is a ``train.arch`` section."""
    make = builder(name)
    if arch is None:
        return make(input_shape, classes)
    from pipeline.models.blocks import Knobs

    knobs = Knobs(arch.width, arch.activation, arch.initializer, arch.l2, arch.dropout,
                  arch.batch_norm, arch.leaky_slope, arch.elu_alpha, arch.maxout_pieces)
    if name == "resnet":
        return make(input_shape, classes, knobs, stages=arch.stages, filters=arch.filters,
                    stem=arch.stem)
    return make(input_shape, classes, knobs)


def load(path: str | Path) -> keras.Model:
    """A saved ``.keras`` model, not compiled, with the zoo's own layers
    (:class:`~pipeline.models.blocks.Maxout`) known to Keras: load every trained model this way."""
    from pipeline.models import blocks  # noqa: F401  (registers them)

    return keras.models.load_model(path, compile=False)
