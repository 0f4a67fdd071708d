"""LeNet as in the book: two CONV-POOL blocks and a 500-unit dense layer. Made for 28x28."""

from __future__ import annotations

import keras
from keras import layers


def lenet(input_shape: tuple[int, int, int], classes: int) -> keras.Model:
    """(CONV(20, 5x5) => RELU => POOL) => (CONV(50, 5x5) => RELU => POOL) => FC(500) => SOFTMAX."""
    inputs = keras.Input(input_shape)
    x = layers.Conv2D(20, 5, padding="same", activation="relu")(inputs)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(50, 5, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(500, activation="relu")(x)
    outputs = layers.Dense(classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="lenet")
