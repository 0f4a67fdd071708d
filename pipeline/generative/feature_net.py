"""A pretrained ``keras.applications`` network as a feature extractor for DeepDream and style
transfer: float RGB pixels in 0..255 of any size in, the activations of named layers out.

The network's own ``preprocess_input`` is done inside the model with Keras ops, so gradients
flow back to the 0..255 pixels on every backend. The network is built by
:func:`pipeline.models.backbones.build` (weights from a file, the local Keras cache, or random;
never downloaded).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

from pipeline.config.reverse import NetParams
from pipeline.io.errors import InputError
from pipeline.models import BACKBONES, WITH_ALPHA

#: ``keras.applications`` module -> its ``preprocess_input`` mode (imagenet_utils): caffe (RGB
#: to BGR, minus the ImageNet mean), tf (to -1..1), torch (to 0..1, ImageNet mean and std), or
#: none (the network rescales its input itself).
PREPROCESS_MODE: dict[str, str] = {
    "vgg16": "caffe", "vgg19": "caffe", "resnet": "caffe",
    "resnet_v2": "tf", "inception_v3": "tf", "inception_resnet_v2": "tf", "xception": "tf",
    "mobilenet": "tf", "mobilenet_v2": "tf", "nasnet": "tf",
    "densenet": "torch",
    "mobilenet_v3": "none", "efficientnet": "none", "efficientnet_v2": "none", "convnext": "none",
}
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TORCH_MEAN, _TORCH_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

#: The smallest side each network takes (keras.applications' ``min_size``); 32 for the others.
MIN_SIDE: dict[str, int] = {"inceptionv3": 75, "inceptionresnetv2": 75, "xception": 71}

#: Layer classes whose outputs are offered as features: convolutions, activations, and the
#: merges that end a block (Inception's ``mixed*``, ResNet's adds, squeeze-excite products).
FEATURE_LAYERS = frozenset({
    "Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Activation", "ReLU", "LeakyReLU", "ELU",
    "PReLU", "Softmax", "Concatenate", "Add", "Multiply",
})


def min_side(name: str) -> int:
    """The smallest height and width network ``name`` accepts, in pixels."""
    return MIN_SIDE.get(name, 32)


def layer_names(model: keras.Model) -> list[str]:
    """The names of ``model``'s feature layers (:data:`FEATURE_LAYERS` with a 4-D output), in
    network order."""
    return [layer.name for layer in model.layers
            if type(layer).__name__ in FEATURE_LAYERS and len(layer.output.shape) == 4]


def preprocess(name: str, pixels: object) -> object:
    """Network ``name``'s ``preprocess_input`` as Keras ops on float RGB ``(..., 3)`` pixels in
    0..255 (a tensor, a symbolic ``keras.Input``, or an array): differentiable, no in-place
    updates."""
    mode = PREPROCESS_MODE[BACKBONES[name][1]]
    ops = keras.ops
    if mode == "tf":
        return ops.subtract(ops.divide(pixels, 127.5), 1.0)
    if mode == "torch":
        scaled = ops.subtract(ops.divide(pixels, 255.0), np.array(_TORCH_MEAN, np.float32))
        return ops.divide(scaled, np.array(_TORCH_STD, np.float32))
    if mode == "caffe":
        return ops.subtract(ops.flip(pixels, axis=-1), np.array(_CAFFE_MEAN_BGR, np.float32))
    return pixels


def _backbone(net: NetParams) -> keras.Model:
    """The network without top for any input size; :class:`InputError` naming the weights when
    they are missing or do not fit."""
    from pipeline.models import backbones

    weights = net.weights
    if weights not in {"none", "imagenet"} and not Path(weights).is_file():
        raise InputError(f"net.weights: no weights file {weights} (give a path to a "
                         f"{BACKBONES[net.name][0]} no-top file, imagenet, or none)")
    alpha = net.alpha if net.name in WITH_ALPHA else 1.0
    try:
        return backbones.build(net.name, weights, None, alpha)
    except InputError:
        raise
    except (ValueError, OSError) as exc:
        raise InputError(f"net.weights: cannot build {net.name} (alpha {alpha}) with weights "
                         f"{weights}: {exc}") from exc


def feature_model(net: NetParams, layers: Sequence[str]) -> keras.Model:
    """A ``keras.Model`` from float RGB images in 0..255, ``(batch, H, W, 3)`` of any size, to
    ``{layer name: activation}`` for ``layers`` (preprocessing inside).

    :class:`InputError` for a layer the network does not have (the message lists the valid
    names) or a missing weights file (:class:`pipeline.models.backbones.WeightsUnavailable` for
    ImageNet weights not in the Keras cache).
    """
    body = _backbone(net)
    valid = layer_names(body)
    wanted = list(dict.fromkeys(layers))
    unknown = [name for name in wanted if name not in valid]
    if unknown:
        raise InputError(
            f"{net.name} has no feature layer {', '.join(map(repr, unknown))}; valid layers: "
            f"{', '.join(valid)}")
    extractor = keras.Model(body.input, {name: body.get_layer(name).output for name in wanted},
                            name=f"{net.name}_features")
    pixels = keras.Input((None, None, 3), name="pixels")
    return keras.Model(pixels, extractor(preprocess(net.name, pixels)), name=f"{net.name}_dream")
