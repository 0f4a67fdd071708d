"""Grad-CAM (Selvaraju et al., 2017): where a convolutional network looked to score a class.

The class score's gradient with respect to a layer's activations, averaged over the map, weighs
that layer's channels; their weighted sum through a ReLU is the heatmap. Keras builds the two
halves of the network (the input to the layer; the layer to the score) from its functional
graph, through nested models such as a ``keras.applications`` backbone inside a fine-tuned
model. The gradient is :mod:`pipeline.generative.gradients`' (TensorFlow, JAX or torch).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np

from pipeline.generative.gradients import value_and_input_grad
from pipeline.io.errors import InputError

#: Joins a nested model's name and its layer's: ``mobilenet_0.25_32/conv_pw_11_relu``.
SEPARATOR = "/"


def _is_model(layer: keras.layers.Layer) -> bool:
    return isinstance(layer, keras.Model) and hasattr(layer, "layers")


def _rank(layer: keras.layers.Layer) -> int:
    """Dimensions of the layer's (single) output; 0 for none or several."""
    try:
        output = layer.output
    except (AttributeError, ValueError):  # never called
        return 0
    return len(output.shape) if hasattr(output, "shape") else 0


#: Layers that move or mask activations without computing features: never picked by
#: :func:`find_layer` (they may still be named in ``explain.layer``).
NOT_FEATURES = ("ZeroPadding2D", "Cropping2D", "Dropout", "SpatialDropout2D", "GaussianNoise",
                "GaussianDropout", "AlphaDropout")


def candidate_layers(model: keras.Model, prefix: str = "") -> list[tuple[str, tuple, str]]:
    """``(name, output shape, class name)`` of every layer with a 4-D output, in network order;
    a nested model contributes its own layers, named ``model/layer``."""
    out: list[tuple[str, tuple, str]] = []
    for layer in model.layers:
        if _is_model(layer):
            out.extend(candidate_layers(layer, f"{prefix}{layer.name}{SEPARATOR}"))
        elif not isinstance(layer, keras.layers.InputLayer) and _rank(layer) == 4:
            out.append((prefix + layer.name, tuple(layer.output.shape), type(layer).__name__))
    return out


def find_layer(model: keras.Model) -> str:
    """The last layer with a 4-D output larger than 1x1 (a 1x1 map cannot say where), padding
    and dropout aside; the global pooling or flatten after it makes the later outputs 2-D."""
    layers = candidate_layers(model)
    spatial = [name for name, shape, kind in layers
               if (shape[1] or 2) * (shape[2] or 2) > 1 and kind not in NOT_FEATURES]
    if not spatial:
        raise InputError(f"explain.layer: {model.name} has no layer with a 4-D output larger "
                         "than 1x1, so Grad-CAM has no map to weigh")
    return spatial[-1]


def check_layer(model: keras.Model, name: str) -> None:
    """:class:`InputError` (exit 2) naming the valid layers when ``name`` is not one of them."""
    valid = [layer for layer, _, _ in candidate_layers(model)]
    if name not in valid:
        raise InputError(f"explain.layer: {model.name} has no layer {name!r} with a 4-D output; "
                         f"valid layers: {', '.join(valid)}")


def _graph_nodes(model: keras.Model) -> dict[int, Any]:
    """The calls (Keras nodes) that make up ``model``'s graph, by id, walked back from its
    outputs. A layer may have other calls (a loaded ``Sequential`` is traced more than once),
    so its tensors are looked up here, not through ``layer.output``. Keras has no public API
    for this: it reads ``KerasTensor._keras_history`` and ``Operation._inbound_nodes``."""
    nodes: dict[int, Any] = {}
    todo = list(model.outputs)
    while todo:
        operation, index, _ = todo.pop()._keras_history
        node = operation._inbound_nodes[index]
        if id(node) not in nodes:
            nodes[id(node)] = node
            todo.extend(node.input_tensors)
    return nodes


def _node(model: keras.Model, layer: keras.layers.Layer) -> Any:
    """``layer``'s call inside ``model``'s graph (its input and output tensors there)."""
    graph = _graph_nodes(model)
    nodes = [n for n in layer._inbound_nodes if id(n) in graph]
    if len(nodes) != 1:
        raise ValueError(f"{layer.name} is called {len(nodes)} times in {model.name}; Grad-CAM "
                         "needs a layer called once")
    return nodes[0]


def _part(inputs: Any, outputs: Any) -> keras.Model | None:
    """The graph from ``inputs`` to ``outputs`` as a model; None when they are the same tensor."""
    if inputs is outputs or (isinstance(inputs, list) and len(inputs) == 1 and inputs[0] is outputs):
        return None
    try:
        return keras.Model(inputs, outputs)
    except ValueError as exc:
        raise ValueError(f"the network after the explained layer reads more than that layer's "
                         f"output (a skip connection around it?): {exc}") from exc


