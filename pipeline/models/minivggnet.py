"""MiniVGGNet: two VGG blocks of 3x3 convolutions with batch norm and dropout. Made for 32x32-64x64."""

from __future__ import annotations

import keras
from keras import layers

from pipeline.models.blocks import DEFAULT_KNOBS, Knobs, classifier, conv, dense


def minivggnet(input_shape: tuple[int, int, int], classes: int, knobs: Knobs = DEFAULT_KNOBS) -> keras.Model:
    """((CONV => ACT => BN) x2 => POOL => DROP(.25)) x2 (32, 64 filters) => FC(512) => DROP(.5)."""
    inputs = keras.Input(input_shape)
    x = inputs
    for filters in (32, 64):
        for _ in range(2):
            x = conv(x, filters, 3, knobs, bn=True)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Dropout(0.25)(x)
    x = dense(layers.Flatten()(x), 512, knobs, bn=True)
    x = layers.Dropout(knobs.drop(0.5))(x)
    return keras.Model(inputs, classifier(x, classes, knobs), name="minivggnet")
