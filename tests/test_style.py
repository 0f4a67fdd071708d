"""Style transfer: the losses against hand computations, and short real runs of stylize on a tiny
MobileNet with random weights."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from keras import ops  # noqa: E402

from pipeline.config.reverse import StylizeParams  # noqa: E402
from pipeline.generative.style import (  # noqa: E402
    content_loss,
    gram_matrix,
    keep_colors,
    resized,
    style_loss,
    stylize,
    total_variation_loss,
)
from pipeline.io.errors import InputError  # noqa: E402


def num(x) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(x), dtype=np.float64)


# --- losses ---------------------------------------------------------------------------------


def test_gram_matrix_is_f_transpose_f_of_the_positions():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(3, 4, 5)).astype(np.float32)
    f = features.reshape(12, 5).astype(np.float64)
    np.testing.assert_allclose(num(gram_matrix(features)), f.T @ f, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(num(gram_matrix(features[None])), f.T @ f, rtol=1e-5, atol=1e-5)
    # a hand-sized one: positions (1, 2) and (3, 4) -> [[1+9, 2+12], [2+12, 4+16]]
    np.testing.assert_allclose(num(gram_matrix(np.array([[[1, 2], [3, 4]]], np.float32))),
                               [[10, 14], [14, 20]])
    with pytest.raises(ValueError, match="batch"):
        gram_matrix(np.zeros((2, 3, 3, 4), np.float32))


def test_style_loss_zero_for_the_same_features_and_by_hand_otherwise():
    rng = np.random.default_rng(1)
    a = rng.random((1, 4, 4, 3)).astype(np.float32)
    assert float(num(style_loss(a, a))) == 0.0
    b = a + rng.random(a.shape).astype(np.float32)
    assert float(num(style_loss(a, b))) > 0.0
    # 1x2 positions, 2 channels: Gram of [[1, 0], [0, 1]] is I, of [[1, 1], [0, 0]] is all ones
    s = np.array([[[1, 0], [0, 1]]], np.float32)
    g = np.array([[[1, 1], [0, 0]]], np.float32)
    # (I - ones)^2 sums to 2; divided by 4 * C^2 * (HW)^2 = 4 * 4 * 4
    assert float(num(style_loss(s, g))) == pytest.approx(2 / 64)
    with pytest.raises(ValueError, match="differ"):
        style_loss(a, a[:, :2])


def test_content_loss_is_a_sum_of_squares():
    base = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    generated = np.array([[1.0, 0.0], [5.0, 4.0]], np.float32)
    assert float(num(content_loss(base, generated))) == pytest.approx(8.0)
    assert float(num(content_loss(base, base))) == 0.0


def test_total_variation_zero_on_a_constant_image_and_by_hand():
    assert float(num(total_variation_loss(np.full((1, 5, 6, 3), 77.0, np.float32)))) == 0.0
    # one channel shown, repeated: x = [[0, 1, 0], [2, 0, 0], [0, 0, 3]]
    x = np.array([[0, 1, 0], [2, 0, 0], [0, 0, 3]], np.float32)
    image = np.repeat(x[None, :, :, None], 3, axis=-1)
    # pixels (0,0): down 2, right 1 -> 5; (0,1): down -1, right -1 -> 2;
    # (1,0): down -2, right -2 -> 8; (1,1): down 0, right 0 -> 0
    expected = 3 * (5**1.25 + 2**1.25 + 8**1.25)
    assert float(num(total_variation_loss(image))) == pytest.approx(expected, rel=1e-5)


def test_keep_colors_takes_the_luminance_of_one_and_the_chroma_of_the_other():
    from skimage.color import rgb2ycbcr

    rng = np.random.default_rng(2)
    content = rng.integers(60, 200, (6, 7, 3)).astype(np.uint8)
    result = rng.uniform(60, 200, (6, 7, 3)).astype(np.float32)
    kept = keep_colors(result, content)
    assert kept.dtype == np.uint8 and kept.shape == content.shape
    ycc, content_ycc, result_ycc = (rgb2ycbcr(a) for a in (kept, content, result / 255.0))
    np.testing.assert_allclose(ycc[..., 1:], content_ycc[..., 1:], atol=1.0)
    np.testing.assert_allclose(ycc[..., 0], result_ycc[..., 0], atol=1.0)
    assert np.abs(ycc[..., 1:] - rgb2ycbcr(np.rint(result).astype(np.uint8))[..., 1:]).max() > 10


# --- stylize on a tiny random MobileNet -----------------------------------------------------

SIZE = (32, 40)
STYLE_LAYERS = {"conv_pw_1_relu": 1.0, "conv_pw_3_relu": 1.0, "conv_pw_5_relu": 0.5}


@pytest.fixture(scope="module")
def images() -> tuple[np.ndarray, np.ndarray]:
    """A smooth colour gradient as the content (not the network's size), stripes as the style."""
    yy, xx = np.mgrid[0:36, 0:44]
    content = np.stack([xx * 5, yy * 6, 255 - xx * 4], axis=-1).clip(0, 255).astype(np.uint8)
    stripes = np.where((np.arange(48) // 4) % 2 == 0, 230, 20)
    style = np.stack([np.tile(stripes, (48, 1)), np.tile(stripes[:, None], (1, 48)),
                      np.full((48, 48), 128)], axis=-1).astype(np.uint8)
    return content, style


def params(**changes) -> StylizeParams:
    values = {"image_size": SIZE, "style_layers": STYLE_LAYERS, "content_layer": "conv_pw_5_relu",
              "iterations": 6, "log_every": 4, **changes}
    return StylizeParams(**values)


@pytest.mark.parametrize(("optimizer", "iterations"), [("adam", 6), ("lbfgs", 14)])
def test_the_style_loss_falls_when_it_is_the_only_one(images, optimizer, iterations):
    # random weights: activations shrink about tenfold per block, hence the large style weight
    # (Adam's epsilon would swamp gradients of 1e-13)
    calls = []
    weight = 1e10
    image, record = stylize(*images, params(content_weight=0.0, tv_weight=0.0, style_weight=weight,
                                            optimizer=optimizer, lr=8.0, iterations=iterations),
                            on_step=lambda step, losses, im: calls.append((step, losses, im)))
    assert image.dtype == np.uint8 and image.shape == (*SIZE, 3)
    first, last = record["first"]["style"], record["last"]["style"]
    assert last < 0.5 * first, (first, last)
    steps = record["iterations"]
    assert steps == iterations if optimizer == "adam" else 1 <= steps <= iterations
    assert [c[0] for c in calls] == list(range(1, steps + 1))
    assert len(record["steps"]) == steps + 1 and record["steps"][-1]["style"] == last
    assert all(set(c[1]) == {"content", "style", "tv", "total"} for c in calls)
    assert all(c[1]["total"] == pytest.approx(weight * c[1]["style"], rel=1e-4) for c in calls)
    assert calls[-1][1]["content"] > 0 and calls[-1][1]["tv"] > 0  # reported, unweighted
    shown = [c[0] for c in calls if c[2] is not None]
    assert shown == sorted({*range(4, steps + 1, 4), steps})
    np.testing.assert_array_equal(calls[-1][2], image)
    assert record["seconds_per_step"] > 0


def test_content_alone_pulls_noise_towards_the_content(images):
    content, style = images
    image, record = stylize(content, style, params(content_weight=1.0, style_weight=0.0,
                                                   tv_weight=0.0, init="noise", lr=20.0,
                                                   iterations=8))
    assert record["last"]["content"] < 0.5 * record["first"]["content"]
    assert image.shape == (*SIZE, 3)


def test_preserve_colors_keeps_the_content_chroma(images):
    from skimage.color import rgb2ycbcr

    content, style = images
    image, _ = stylize(content, style, params(preserve_colors=True, style_weight=1e4, lr=20.0,
                                              iterations=4))
    base = resized(content, SIZE) / 255.0
    assert np.abs(rgb2ycbcr(image)[..., 0] - rgb2ycbcr(base)[..., 0]).max() > 3  # it did change
    inside = np.all((image > 0) & (image < 255), axis=-1)  # pixels not clipped
    assert inside.mean() > 0.5
    chroma = np.abs(rgb2ycbcr(image)[..., 1:] - rgb2ycbcr(base)[..., 1:])
    assert chroma[inside].max() <= 1.5


@pytest.mark.parametrize(("change", "named"), [
    ({"content_layer": "conv_pw_99_relu"}, "conv_pw_99_relu"),
    ({"style_layers": {"conv_pw_1_relu": 1.0, "no_such_layer": 1.0}}, "no_such_layer"),
])
def test_an_unknown_layer_is_named(images, change, named):
    with pytest.raises(InputError, match=named) as caught:
        stylize(*images, params(**change))
    assert "conv_pw_3_relu" in str(caught.value)  # the valid names are listed


def test_an_image_size_below_the_network_smallest_is_refused(images):
    with pytest.raises(InputError, match="image_size"):
        stylize(*images, params(image_size=(16, 40)))


def test_noise_start_same_seed_same_result(images):
    first, _ = stylize(*images, params(init="noise", seed=3, iterations=2))
    again, _ = stylize(*images, params(init="noise", seed=3, iterations=2))
    np.testing.assert_array_equal(first, again)
    assert np.abs(first.astype(int) - resized(images[0], SIZE)).mean() > 20  # not the content
