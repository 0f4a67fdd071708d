"""AlexNet in the book's Keras form (batch norm, dropout, L2 2e-4). Made for 227x227x3."""

from __future__ import annotations

import keras
from keras import layers

from pipeline.models.blocks import DEFAULT_KNOBS, Knobs, classifier, conv, dense

L2 = 0.0002


def alexnet(input_shape: tuple[int, int, int], classes: int, knobs: Knobs = DEFAULT_KNOBS) -> keras.Model:
    """CONV(96, 11x11/4) => POOL => CONV(256, 5x5) => POOL => CONV(384) x2 => CONV(256) => POOL
    => FC(4096) x2 => SOFTMAX, with BN after every layer and dropout after each block."""
    inputs = keras.Input(input_shape)
    x = conv(inputs, 96, 11, knobs, strides=4, l2=L2, bn=True)
    x = layers.MaxPooling2D(3, strides=2)(x)
    x = layers.Dropout(0.25)(x)
    x = conv(x, 256, 5, knobs, l2=L2, bn=True)
    x = layers.MaxPooling2D(3, strides=2)(x)
    x = layers.Dropout(0.25)(x)
    for filters in (384, 384, 256):
        x = conv(x, filters, 3, knobs, l2=L2, bn=True)
    x = layers.MaxPooling2D(3, strides=2)(x)
    x = layers.Dropout(0.25)(x)
    x = layers.Flatten()(x)
    for _ in range(2):
        x = dense(x, 4096, knobs, l2=L2, bn=True)
        x = layers.Dropout(knobs.drop(0.5))(x)
    return keras.Model(inputs, classifier(x, classes, knobs, l2=L2), name="alexnet")
