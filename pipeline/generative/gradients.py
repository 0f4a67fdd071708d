"""Gradients on every Keras backend: of a scalar with respect to an input image (or any input
tensor, such as a layer's activations for Grad-CAM), and of losses with respect to weights. The
only per-backend code of the generative models and of :mod:`pipeline.explain`.

- TensorFlow: ``tf.GradientTape`` (``watch`` on the input), compiled with ``tf.function``
  (traced once per input shape).
- JAX: ``jax.value_and_grad``, compiled with ``jax.jit``; a Keras model called inside is read as
  constants (its weights are not differentiated nor changed).
- torch: ``torch.autograd.grad`` on a leaf tensor that requires a gradient.

Any other backend raises :class:`NotImplementedError` naming it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import keras
import numpy as np

#: ``grad(x, *constants) -> (value, gradient)`` on float32 numpy arrays.
InputGrad = Callable[..., tuple[float, np.ndarray]]


def _unsupported(what: str) -> NotImplementedError:
    return NotImplementedError(
        f"{what} has no code for the {keras.backend.backend()} backend (tensorflow, jax, torch)")


def compile_input_grad(fn: Callable[..., Any], jit: bool = True) -> InputGrad:
    """A reusable ``grad(x, *constants) -> (fn(x, *constants), d fn / d x)`` for a scalar-valued
    ``fn`` of a tensor.

    ``x`` and the gradient are float32 numpy arrays of one shape; the value is a float.
    ``constants`` (none by default) are further float32 arrays ``fn`` reads but that are not
    differentiated, e.g. a one-hot mask of the class to explain. With ``jit`` (the default) the
    function is traced once per input shape (``tf.function``, ``jax.jit``; torch runs eagerly),
    so build it once and call it for every step. An input ``fn`` does not depend on gets a zero
    gradient.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        def tf_step(x: Any, *constants: Any) -> tuple[Any, Any]:
            with tf.GradientTape() as tape:
                tape.watch(x)
                value = fn(x, *constants)
            return value, tape.gradient(value, x, unconnected_gradients=tf.UnconnectedGradients.ZERO)

        step = tf.function(tf_step) if jit else tf_step

        def tf_grad(x: np.ndarray, *constants: np.ndarray) -> tuple[float, np.ndarray]:
            value, grad = step(*(tf.convert_to_tensor(np.asarray(a, np.float32))
                                 for a in (x, *constants)))
            return float(value), np.asarray(grad, np.float32)

        return tf_grad
    if backend == "jax":
        import jax

        jax_step = jax.value_and_grad(fn)
        if jit:
            jax_step = jax.jit(jax_step)

        def jax_grad(x: np.ndarray, *constants: np.ndarray) -> tuple[float, np.ndarray]:
            value, grad = jax_step(*(jax.numpy.asarray(np.asarray(a, np.float32))
                                     for a in (x, *constants)))
            return float(value), np.asarray(grad, np.float32)

        return jax_grad
    if backend == "torch":
        import torch

        def torch_grad(x: np.ndarray, *constants: np.ndarray) -> tuple[float, np.ndarray]:
            leaf = keras.ops.convert_to_tensor(np.asarray(x, np.float32)).detach().requires_grad_(True)
            value = fn(leaf, *(keras.ops.convert_to_tensor(np.asarray(a, np.float32))
                               for a in constants))
            (grad,) = torch.autograd.grad(value, [leaf], allow_unused=True)
            grad = torch.zeros_like(leaf) if grad is None else grad
            return float(value.detach().cpu()), grad.detach().cpu().numpy().astype(np.float32)

        return torch_grad
    raise _unsupported("the input gradient")


def value_and_input_grad(fn: Callable[..., Any], x: np.ndarray,
                         *constants: np.ndarray) -> tuple[float, np.ndarray]:
    """``fn(x, *constants)`` and its gradient with respect to ``x`` (float32 numpy in and out),
    run once without compiling; for many steps use :func:`compile_input_grad`."""
    return compile_input_grad(fn, jit=False)(x, *constants)


def loss_gradients(
    losses_fn: Callable[[], Sequence[Any]], variable_groups: Sequence[Sequence[Any]]
) -> tuple[list[Any], list[list[Any]]]:
    """Run ``losses_fn()`` and differentiate its value ``i`` with respect to the Keras
    variables of ``variable_groups[i]`` (values beyond the groups are returned, not
    differentiated): ``(values, [gradients of group 0, ...])``.

    TensorFlow (a persistent ``GradientTape``) and torch (``torch.autograd.grad``, the graph kept
    until the last group) only; the JAX backend trains through stateless calls and ``jax.vjp``
    instead. Apply the gradients inside :func:`no_grad`.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape(persistent=True) as tape:
            values = losses_fn()
        grads = [tape.gradient(values[i], list(group)) for i, group in enumerate(variable_groups)]
        return list(values), grads
    if backend == "torch":
        import torch

        values = losses_fn()
        last = len(variable_groups) - 1
        grads = [list(torch.autograd.grad(values[i], [v.value for v in group], retain_graph=i < last))
                 for i, group in enumerate(variable_groups)]
        return list(values), grads
    raise _unsupported("loss_gradients")


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """No gradient recording while weights are updated (``torch.no_grad`` on torch, nothing on
    the other backends)."""
    if keras.backend.backend() == "torch":
        import torch

        with torch.no_grad():
            yield
    else:
        yield
