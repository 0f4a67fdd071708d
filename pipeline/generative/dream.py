"""DeepDream (Mordvintsev et al., 2015): gradient ascent on an image's pixels so that chosen
layers of a pretrained network fire harder, octave by octave, small to large.

The loss is ``sum_l weight_l * mean(activation_l ** 2)`` over the layers of ``dream.layers``
(up to two activations along each border are left out, to spare the padding-affected edge: two
where the map is at least 7 wide, one where it is 4 to 6, none below). Each step rolls the
image by a random shift of at most ``jitter`` pixels (NumPy's ``Generator(seed)``), takes the
gradient of the loss with respect to the 0..255 pixels (:mod:`pipeline.generative.gradients`),
rolls it back, divides it by its mean absolute value (a zero gradient leaves the image as it
is) and adds ``step * 255`` times it: ``step`` is a fraction of the pixel range (0.01: a mean
change of 2.55 grey levels a step). Pixels are clipped to 0..255 only in the images handed
out, not between steps.

Octaves: the image is first resized (Pillow, bicubic) so its longer side is ``max_side``; the
ascent starts on it shrunk by ``octave_scale ** (octaves - 1)``. After each octave the result is
upscaled to the next shape and the detail that shrinking lost is added back, from the original
(:func:`reinject`). Resizing between octaves is Pillow's bicubic on float32 channels
(antialiased when shrinking).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
from PIL import Image

from pipeline.config.reverse import DreamParams, NetParams
from pipeline.generative.feature_net import feature_model, min_side
from pipeline.generative.gradients import InputGrad, compile_input_grad
from pipeline.io.errors import InputError

#: ``on_step(octave, step, loss, image)``: octave and step count from 0, the loss is at the image
#: before the step, the image (uint8 RGB at the octave's shape) is given every ``log_every``
#: steps and at an octave's last step, else None.
OnStep = Callable[[int, int, float, np.ndarray | None], None]


def octave_shapes(shape: tuple[int, ...], octaves: int, scale: float) -> list[tuple[int, int]]:
    """The ``(height, width)`` of each octave, smallest first: ``shape / scale ** i`` rounded,
    for ``i = octaves - 1 ... 0`` (the last is ``shape`` itself)."""
    h, w = shape[:2]
    return [(max(1, round(h / scale**i)), max(1, round(w / scale**i)))
            for i in range(octaves - 1, -1, -1)]


def resize(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A float ``(H, W, C)`` image resized to ``shape`` (height, width) as float32, channel by
    channel with Pillow's bicubic (mode F); unchanged (a float32 copy) if already that shape."""
    image = np.asarray(image, np.float32)
    if image.shape[:2] == tuple(shape):
        return image.copy()
    size = (shape[1], shape[0])
    channels = [np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c])).resize(
        size, Image.Resampling.BICUBIC)) for c in range(image.shape[2])]
    return np.stack(channels, axis=-1).astype(np.float32)


def reinject(dreamed_small_upscaled: np.ndarray, original_small: np.ndarray,
             original_next: np.ndarray) -> np.ndarray:
    """The dreamed image of an octave, upscaled to the next shape, plus the detail the original
    lost by shrinking to this octave: ``original_next - upscale(original_small)`` (float32)."""
    lost = np.asarray(original_next, np.float32) - resize(original_small, original_next.shape[:2])
    return np.asarray(dreamed_small_upscaled, np.float32) + lost


