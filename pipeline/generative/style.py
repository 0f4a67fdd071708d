"""Neural style transfer (Gatys, Ecker and Bethge, CVPR 2016): the pixels of one image are
optimised so that a pretrained network's activations match a content image at one layer and the
Gram matrices of a style image at several others, with a total-variation term for smoothness.

The losses are written with ``keras.ops`` (any backend); the network is
:func:`pipeline.generative.feature_net.feature_model`, its gradient w.r.t. the pixels comes from
:mod:`pipeline.generative.gradients`; Adam is Keras's Adam update written in numpy (a Keras
optimizer's ``apply`` cost a third of each step), L-BFGS is SciPy's ``L-BFGS-B`` with the pixel
range as bounds. Pixels are float
RGB in 0..255 throughout.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
from keras import ops

from pipeline.config.reverse import StylizeParams
from pipeline.io.errors import InputError

#: Exponent of the total-variation loss (as in Keras's style-transfer example).
TV_POWER = 1.25
#: Names of the loss terms, in the order they are reported.
TERMS = ("content", "style", "tv", "total")

StepCallback = Callable[[int, dict[str, float], "np.ndarray | None"], None]


def gram_matrix(features: Any) -> Any:
    """The Gram matrix ``F^T F`` of activations ``(H, W, C)`` or ``(1, H, W, C)``: ``(C, C)``.

    ``F`` is the activations reshaped to ``(H*W, C)``; the Gram matrix is not normalised (a sum
    over the ``H*W`` positions), :func:`style_loss` divides by the sizes.
    """
    x = ops.convert_to_tensor(features, dtype="float32")
    if len(x.shape) == 4:
        if x.shape[0] not in (1, None):
            raise ValueError(f"gram_matrix takes one image's activations, got a batch of {x.shape[0]}")
        x = x[0]
    if len(x.shape) != 3:
        raise ValueError(f"gram_matrix takes (H, W, C) or (1, H, W, C), got shape {tuple(x.shape)}")
    f = ops.reshape(x, (-1, x.shape[-1]))
    return ops.matmul(ops.transpose(f), f)


def style_loss(style_features: Any, generated_features: Any) -> Any:
    """``sum((G_style - G_generated)^2) / (4 C^2 (H W)^2)``: Gatys et al.'s per-layer style loss,
    with ``G`` the unnormalised :func:`gram_matrix` of ``(H, W, C)`` or ``(1, H, W, C)``
    activations (both of the same shape)."""
    shape = tuple(ops.shape(generated_features))[-3:]
    if tuple(ops.shape(style_features))[-3:] != shape:
        raise ValueError(f"style_loss: activations of shapes {tuple(ops.shape(style_features))} and "
                         f"{tuple(ops.shape(generated_features))} differ")
    h, w, c = shape
    diff = gram_matrix(style_features) - gram_matrix(generated_features)
    return ops.sum(ops.square(diff)) / (4.0 * float(c) ** 2 * float(h * w) ** 2)


def content_loss(base: Any, generated: Any) -> Any:
    """``sum((base - generated)^2)`` over all activations: a sum, not a mean, so it grows with
    the layer's size (as in Gatys et al., without their factor 1/2)."""
    return ops.sum(ops.square(ops.convert_to_tensor(generated, dtype="float32")
                              - ops.convert_to_tensor(base, dtype="float32")))


def total_variation_loss(image: Any) -> Any:
    """``sum(((x[i+1, j] - x[i, j])^2 + (x[i, j+1] - x[i, j])^2) ^ 1.25)`` of a ``(1, H, W, 3)``
    image, over the ``(H-1) x (W-1)`` pixels that have both neighbours and over each channel
    separately (the form of Keras's style-transfer example)."""
    x = ops.convert_to_tensor(image, dtype="float32")
    if len(x.shape) != 4:
        raise ValueError(f"total_variation_loss takes (1, H, W, C), got shape {tuple(x.shape)}")
    down = ops.square(x[:, 1:, :-1, :] - x[:, :-1, :-1, :])
    right = ops.square(x[:, :-1, 1:, :] - x[:, :-1, :-1, :])
    return ops.sum(ops.power(down + right, TV_POWER))


def _style_distance(target_gram: Any, generated_features: Any) -> Any:
    """:func:`style_loss` against a Gram matrix computed beforehand."""
    h, w, c = tuple(ops.shape(generated_features))[-3:]
    diff = target_gram - gram_matrix(generated_features)
    return ops.sum(ops.square(diff)) / (4.0 * float(c) ** 2 * float(h * w) ** 2)


