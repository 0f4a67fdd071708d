"""ShallowNet: one 3x3 convolution and a softmax. Any input size; 32x32 in the book."""

from __future__ import annotations

import keras
from keras import layers

from pipeline.models.blocks import DEFAULT_KNOBS, Knobs, classifier, conv


def shallownet(input_shape: tuple[int, int, int], classes: int, knobs: Knobs = DEFAULT_KNOBS) -> keras.Model:
    """INPUT => CONV(32, 3x3) => ACT => FC => SOFTMAX."""
    inputs = keras.Input(input_shape)
    x = conv(inputs, 32, 3, knobs)
    x = layers.Flatten()(x)
    if knobs.drop(0.0):
        x = layers.Dropout(knobs.drop(0.0))(x)
    return keras.Model(inputs, classifier(x, classes, knobs), name="shallownet")