def _single(tensors: Any) -> Any:
    tensors = tensors if isinstance(tensors, list | tuple) else [tensors]
    if len(tensors) != 1:
        raise ValueError(f"Grad-CAM needs one input and one output, got {len(tensors)}")
    return tensors[0]


def _split(model: keras.Model, path: Sequence[str], top: Any
           ) -> tuple[list[keras.Model], list[keras.Model]]:
    """Models chained from ``model``'s input to the layer at ``path`` (front) and from there to
    ``top``, a tensor of ``model`` (back); nested models are split recursively."""
    layer = model.get_layer(path[0])
    start = _single(model.inputs)
    node = _node(model, layer)
    entry, exit_ = _single(node.input_tensors), _single(node.output_tensors)
    if len(path) == 1:
        front, back = _part(start, exit_), _part(exit_, top)
        return [m for m in (front,) if m], [m for m in (back,) if m]
    inner_front, inner_back = _split(layer, path[1:], _single(layer.outputs))
    before, after = _part(start, entry), _part(exit_, top)
    return ([m for m in (before,) if m] + inner_front), (inner_back + [m for m in (after,) if m])


def _score_head(model: keras.Model) -> tuple[Any, Callable[[Any], Any]]:
    """The tensor the class scores are computed from and how: the final softmax's input and the
    logits (Grad-CAM's pre-softmax score) when the model ends in one, else its output as is."""
    output = _single(model.outputs)
    last = output._keras_history[0]
    if getattr(getattr(last, "activation", None), "__name__", "") != "softmax":
        return output, lambda h: h
    before = _single(_node(model, last).input_tensors)
    if isinstance(last, keras.layers.Dense):
        def logits(h: Any) -> Any:
            z = keras.ops.matmul(keras.ops.cast(h, last.kernel.dtype), last.kernel)
            return z + last.bias if last.use_bias else z
        return before, logits
    if isinstance(last, keras.layers.Activation):
        return before, lambda h: h
    return output, lambda h: h


class GradCAM:
    """Grad-CAM heatmaps of ``model`` at ``layer`` (None: :func:`find_layer`; else checked by
    :func:`check_layer`), for inputs exactly as the model takes them."""

    def __init__(self, model: keras.Model, layer: str | None = None):
        if layer is None:
            layer = find_layer(model)
        else:
            check_layer(model, layer)
        self.model, self.layer = model, layer
        top, self._scores = _score_head(model)
        self._front, self._back = _split(model, layer.split(SEPARATOR), top)

    def activations(self, x: np.ndarray) -> np.ndarray:
        """The layer's activations for the batch ``x``, float32 ``(N, h, w, channels)``."""
        out: Any = np.asarray(x, np.float32)
        for part in self._front:
            out = part(out, training=False)
        return keras.ops.convert_to_numpy(out).astype(np.float32)

    def _score(self, a: Any, onehot: Any) -> Any:
        for part in self._back:
            a = part(a, training=False)
        scores = keras.ops.cast(self._scores(a), "float32")
        return keras.ops.sum(scores * onehot)

    def heatmaps(self, x: np.ndarray, classes: Sequence[int]) -> np.ndarray:
        """One heatmap per image of ``x`` for its class in ``classes``: float32 ``(N, h, w)``
        at the layer's resolution, each scaled to a maximum of 1 (all 0 where no location
        raised the score)."""
        a = self.activations(x)
        onehot = np.zeros((len(a), _single(self.model.outputs).shape[-1]), np.float32)
        onehot[np.arange(len(a)), np.asarray(classes, int)] = 1.0
        _, grads = value_and_input_grad(self._score, a, onehot)
        weights = grads.mean(axis=(1, 2))
        cams = np.maximum(np.einsum("nhwk,nk->nhw", a, weights), 0.0)
        peaks = cams.reshape(len(cams), -1).max(axis=1)[:, None, None]
        scaled = np.divide(cams, peaks, out=np.zeros_like(cams), where=peaks > 0)
        return scaled.astype(np.float32)


def upsample(maps: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Heatmaps ``(N, h, w)`` resized (bilinear, Pillow) to ``shape`` ``(H, W)``, in 0..1."""
    from PIL import Image

    height, width = shape
    out = [np.asarray(Image.fromarray(m.astype(np.float32), "F").resize(
        (width, height), Image.Resampling.BILINEAR)) for m in maps]
    return np.clip(np.stack(out) if out else np.zeros((0, height, width)), 0.0, 1.0)
