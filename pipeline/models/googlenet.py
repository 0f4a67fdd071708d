"""MiniGoogLeNet (CIFAR, 32x32) and DeeperGoogLeNet (Tiny ImageNet, 64x64), as in the book."""

from __future__ import annotations

import keras
from keras import layers

from pipeline.models.blocks import DEFAULT_KNOBS, Knobs, classifier, conv


def _mini_inception(x, k1: int, k3: int, knobs: Knobs):
    return layers.concatenate([conv(x, k1, 1, knobs, bn=True), conv(x, k3, 3, knobs, bn=True)])


def _mini_downsample(x, k: int, knobs: Knobs):
    return layers.concatenate([conv(x, k, 3, knobs, strides=2, padding="valid", bn=True),
                               layers.MaxPooling2D(3, strides=2)(x)])


def minigooglenet(
    input_shape: tuple[int, int, int], classes: int, knobs: Knobs = DEFAULT_KNOBS
) -> keras.Model:
    """CONV(96) => 2 inception => down => 4 inception => down => 2 inception => GAP => DROP(.5)."""
    inputs = keras.Input(input_shape)
    x = conv(inputs, 96, 3, knobs, bn=True)
    x = _mini_inception(x, 32, 32, knobs)
    x = _mini_inception(x, 32, 48, knobs)
    x = _mini_downsample(x, 80, knobs)
    for k1, k3 in ((112, 48), (96, 64), (80, 80), (48, 96)):
        x = _mini_inception(x, k1, k3, knobs)
    x = _mini_downsample(x, 96, knobs)
    x = _mini_inception(x, 176, 160, knobs)
    x = _mini_inception(x, 176, 160, knobs)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(knobs.drop(0.5))(x)
    return keras.Model(inputs, classifier(x, classes, knobs), name="minigooglenet")


L2 = 0.0005


def _inception(x, n1: int, n3r: int, n3: int, n5r: int, n5: int, proj: int, knobs: Knobs):
    branches = [
        conv(x, n1, 1, knobs, l2=L2, bn=True),
        conv(conv(x, n3r, 1, knobs, l2=L2, bn=True), n3, 3, knobs, l2=L2, bn=True),
        conv(conv(x, n5r, 1, knobs, l2=L2, bn=True), n5, 5, knobs, l2=L2, bn=True),
        conv(layers.MaxPooling2D(3, strides=1, padding="same")(x), proj, 1, knobs, l2=L2, bn=True),
    ]
    return layers.concatenate(branches)


def deepergooglenet(input_shape: tuple[int, int, int], classes: int,
                    knobs: Knobs = DEFAULT_KNOBS) -> keras.Model:
    """CONV(64, 5x5) => POOL => CONV(64, 1x1) => CONV(192, 3x3) => POOL => inception 3a-3b =>
    POOL => inception 4a-4e => POOL => GAP => DROP(.4) => SOFTMAX."""
    inputs = keras.Input(input_shape)
    x = conv(inputs, 64, 5, knobs, l2=L2, bn=True)
    x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
    x = conv(x, 64, 1, knobs, l2=L2, bn=True)
    x = conv(x, 192, 3, knobs, l2=L2, bn=True)
    x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
    x = _inception(x, 64, 96, 128, 16, 32, 32, knobs)
    x = _inception(x, 128, 128, 192, 32, 96, 64, knobs)
    x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
    for spec in ((192, 96, 208, 16, 48, 64), (160, 112, 224, 24, 64, 64),
                 (128, 128, 256, 24, 64, 64), (112, 144, 288, 32, 64, 64),
                 (256, 160, 320, 32, 128, 128)):
        x = _inception(x, *spec, knobs)
    x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(knobs.drop(0.4))(x)
    return keras.Model(inputs, classifier(x, classes, knobs, l2=L2), name="deepergooglenet")
