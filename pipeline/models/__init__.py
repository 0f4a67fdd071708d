"""The model zoo: architectures by name, each ``build(input_shape, classes, knobs)``.

| name | made for | notes |
| --- | --- | --- |
| shallownet | any, 32x32 in the book | one CONV layer |
| lenet | 28x28 | two CONV-POOL blocks, FC(500) |
| minivggnet | 32x32-64x64 | VGG blocks with BN and dropout |
| mnist_convnet | 28x28x1 | the Keras "Simple MNIST convnet" example |
| alexnet | 227x227x3 | BN + dropout + L2 2e-4, as in the book |
| minigooglenet | 32x32 | CIFAR-style inception/downsample modules |
| deepergooglenet | 64x64 | Tiny-ImageNet GoogLeNet, L2 5e-4 |
| resnet | 32x32 (stem cifar) or 64x64 (stem tiny) | pre-activation bottlenecks, L2 1e-4 |

Importing this package imports Keras; stages import it only when they need a model.
"""

from __future__ import annotations

import keras

from pipeline.models.alexnet import alexnet
from pipeline.models.blocks import Knobs
from pipeline.models.googlenet import deepergooglenet, minigooglenet
from pipeline.models.lenet import lenet
from pipeline.models.minivggnet import minivggnet
from pipeline.models.mnist_convnet import mnist_convnet
from pipeline.models.resnet import resnet
from pipeline.models.shallownet import shallownet

REGISTRY = {
    "shallownet": shallownet,
    "lenet": lenet,
    "minivggnet": minivggnet,
    "mnist_convnet": mnist_convnet,
    "alexnet": alexnet,
    "minigooglenet": minigooglenet,
    "deepergooglenet": deepergooglenet,
    "resnet": resnet,
}

__all__ = ["REGISTRY", "Knobs", "build"]


def build(name: str, input_shape: tuple[int, int, int], classes: int, arch=None) -> keras.Model:
    """Build the architecture registered as ``name``; ``arch`` is a ``train.arch`` section."""
    try:
        builder = REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {sorted(REGISTRY)}") from None
    if arch is None:
        return builder(input_shape, classes)
    knobs = Knobs(arch.width, arch.activation, arch.initializer, arch.l2, arch.dropout,
                  arch.batch_norm)
    if name == "resnet":
        return resnet(input_shape, classes, knobs, stages=arch.stages, filters=arch.filters,
                      stem=arch.stem)
    return builder(input_shape, classes, knobs)
