"""DeepDream: octave shapes, detail reinjection, gradient ascent, input gradients, the feature
network and its errors (MobileNet alpha 0.25 with random weights, 64-pixel images)."""

from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest
from PIL import Image

from pipeline.config.reverse import DreamParams, NetParams
from pipeline.generative.dream import dream, fit_longer_side, octave_shapes, reinject, resize
from pipeline.generative.feature_net import feature_model, preprocess
from pipeline.generative.gradients import compile_input_grad, value_and_input_grad
from pipeline.io.errors import InputError
from pipeline.models import BACKBONES, backbones

LAYERS = {"conv_pw_2_relu": 1.0, "conv_pw_3_relu": 0.5}


def photo(shape: tuple[int, int] = (48, 64), seed: int = 0) -> np.ndarray:
    """A smooth random RGB image (noise blurred by upscaling)."""
    small = np.random.default_rng(seed).integers(0, 256, (shape[0] // 4, shape[1] // 4, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((shape[1], shape[0]), Image.Resampling.BILINEAR))


def params(**overrides) -> DreamParams:
    return DreamParams(**{"layers": LAYERS, "max_side": 64, "octaves": 2, "octave_scale": 1.4,
                          "iterations": 2, "jitter": 0, "log_every": 1, **overrides})


def run(image: np.ndarray, p: DreamParams) -> tuple[np.ndarray, list[tuple[int, int, float, object]]]:
    calls: list[tuple[int, int, float, object]] = []
    out = dream(image, p, lambda o, s, loss, im: calls.append((o, s, loss, None if im is None else im.shape)))
    return out, calls


def test_octave_shapes_smallest_first() -> None:
    assert octave_shapes((100, 60), 3, 2.0) == [(25, 15), (50, 30), (100, 60)]
    assert octave_shapes((64, 48, 3), 2, 1.4) == [(46, 34), (64, 48)]
    assert octave_shapes((64, 48), 1, 1.4) == [(64, 48)]


def test_reinjection_restores_the_original_when_nothing_is_dreamed() -> None:
    original = photo().astype(np.float32)
    small = resize(original, (34, 46))
    restored = reinject(resize(small, (48, 64)), small, original)
    assert np.abs(restored - original).max() < 1e-3
    # The whole dream with a vanishing step returns the resized image, to the grey level.
    image = photo((72, 96))
    out, _ = run(image, params(step=1e-9))
    expected = fit_longer_side(image, 64)
    assert out.shape == expected.shape == (48, 64, 3)
    assert np.array_equal(out, expected)
    pillow = Image.fromarray(image).resize((64, 48), Image.Resampling.BICUBIC)
    assert np.array_equal(expected, np.asarray(pillow))


def test_gradient_ascent_raises_the_loss_at_every_step() -> None:
    image = photo()
    out, calls = run(image, params(iterations=4, log_every=3))
    assert [(o, s) for o, s, _, _ in calls] == [(o, s) for o in range(2) for s in range(4)]
    for octave in range(2):
        losses = [loss for o, _, loss, _ in calls if o == octave]
        assert all(b > a for a, b in itertools.pairwise(losses)), losses
    # Images every log_every steps and at each octave's end, at that octave's shape.
    assert [shape for _, _, _, shape in calls] == [None, None, (34, 46, 3), (34, 46, 3),
                                                   None, None, (48, 64, 3), (48, 64, 3)]
    assert np.abs(out.astype(int) - image).mean() > 1.0


def test_jitter_with_a_seed_repeats() -> None:
    image = photo(seed=1)
    first, _ = run(image, params(jitter=4, seed=3))
    again, _ = run(image, params(jitter=4, seed=3))
    other, _ = run(image, params(jitter=4, seed=4))
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_random_weights_are_drawn_from_the_seed() -> None:
    """With ``net.weights: none`` a fresh process (here: the network built anew) dreams the
    same picture for the same seed."""
    from pipeline.generative.dream import _loss_grad

    image = photo(seed=2)
    _loss_grad.cache_clear()
    first, _ = run(image, params(seed=5))
    _loss_grad.cache_clear()
    again, _ = run(image, params(seed=5))
    assert np.array_equal(first, again)


def test_max_loss_stops_each_octave_after_one_step() -> None:
    _, calls = run(photo(), params(iterations=3, max_loss=1e-30, log_every=5))
    assert [(o, s) for o, s, _, _ in calls] == [(0, 0), (1, 0)]
    assert all(shape is not None for *_, shape in calls)  # the octave's image is handed out
    _, calls = run(photo(), params(iterations=3, max_loss=1e9))
    assert len(calls) == 6


def test_an_image_too_small_for_the_octaves_is_an_input_error() -> None:
    with pytest.raises(InputError, match=r"20x20.*>= 32"):
        dream(photo((40, 40)), params(max_side=40, octaves=3, octave_scale=1.4))
    with pytest.raises(InputError, match="RGB"):
        dream(photo()[..., 0], params())


def test_value_and_input_grad_matches_finite_differences() -> None:
    x = np.random.default_rng(0).normal(size=(1, 4, 5, 2)).astype(np.float32)

    def poly(t):
        return keras.ops.sum(keras.ops.sin(t) * t**2)

    value, grad = value_and_input_grad(poly, x)
    assert value == pytest.approx(float(np.sum(np.sin(x) * x**2)), rel=1e-5)
    np.testing.assert_allclose(grad, np.cos(x) * x**2 + 2 * x * np.sin(x), rtol=1e-4, atol=1e-5)

    inputs = keras.Input((None, None, 2))
    model = keras.Model(inputs, keras.layers.Conv2D(3, 3, activation="tanh")(inputs))

    def energy(t):
        return keras.ops.sum(keras.ops.square(model(t)))

    value, grad = value_and_input_grad(energy, x)
    eps, numeric = 1e-2, np.zeros_like(x, dtype=np.float64)
    for index in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[index] += eps
        down[index] -= eps
        numeric[index] = (value_and_input_grad(energy, up)[0]
                          - value_and_input_grad(energy, down)[0]) / (2 * eps)
    np.testing.assert_allclose(grad, numeric, rtol=2e-2, atol=2e-3)
    compiled = compile_input_grad(energy)
    for shape in [(1, 4, 5, 2), (1, 6, 3, 2), (1, 4, 5, 2)]:
        z = np.random.default_rng(1).normal(size=shape).astype(np.float32)
        v, g = compiled(z)
        v0, g0 = value_and_input_grad(energy, z)
        assert v == pytest.approx(v0, rel=1e-5) and g.shape == shape
        np.testing.assert_allclose(g, g0, rtol=1e-4, atol=1e-6)


def test_feature_model_takes_any_size_and_names_its_errors() -> None:
    model = feature_model(NetParams(), ["conv_pw_5_relu", "conv1_relu"])
    for h, w in [(64, 48), (32, 32)]:
        out = model(np.full((1, h, w, 3), 100.0, np.float32))
        assert set(out) == {"conv_pw_5_relu", "conv1_relu"}
        assert tuple(out["conv1_relu"].shape) == (1, h // 2, w // 2, 8)
    with pytest.raises(InputError) as caught:
        feature_model(NetParams(), ["conv_pw_5_rleu"])
    assert "'conv_pw_5_rleu'" in str(caught.value) and "conv_pw_5_relu," in str(caught.value)
    with pytest.raises(InputError, match=r"no weights file /nowhere/mobilenet\.h5"):
        feature_model(NetParams(weights="/nowhere/mobilenet.h5"), ["conv1_relu"])


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_in_graph_preprocessing_is_the_networks_own(name: str) -> None:
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 3, 4, 3)).astype(np.float32)
    ours = keras.ops.convert_to_numpy(preprocess(name, keras.ops.convert_to_tensor(pixels)))
    np.testing.assert_allclose(ours, backbones.preprocess_input(name, pixels), rtol=1e-5, atol=1e-4)
