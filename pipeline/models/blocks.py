"""Layers every architecture shares, built with the knobs from ``train.arch``.

Keras does the work; :class:`Maxout` is the one layer of our own (Keras has none).
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers


@dataclass(frozen=True)
class Knobs:
    """What params may change in any architecture; ``None`` means the architecture's default."""

    width: float = 1.0
    activation: str = "relu"
    initializer: str = "he_normal"
    l2: float | None = None
    dropout: float | None = None
    batch_norm: bool | None = None
    leaky_slope: float = 0.2
    elu_alpha: float = 1.0
    maxout_pieces: int = 2

    def units(self, n: int) -> int:
        """``n`` filters or units scaled by ``width`` (at least 1)."""
        return max(1, round(n * self.width))

    def pieces(self) -> int:
        """How many outputs the layer before an activation computes per unit (maxout: its
        pieces; every other activation: 1)."""
        return self.maxout_pieces if self.activation == "maxout" else 1

    def reg(self, default: float = 0.0) -> keras.regularizers.Regularizer | None:
        value = self.l2 if self.l2 is not None else default
        return keras.regularizers.L2(value) if value else None

    def drop(self, default: float) -> float:
        return self.dropout if self.dropout is not None else default

    def bn(self, default: bool) -> bool:
        return self.batch_norm if self.batch_norm is not None else default


@keras.saving.register_keras_serializable(package="cvpipe")
class Maxout(layers.Layer):
    """Maxout (Goodfellow et al., 2013): the maximum over each run of ``pieces`` consecutive
    channels, ``(..., units * pieces)`` -> ``(..., units)``. The layer before it computes the
    pieces (:func:`conv` and :func:`dense` widen it by :meth:`Knobs.pieces`)."""

    def __init__(self, pieces: int, **kwargs):
        super().__init__(**kwargs)
        self.pieces = pieces

    def build(self, input_shape) -> None:
        if input_shape[-1] % self.pieces:
            raise ValueError(f"maxout: {input_shape[-1]} channels are not a multiple of "
                             f"{self.pieces} pieces")

    def call(self, x):
        *inner, channels = x.shape[1:]
        pieces = keras.ops.reshape(x, (-1, *inner, channels // self.pieces, self.pieces))
        return keras.ops.max(pieces, axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] // self.pieces)

    def get_config(self) -> dict:
        return {**super().get_config(), "pieces": self.pieces}


def act(x, knobs: Knobs):
    """The hidden activation ``knobs`` name, the one place the zoo builds it. At Keras's own
    leaky_relu slope (0.2) and elu alpha (1) it stays a plain ``Activation`` layer."""
    if knobs.activation == "maxout":
        return Maxout(knobs.maxout_pieces)(x)
    if knobs.activation == "leaky_relu" and knobs.leaky_slope != 0.2:
        return layers.LeakyReLU(negative_slope=knobs.leaky_slope)(x)
    if knobs.activation == "elu" and knobs.elu_alpha != 1.0:
        return layers.ELU(alpha=knobs.elu_alpha)(x)
    return layers.Activation(knobs.activation)(x)


def conv(x, filters: int, kernel: int | tuple[int, int], knobs: Knobs, *, strides: int = 1,
         padding: str = "same", l2: float = 0.0, bn: bool = False, activation: bool = True,
         scale: bool = True):
    """CONV (=> BN) (=> ACT); ``filters`` is scaled by the width knob when ``scale`` (and
    multiplied by maxout's pieces when the activation follows)."""
    filters = knobs.units(filters) if scale else filters
    x = layers.Conv2D(filters * (knobs.pieces() if activation else 1), kernel, strides=strides,
                      padding=padding, kernel_initializer=knobs.initializer,
                      kernel_regularizer=knobs.reg(l2), use_bias=not knobs.bn(bn))(x)
    if knobs.bn(bn):
        x = layers.BatchNormalization()(x)
    return act(x, knobs) if activation else x


def dense(x, units: int, knobs: Knobs, *, l2: float = 0.0, bn: bool = False):
    """FC (=> BN) => ACT (maxout: the FC layer computes its pieces)."""
    x = layers.Dense(knobs.units(units) * knobs.pieces(), kernel_initializer=knobs.initializer,
                     kernel_regularizer=knobs.reg(l2), use_bias=not knobs.bn(bn))(x)
    if knobs.bn(bn):
        x = layers.BatchNormalization()(x)
    return act(x, knobs)


def classifier(x, classes: int, knobs: Knobs, *, l2: float = 0.0):
    """The softmax head; kept in float32 under mixed precision."""
    return layers.Dense(classes, activation="softmax", dtype="float32",
                        kernel_regularizer=knobs.reg(l2), name="predictions")(x)


#: The architectures' own defaults (every knob unset).
DEFAULT_KNOBS = Knobs()