def resized(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A uint8 ``(H, W, 3)`` image resized to ``size`` = ``(height, width)`` (Pillow, Lanczos),
    as float32 in 0..255."""
    from PIL import Image

    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"stylize takes uint8 RGB images (H, W, 3), got {image.dtype} {image.shape}")
    h, w = size
    pil = Image.fromarray(image, "RGB")
    if pil.size != (w, h):
        pil = pil.resize((w, h), Image.Resampling.LANCZOS)
    return np.asarray(pil, dtype=np.float32)


def keep_colors(result: np.ndarray, content: np.ndarray) -> np.ndarray:
    """``result``'s luminance with ``content``'s colours, as uint8 RGB: both go to YCbCr
    (scikit-image's ``rgb2ycbcr``, ITU-R BT.601), the result's ``Y`` is joined to the content's
    ``Cb`` and ``Cr`` and the whole brought back to RGB (``ycbcr2rgb``), clipped to 0..255.

    This is the luminance-only variant of Gatys et al., "Preserving color in neural artistic
    style transfer" (2016), applied to the result after the transfer.
    """
    from skimage.color import rgb2ycbcr, ycbcr2rgb

    luma = rgb2ycbcr(np.clip(result, 0, 255) / 255.0)[..., :1]
    chroma = rgb2ycbcr(np.asarray(content, np.float64) / 255.0)[..., 1:]
    rgb = ycbcr2rgb(np.concatenate([luma, chroma], axis=-1))
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def _checked_model(params: StylizeParams) -> keras.Model:
    """The feature network with the content layer and the style layers as its outputs
    (:class:`InputError` for a layer it lacks or an image size below its smallest); random
    weights (``net.weights: none``) are drawn with ``params.seed``."""
    from pipeline.generative.feature_net import feature_model, min_side

    smallest = min_side(params.net.name)
    if min(params.image_size) < smallest:
        raise InputError(f"stylize.image_size: {list(params.image_size)} is below {params.net.name}'s "
                         f"smallest side, {smallest} pixels")
    keras.utils.set_random_seed(params.seed)
    layers = list(dict.fromkeys([params.content_layer, *params.style_layers]))
    return feature_model(params.net, layers)


def stylize(
    content: np.ndarray,
    style: np.ndarray,
    params: StylizeParams,
    on_step: StepCallback | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Optimise an image with ``content``'s layout and ``style``'s textures (both uint8 RGB
    ``(H, W, 3)``, resized to ``params.image_size``); return it (uint8) and a record.

    Every layer's activations are first divided by their mean magnitude on the content image,
    so that the losses, and so the weights, do not depend on the network's activation scale.
    The loss is ``content_weight * content + style_weight * sum_l w_l style_l / sum_l w_l +
    tv_weight * tv`` (:func:`content_loss` at ``content_layer``, :func:`style_loss` at each of
    ``style_layers`` with its weight ``w_l``, :func:`total_variation_loss`), over float pixels
    in 0..255 that start at the content image or at uniform noise (``seed``, which also draws
    the network's weights when they are random). ``adam``:
    Adam at ``lr`` (Keras's defaults otherwise) on the pixels, clipped to 0..255 after each step; ``lbfgs``:
    SciPy's L-BFGS-B with 0..255 as bounds, ``iterations`` iterations at most (fewer if it
    converges). With ``preserve_colors`` every image handed out is :func:`keep_colors` of the
    result and the content.

    ``on_step(step, losses, image)`` is called after each step (1, 2, ...) with the losses of the
    image after that step (``content``, ``style``, ``tv``, ``total``) and the image itself (uint8)
    every ``log_every`` steps and at the last one, else ``None``. The record holds ``steps``
    (step 0, the start, and each step's losses), ``first`` and ``last`` (those of the start and
    of the result), ``iterations`` (steps run) and ``seconds_per_step`` (after the first
    evaluation, which also traces the graph).
    """
    from pipeline.generative.gradients import compile_input_grad

    size = tuple(params.image_size)
    base = resized(content, size)
    texture = resized(style, size)
    weights = {name: float(w) for name, w in params.style_layers.items()}
    weight_sum = sum(weights.values())
    if params.style_weight and weight_sum <= 0:
        raise InputError(f"stylize.style_layers: the weights {weights} sum to {weight_sum}, not > 0")
    model = _checked_model(params)

    def constant(x: Any) -> np.ndarray:
        return np.asarray(ops.convert_to_numpy(x), np.float32)

    content_out = model(base[None])
    # Each layer's activations are divided by their mean size on the content image: the losses
    # become independent of the network's activation scale (random weights shrink it about
    # tenfold per block, and networks differ), so the weights mean the same on any network.
    norms = {name: float(np.abs(constant(content_out[name])).mean()) or 1.0
             for name in {params.content_layer, *weights}}
    content_target = constant(content_out[params.content_layer]) / norms[params.content_layer]
    style_out = model(texture[None])
    style_grams = {name: constant(gram_matrix(style_out[name] / norms[name])) for name in weights}
    n = base.size
    h, w = size

    def total(packed: Any) -> Any:
        # packed = the pixels, flat, then the three loss weights: d total / d weights gives the
        # three loss terms out of the same pass as the pixels' gradient.
        image = ops.reshape(packed[:n], (1, h, w, 3))
        feats = model(image)
        terms = ops.stack([
            content_loss(content_target, feats[params.content_layer] / norms[params.content_layer]),
            sum(wl * _style_distance(style_grams[name], feats[name] / norms[name])
                for name, wl in weights.items()) / (weight_sum or 1.0),
            total_variation_loss(image),
        ])
        return ops.sum(packed[n:] * terms)

    grad_fn = compile_input_grad(total)
    loss_weights = np.array([params.content_weight, params.style_weight, params.tv_weight],
                            np.float32)

    def evaluate(x: np.ndarray) -> tuple[float, np.ndarray, dict[str, float]]:
        value, grad = grad_fn(np.concatenate([np.ravel(x).astype(np.float32), loss_weights]))
        c, s, tv = (float(v) for v in grad[n:])
        return value, grad[:n].reshape(h, w, 3), {"content": c, "style": s, "tv": tv, "total": value}

    def picture(x: np.ndarray) -> np.ndarray:
        if params.preserve_colors:
            return keep_colors(x, base)
        return np.clip(np.rint(x), 0, 255).astype(np.uint8)

    if params.init == "content":
        start = base.copy()
    else:
        start = np.random.default_rng(params.seed).uniform(0.0, 255.0, base.shape).astype(np.float32)
    run = _adam if params.optimizer == "adam" else _lbfgs
    history: list[dict[str, float]] = []
    clock: list[float] = []  # when the start was evaluated (after tracing)

    def report(step: int, x: np.ndarray, losses: dict[str, float], last: bool) -> None:
        history.append({"step": step, **losses})
        if not step:
            clock.append(time.perf_counter())
        if step and on_step is not None:
            show = last or step % params.log_every == 0
            on_step(step, dict(losses), picture(x) if show else None)

    result = run(start, evaluate, params, report)
    seconds = time.perf_counter() - clock[0]
    steps = len(history) - 1
    record = {
        "optimizer": params.optimizer,
        "iterations": steps,
        "steps": history,
        "first": {k: history[0][k] for k in TERMS},
        "last": {k: history[-1][k] for k in TERMS},
        "seconds_per_step": seconds / max(steps, 1),
    }
    return picture(result), record


Evaluate = Callable[[np.ndarray], tuple[float, np.ndarray, dict[str, float]]]
Report = Callable[[int, np.ndarray, dict[str, float], bool], None]


#: Adam's moment decay rates and epsilon (Kingma and Ba's defaults, as keras.optimizers.Adam's).
ADAM = (0.9, 0.999, 1e-7)


def _adam(start: np.ndarray, evaluate: Evaluate, params: StylizeParams, report: Report) -> np.ndarray:
    """``iterations`` Adam steps on the pixels, clipped to 0..255 after each. The update is
    Keras's Adam written in numpy: a Keras optimizer's own ``apply`` cost a third of each
    step at 128 px (``bench/reverse.py``), on an update of a few array operations."""
    beta_1, beta_2, epsilon = ADAM
    x = start.astype(np.float32)
    m, v = np.zeros_like(x), np.zeros_like(x)
    for step in range(params.iterations + 1):
        _, grad, losses = evaluate(x)
        report(step, x, losses, step == params.iterations)
        if step == params.iterations:
            break
        t = step + 1
        m = beta_1 * m + (1 - beta_1) * grad
        v = beta_2 * v + (1 - beta_2) * grad * grad
        rate = params.lr * np.sqrt(1 - beta_2**t) / (1 - beta_1**t)
        x = np.clip(x - rate * m / (np.sqrt(v) + epsilon), 0.0, 255.0).astype(np.float32)
    return x


def _lbfgs(start: np.ndarray, evaluate: Evaluate, params: StylizeParams, report: Report) -> np.ndarray:
    """SciPy's L-BFGS-B on the pixels (float64), bounded to 0..255, ``iterations`` at most."""
    from scipy.optimize import Bounds, minimize

    shape = start.shape
    seen: dict[str, Any] = {}

    def fun(z: np.ndarray) -> tuple[float, np.ndarray]:
        # the last point is kept: SciPy's callback, and its first call, ask for it again
        if "z" not in seen or not np.array_equal(seen["z"], z):
            value, grad, losses = evaluate(z.reshape(shape))
            seen.update(z=z.copy(), value=float(value), grad=grad.ravel().astype(np.float64),
                        losses=losses)
        return seen["value"], seen["grad"]

    def losses_at(z: np.ndarray) -> dict[str, float]:
        fun(z)
        return seen["losses"]

    x0 = start.ravel().astype(np.float64)
    report(0, start, losses_at(x0), False)
    # Each iterate is reported when the next one comes (or SciPy stops), so that the last one,
    # which SciPy does not flag, is reported as the last, with the result's pixels.
    pending: list[tuple[int, np.ndarray, dict[str, float]]] = []

    def callback(intermediate_result: Any) -> None:
        z = np.array(intermediate_result.x)
        step = pending[0][0] + 1 if pending else 1
        if pending:
            report(pending[0][0], pending[0][1].reshape(shape), pending[0][2], False)
        pending[:] = [(step, z, losses_at(z))]

    result = minimize(fun, x0, jac=True, method="L-BFGS-B", bounds=Bounds(0.0, 255.0),
                      callback=callback, options={"maxiter": params.iterations, "gtol": 0.0})
    final = np.asarray(result.x, np.float64)
    if pending:
        report(pending[0][0], final.reshape(shape), losses_at(final), True)
    return final.astype(np.float32).reshape(shape)
