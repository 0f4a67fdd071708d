"""MiniVGGNet: two VGG blocks of 3x3 convolutions with batch norm and dropout. Made for 32x32-64x64."""

from __future__ import annotations

import keras
from keras import layers


def minivggnet(input_shape: tuple[int, int, int], classes: int) -> keras.Model:
    """((CONV => RELU => BN) x2 => POOL => DROPOUT) x2 (32, 64 filters) => FC(512) => SOFTMAX."""
    inputs = keras.Input(input_shape)
    x = inputs
    for filters in (32, 64):
        for _ in range(2):
            x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
            x = layers.BatchNormalization()(x)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Dropout(0.25)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(512, activation="relu")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="minivggnet")
