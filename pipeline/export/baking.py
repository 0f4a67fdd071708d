"""The model with its preprocessing baked in: decoded uint8 images in, class probabilities out.

:class:`BakedPreprocessing` repeats :class:`~pipeline.train.preprocess.Preprocessor` (what the
train stage stored in ``preprocess.json``) in ``keras.ops``: centre crop, grey to RGB, resize,
then the backbone's own ``preprocess_input``, or GCN, mean subtraction, standardisation and
scaling. An export of
:func:`baked_model` needs none of our code, only an image decoded like the training images
(``export.json``'s ``decode``).
"""

from __future__ import annotations

import importlib
from typing import Any

import keras
from keras import ops

from pipeline.models import BACKBONES
from pipeline.train.preprocess import Preprocessor

#: The name of the exported graph's input.
INPUT_NAME = "images"


class BakedPreprocessing(keras.layers.Layer):
    """:class:`Preprocessor` as a layer, for uint8 ``(N, H, W, C)`` batches (test-time: the
    crop is the centre one)."""

    def __init__(self, preprocess: dict[str, Any], **kwargs: Any):
        super().__init__(**kwargs)
        self.preprocess = preprocess
        self.preprocessor = Preprocessor.from_dict(preprocess)

    def call(self, images: Any) -> Any:
        p = self.preprocessor
        x = ops.cast(images, "float32")
        if p.crop is not None:
            height, width = images.shape[1:3]
            top, left = (height - p.crop[0]) // 2, (width - p.crop[1]) // 2
            x = x[:, top:top + p.crop[0], left:left + p.crop[1], :]
        if p.rgb and x.shape[-1] == 1:
            x = ops.repeat(x, 3, axis=-1)
        if p.size is not None and tuple(x.shape[1:3]) != tuple(p.size):
            x = ops.clip(ops.image.resize(x, p.size), 0.0, 255.0)
        if p.backbone is not None:
            module = importlib.import_module(f"keras.applications.{BACKBONES[p.backbone][1]}")
            return module.preprocess_input(x)
        if p.gcn:
            centred = x - ops.mean(x, axis=(1, 2, 3), keepdims=True)
            spread = ops.sqrt(ops.mean(ops.square(centred), axis=(1, 2, 3), keepdims=True))
            x = centred / ops.maximum(spread, p.gcn_eps)
        if p.mean is not None:
            x = x - ops.convert_to_tensor(list(p.mean), "float32")
        if p.std is not None:
            x = x / ops.convert_to_tensor(list(p.std), "float32")
        if p.scale:
            x = x * (1.0 / 255.0)
        return x

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "preprocess": self.preprocess}


def baked_model(model: keras.Model, preprocessor: Preprocessor,
                image_shape: tuple[int, int, int]) -> keras.Model:
    """``model`` behind ``preprocessor``: takes uint8 images of ``image_shape`` (H, W, C, as
    stored), any batch size."""
    images = keras.Input(image_shape, dtype="uint8", name=INPUT_NAME)
    pixels = BakedPreprocessing(preprocessor.to_dict(), name="preprocess")(images)
    return keras.Model(images, model(pixels), name=f"{model.name}_baked")


def input_spec(image_shape: tuple[int, int, int]) -> keras.InputSpec:
    """The exported signature: a dynamic batch of uint8 images."""
    return keras.InputSpec(shape=(None, *image_shape), dtype="uint8", name=INPUT_NAME)
