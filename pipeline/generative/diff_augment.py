"""DiffAugment (Zhao et al., 2020, "Differentiable Augmentation for Data-Efficient GAN Training",
NeurIPS, arXiv:2006.10738) for the DCGAN.

The same kind of random transformation is applied to the real and to the generated batch before
the discriminator sees them, in both networks' updates. The discriminator cannot memorise a small
training set, and the generator still gets its gradient through the transformation, so it does
not learn to draw augmented images. Our own ``keras.ops`` code, after the paper's reference
implementation: Keras's augmentation layers are preprocessing layers, not differentiable by
design. It runs on TensorFlow, JAX and torch. Images are in -1..1, ``(N, H, W, C)``:

- ``color``: brightness ``+ U(-0.5, 0.5)``, saturation ``* U(0, 2)`` around each pixel's channel
  mean, contrast ``* U(0.5, 1.5)`` around the image's mean. As in the paper there is no clipping,
  so values may leave -1..1. Saturation is skipped on 1-channel images, where it does nothing.
- ``translation``: an integer shift of up to ``translation`` x the side in each direction,
  filled with zeros (mid grey).
- ``cutout``: a square of ``cutout`` x the side set to zero, centred anywhere in the image
  (clipped at the borders).

The random numbers come in as uniforms ``u`` of shape ``(N, DRAWS)``, one fixed column per
number, so the caller decides where they come from. The GAN loader draws them per
``(seed, epoch, batch)``, the same way it draws its noise, so a resumed run repeats.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

OPS = ("color", "translation", "cutout")
#: Uniforms per image: brightness, saturation, contrast, shift y, shift x, cutout y, cutout x.
DRAWS = 7


def draws(key: Sequence[int], n: int) -> np.ndarray:
    """``(n, 2, DRAWS)`` float32 uniforms in [0, 1) from the integers ``key``: ``[:, 0]`` for the
    real batch, ``[:, 1]`` for the generated one."""
    return np.random.default_rng(list(key)).random((n, 2, DRAWS), dtype=np.float32)


def color(x: Any, u: Any) -> Any:
    """Random brightness, saturation (colour images only) and contrast per image."""
    ops = keras.ops
    u = ops.reshape(u, (-1, 1, 1, 1, DRAWS))
    x = x + (u[..., 0] - 0.5)
    if x.shape[-1] > 1:
        mean = ops.mean(x, axis=-1, keepdims=True)
        x = (x - mean) * (u[..., 1] * 2.0) + mean
    mean = ops.mean(x, axis=(1, 2, 3), keepdims=True)
    return (x - mean) * (u[..., 2] + 0.5) + mean


def _steps(u: Any, most: int) -> Any:
    """Integers uniform in ``-most..most`` from uniforms in [0, 1)."""
    ops = keras.ops
    return ops.minimum(ops.floor(u * (2 * most + 1)), 2 * most) - most


def translation(x: Any, u: Any, ratio: float = 0.125) -> Any:
    """Shift each image by whole pixels, up to ``ratio`` of its height and width; zero fill.

    The shift is a product with one-hot shift matrices, so gradients pass to the moved pixels.
    """
    ops = keras.ops
    _, h, w, _ = x.shape
    rows, cols = ops.arange(h, dtype="float32"), ops.arange(w, dtype="float32")
    dy = _steps(u[:, 3], int(h * ratio + 0.5))[:, None, None]
    dx = _steps(u[:, 4], int(w * ratio + 0.5))[:, None, None]
    # out[i] = x[i - d]: row i of the shift matrix picks source row i - d (none if outside).
    shift_y = ops.cast(ops.equal(rows[None, None, :], rows[None, :, None] - dy), x.dtype)
    shift_x = ops.cast(ops.equal(cols[None, None, :], cols[None, :, None] - dx), x.dtype)
    x = ops.einsum("bij,bjwc->biwc", shift_y, x)
    return ops.einsum("bkw,biwc->bikc", shift_x, x)


def _band(u: Any, side: int, length: int) -> Any:
    """``(N, side)`` 1 inside a band of ``length`` centred at a random place, as the paper's."""
    ops = keras.ops
    centre = ops.floor(u * (side + 1 - length % 2))
    start = ops.minimum(centre, side - length % 2) - length // 2
    index = ops.arange(side, dtype="float32")[None, :]
    return ops.cast((index >= start[:, None]) & (index < start[:, None] + length), "float32")


def cutout(x: Any, u: Any, ratio: float = 0.5) -> Any:
    """Zero a ``ratio`` x side rectangle of each image, centred anywhere (clipped at borders)."""
    ops = keras.ops
    _, h, w, _ = x.shape
    band_y = _band(u[:, 5], h, int(h * ratio + 0.5))
    band_x = _band(u[:, 6], w, int(w * ratio + 0.5))
    keep = 1.0 - band_y[:, :, None] * band_x[:, None, :]
    return x * ops.cast(keep[..., None], x.dtype)


@dataclass(frozen=True)
class DiffAugment:
    """The ops of ``policy`` (names from :data:`OPS`) in order, with the paper's strengths."""

    policy: tuple[str, ...]
    translation: float = 0.125
    cutout: float = 0.5

    def __post_init__(self) -> None:
        unknown = [op for op in self.policy if op not in OPS]
        if unknown:
            raise ValueError(f"unknown DiffAugment op(s) {unknown}; choose from {list(OPS)}")

    def __call__(self, images: Any, u: Any) -> Any:
        """``images`` transformed with the uniforms ``u`` ``(N, DRAWS)``; the input if no ops."""
        for op in self.policy:
            if op == "color":
                images = color(images, u)
            elif op == "translation":
                images = translation(images, u, self.translation)
            else:
                images = cutout(images, u, self.cutout)
        return images
