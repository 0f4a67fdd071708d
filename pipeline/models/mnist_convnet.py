"""The Keras example "Simple MNIST convnet" (keras.io/examples/vision/mnist_convnet). 28x28x1."""

from __future__ import annotations

import keras
from keras import layers

from pipeline.models.blocks import DEFAULT_KNOBS, Knobs, classifier, conv


def mnist_convnet(
    input_shape: tuple[int, int, int], classes: int, knobs: Knobs = DEFAULT_KNOBS
) -> keras.Model:
    """CONV(32, 3x3) => POOL => CONV(64, 3x3) => POOL => FLATTEN => DROP(.5) => SOFTMAX.

    As published it uses valid padding and Keras's default initializer; with
    ``initializer: glorot_uniform`` (and the other knobs at their defaults) it is the example.
    """
    inputs = keras.Input(input_shape)
    x = inputs
    for filters in (32, 64):
        x = conv(x, filters, 3, knobs, padding="valid")
        x = layers.MaxPooling2D(2)(x)
    x = layers.Dropout(knobs.drop(0.5))(layers.Flatten()(x))
    return keras.Model(inputs, classifier(x, classes, knobs), name="mnist_convnet")
