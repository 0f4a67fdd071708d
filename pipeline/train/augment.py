"""Data augmentation from params, as Keras preprocessing layers (random only in training)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.config import AugmentParams

if TYPE_CHECKING:
    import keras


def build(params: AugmentParams, seed: int) -> keras.Sequential | None:
    """A ``keras.Sequential`` of the enabled augmentations, or ``None`` when none is enabled.

    The layers expect pixel values in 0-255 (``RandomContrast`` clips to that range), so the
    loader applies them before mean subtraction and scaling.
    """
    if not params.enabled:
        return None
    import keras

    layers: list[keras.layers.Layer] = []
    if params.flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if params.rotation:
        layers.append(keras.layers.RandomRotation(params.rotation, fill_mode="reflect", seed=seed))
    if params.shift:
        layers.append(keras.layers.RandomTranslation(params.shift, params.shift,
                                                     fill_mode="reflect", seed=seed))
    if params.zoom:
        layers.append(keras.layers.RandomZoom(params.zoom, fill_mode="reflect", seed=seed))
    if params.contrast:
        layers.append(keras.layers.RandomContrast(params.contrast, value_range=(0, 255), seed=seed))
    return keras.Sequential(layers, name="augment")