def fit_longer_side(image: np.ndarray, max_side: int) -> np.ndarray:
    """uint8 RGB resized (Pillow, bicubic) so that its longer side is ``max_side`` pixels."""
    h, w = image.shape[:2]
    scale = max_side / max(h, w)
    shape = (max(1, round(h * scale)), max(1, round(w * scale)))
    if shape == (h, w):
        return image
    return np.asarray(Image.fromarray(image).resize((shape[1], shape[0]), Image.Resampling.BICUBIC))


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float pixels rounded and clipped to uint8 0..255."""
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _border(side: int | None) -> int:
    return 0 if side is None else min(2, (side - 1) // 3)


def dream_loss(model, weights: dict[str, float]) -> Callable:
    """``loss(pixels)``: the weighted mean squared activations of ``model`` (a
    :func:`~pipeline.generative.feature_net.feature_model`) on a ``(1, H, W, 3)`` tensor, with
    the borders of large maps left out."""
    import keras

    ops = keras.ops

    def loss(pixels):
        features = model(pixels, training=False)
        total = 0.0
        for name, weight in weights.items():
            act = features[name]
            bh, bw = _border(act.shape[1]), _border(act.shape[2])
            act = act[:, bh:act.shape[1] - bh, bw:act.shape[2] - bw, :]
            total = total + weight * ops.mean(ops.square(act))
        return total

    return loss


@functools.lru_cache(maxsize=2)
def _loss_grad(name: str, weights: str, alpha: float, layers: tuple[tuple[str, float], ...],
               seed: int) -> InputGrad:
    """The compiled loss gradient of one network and layer choice, kept for the next call;
    random weights (``weights: none``) are drawn from ``seed``, so a run repeats."""
    import keras

    keras.utils.set_random_seed(seed)
    net = NetParams(name=name, weights=weights, alpha=alpha)
    model = feature_model(net, [layer for layer, _ in layers])
    return compile_input_grad(dream_loss(model, dict(layers)))


def check_size(shape: tuple[int, ...], p: DreamParams) -> list[tuple[int, int]]:
    """The octave shapes for an image of ``shape`` after the ``max_side`` resize;
    :class:`InputError` naming the sizes if the smallest is below what the network takes
    (:func:`pipeline.generative.feature_net.min_side`: 32 pixels, InceptionV3 75, Xception 71)."""
    shapes = octave_shapes(shape, p.octaves, p.octave_scale)
    smallest, need = shapes[0], min_side(p.net.name)
    if min(smallest) < need:
        raise InputError(
            f"dream: the image, resized to {shape[0]}x{shape[1]} (height x width, dream.max_side "
            f"{p.max_side}), is {smallest[0]}x{smallest[1]} at the smallest of {p.octaves} octaves "
            f"(dream.octave_scale {p.octave_scale}); {p.net.name} needs both sides >= {need} "
            "pixels: use fewer octaves, a smaller octave_scale or a larger max_side")
    return shapes


def dream(image: np.ndarray, params: DreamParams, on_step: OnStep | None = None) -> np.ndarray:
    """DeepDream on a uint8 RGB ``(H, W, 3)`` image; returns the dreamed uint8 image, its longer
    side ``params.max_side``.

    ``on_step`` (see :data:`OnStep`) hears every step's loss. An octave stops early after a step
    whose loss exceeded ``params.max_loss``. :class:`InputError` for an image that is not RGB,
    one too small for the octaves, an unknown layer or missing weights.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InputError(f"dream: expected a uint8 RGB image (H, W, 3), got {image.dtype} "
                         f"{image.shape}")
    original = fit_longer_side(image, params.max_side).astype(np.float32)
    shapes = check_size(original.shape, params)
    originals = [resize(original, shape) for shape in shapes]
    grad = _loss_grad(params.net.name, params.net.weights, params.net.alpha,
                      tuple(params.layers.items()), params.seed)
    rng = np.random.default_rng(params.seed)
    jitter = params.jitter
    pixels = originals[0]
    for octave, shape in enumerate(shapes):
        if octave:
            pixels = reinject(resize(pixels, shape), originals[octave - 1], originals[octave])
        for step in range(params.iterations):
            dy, dx = (int(v) for v in rng.integers(-jitter, jitter + 1, 2)) if jitter else (0, 0)
            loss, g = grad(np.roll(pixels, (dy, dx), axis=(0, 1))[None])
            g = np.roll(g[0], (-dy, -dx), axis=(0, 1))
            norm = float(np.mean(np.abs(g), dtype=np.float64))
            if norm > 0:  # no absolute epsilon: an untrained network's gradients can be ~1e-12
                pixels = pixels + (params.step * 255.0 / norm) * g
            stop = params.max_loss is not None and loss > params.max_loss
            if on_step is not None:
                last = stop or step == params.iterations - 1
                shown = to_uint8(pixels) if last or (step + 1) % params.log_every == 0 else None
                on_step(octave, step, loss, shown)
            if stop:
                break
    return to_uint8(pixels)
