"""The model zoo: architectures by name, each a function ``build(input_shape, classes)``.

Importing this package imports Keras; stages import it only when they need a model.
"""

from __future__ import annotations

from collections.abc import Callable

import keras

from pipeline.models.lenet import lenet
from pipeline.models.minivggnet import minivggnet
from pipeline.models.shallownet import shallownet

Builder = Callable[..., keras.Model]

REGISTRY: dict[str, Builder] = {
    "shallownet": shallownet,
    "lenet": lenet,
    "minivggnet": minivggnet,
}


def build(name: str, input_shape: tuple[int, int, int], classes: int) -> keras.Model:
    """Build the architecture registered as ``name``."""
    try:
        builder = REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {sorted(REGISTRY)}") from None
    return builder(input_shape=input_shape, classes=classes)
