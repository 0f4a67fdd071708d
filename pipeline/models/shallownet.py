"""ShallowNet: one 3x3 convolution and a softmax. Any input size; 32x32 in the book."""

from __future__ import annotations

import keras
from keras import layers


def shallownet(input_shape: tuple[int, int, int], classes: int) -> keras.Model:
    """INPUT => CONV(32, 3x3) => RELU => FC => SOFTMAX."""
    inputs = keras.Input(input_shape)
    x = layers.Conv2D(32, 3, padding="same", activation="relu")(inputs)
    x = layers.Flatten()(x)
    outputs = layers.Dense(classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="shallownet")
