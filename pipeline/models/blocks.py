"""Layers every architecture shares, built with the knobs from ``train.arch``."""

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

    def units(self, n: int) -> int:
        """``n`` filters or units scaled by ``width`` (at least 1)."""
        return max(1, round(n * self.width))

    def reg(self, default: float = 0.0) -> keras.regularizers.Regularizer | None:
        value = self.l2 if self.l2 is not None else default
        return keras.regularizers.L2(value) if value else None

    def drop(self, default: float) -> float:
        return self.dropout if self.dropout is not None else default

    def bn(self, default: bool) -> bool:
        return self.batch_norm if self.batch_norm is not None else default


def act(x, knobs: Knobs):
    return layers.Activation(knobs.activation)(x)


def conv(x, filters: int, kernel: int | tuple[int, int], knobs: Knobs, *, strides: int = 1,
         padding: str = "same", l2: float = 0.0, bn: bool = False, activation: bool = True,
         scale: bool = True):
    """CONV (=> BN) (=> ACT); ``filters`` is scaled by the width knob when ``scale``."""
    x = layers.Conv2D(knobs.units(filters) if scale else filters, kernel, strides=strides,
                      padding=padding, kernel_initializer=knobs.initializer,
                      kernel_regularizer=knobs.reg(l2), use_bias=not knobs.bn(bn))(x)
    if knobs.bn(bn):
        x = layers.BatchNormalization()(x)
    return act(x, knobs) if activation else x


def dense(x, units: int, knobs: Knobs, *, l2: float = 0.0, bn: bool = False):
    """FC (=> BN) => ACT."""
    x = layers.Dense(knobs.units(units), kernel_initializer=knobs.initializer,
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
