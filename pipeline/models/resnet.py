"""ResNet with pre-activation bottleneck modules, CIFAR / Tiny-ImageNet style, as in the book."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import keras
from keras import layers

from pipeline.models.blocks import DEFAULT_KNOBS, Knobs, act, classifier, conv

L2 = 0.0001


def _bn_act(x, knobs: Knobs):
    return act(layers.BatchNormalization(epsilon=2e-5, momentum=0.9)(x), knobs)


def residual(x, filters: int, strides: int, reduce: bool, knobs: Knobs):
    """BN-ACT-CONV(K/4, 1x1) => BN-ACT-CONV(K/4, 3x3, stride) => BN-ACT-CONV(K, 1x1), plus the
    shortcut (a strided 1x1 convolution when ``reduce``)."""
    plain = replace(knobs, batch_norm=False)
    pre = _bn_act(x, knobs)
    y = conv(pre, filters // 4, 1, plain, l2=L2, activation=False, scale=False)
    y = conv(_bn_act(y, knobs), filters // 4, 3, plain, strides=strides, l2=L2, activation=False,
             scale=False)
    y = conv(_bn_act(y, knobs), filters, 1, plain, l2=L2, activation=False, scale=False)
    shortcut = conv(pre, filters, 1, plain, strides=strides, l2=L2, activation=False,
                    scale=False) if reduce else x
    return layers.add([y, shortcut])


def resnet(input_shape: tuple[int, int, int], classes: int, knobs: Knobs = DEFAULT_KNOBS, *,
           stages: Sequence[int] = (3, 3, 3), filters: Sequence[int] = (64, 64, 128, 256),
           stem: str = "cifar") -> keras.Model:
    """Stem, then ``len(stages)`` stages of residual modules (the first of each reduces
    resolution, except in stage one), BN-ACT, global average pooling, softmax."""
    if len(filters) != len(stages) + 1:
        raise ValueError(f"filters needs {len(stages) + 1} values, got {len(filters)}")
    if knobs.activation == "maxout":
        raise ValueError("resnet: maxout needs the layer before each activation to widen; the "
                         "pre-activation blocks have none")
    widths = [knobs.units(f) for f in filters]
    plain = replace(knobs, batch_norm=False)
    inputs = keras.Input(input_shape)
    x = layers.BatchNormalization(epsilon=2e-5, momentum=0.9)(inputs)
    if stem == "tiny":
        x = _bn_act(conv(x, widths[0], 5, plain, l2=L2, activation=False, scale=False), knobs)
        x = layers.ZeroPadding2D(1)(x)
        x = layers.MaxPooling2D(3, strides=2)(x)
    else:
        x = conv(x, widths[0], 3, plain, l2=L2, activation=False, scale=False)
    for i, count in enumerate(stages):
        x = residual(x, widths[i + 1], 1 if i == 0 else 2, True, knobs)
        for _ in range(count - 1):
            x = residual(x, widths[i + 1], 1, False, knobs)
    x = layers.GlobalAveragePooling2D()(_bn_act(x, knobs))
    if knobs.drop(0.0):
        x = layers.Dropout(knobs.drop(0.0))(x)
    return keras.Model(inputs, classifier(x, classes, knobs, l2=L2), name="resnet")
