"""LeNet as in the book: two CONV-POOL blocks and a 500-unit dense layer. Made for 28x28."""

from __future__ import annotations

import keras
from keras import layers

from pipeline.models.blocks import DEFAULT_KNOBS, Knobs, classifier, conv, dense


def lenet(input_shape: tuple[int, int, int], classes: int, knobs: Knobs = DEFAULT_KNOBS) -> keras.Model:
    """(CONV(20, 5x5) => ACT => POOL) => (CONV(50, 5x5) => ACT => POOL) => FC(500) => SOFTMAX."""
    inputs = keras.Input(input_shape)
    x = inputs
    for filters in (20, 50):
        x = conv(x, filters, 5, knobs)
        x = layers.MaxPooling2D(2)(x)
    x = dense(layers.Flatten()(x), 500, knobs)
    if knobs.drop(0.0):
        x = layers.Dropout(knobs.drop(0.0))(x)
    return keras.Model(inputs, classifier(x, classes, knobs), name="lenet")
