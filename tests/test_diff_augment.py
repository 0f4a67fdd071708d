"""DiffAugment for the DCGAN: each op, its gradient, its seeding, the loader's uniforms, params."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from pipeline.config import DcganParams
from pipeline.generative.dcgan import DCGAN, GANLoader, augmenter, build_discriminator, build_generator
from pipeline.generative.diff_augment import DRAWS, DiffAugment, color, cutout, draws, translation
from pipeline.io.hdf5 import write_arrays
from stages.cli import main
from tests.test_dcgan import blobs, write_params


def batch(n: int = 4, size: int = 8, channels: int = 1, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (n, size, size, channels)).astype(np.float32)


def uniforms(n: int, **columns: float) -> np.ndarray:
    """``(n, DRAWS)`` uniforms at 0.5 (no change for color) except the named columns."""
    u = np.full((n, DRAWS), 0.5, np.float32)
    for name, value in columns.items():
        u[:, ["bright", "sat", "contrast", "dy", "dx", "cy", "cx"].index(name)] = value
    return u


@pytest.mark.parametrize("op", ["color", "translation", "cutout"])
def test_each_op_changes_the_batch_and_keeps_its_shape(op: str) -> None:
    x = batch(6, channels=3)
    u = draws([1, 0, 0, 2], 6)[:, 0]
    out = keras.ops.convert_to_numpy(DiffAugment((op,))(x, u))
    assert out.shape == x.shape and out.dtype == np.float32 and np.isfinite(out).all()
    assert not np.allclose(out, x)
    if op != "color":  # moved or zeroed pixels: still in -1..1
        assert out.min() >= -1.0 and out.max() <= 1.0


def test_translation_shifts_whole_pixels_with_zero_fill() -> None:
    x = batch(2, size=8)
    u = uniforms(2, dy=0.0, dx=0.99)  # 1/8 of 8 px: shifts -1..1; up by one, right by one
    out = keras.ops.convert_to_numpy(translation(x, u, 0.125))
    expected = np.zeros_like(x)
    expected[:, :-1, 1:] = x[:, 1:, :-1]
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_cutout_zeroes_a_half_side_square() -> None:
    x = batch(3, size=8) + 2.0  # no zeros of its own
    out = keras.ops.convert_to_numpy(cutout(x, draws([4], 3)[:, 0], 0.5))
    zeroed = (out == 0).reshape(3, -1).sum(axis=1)
    assert zeroed.max() <= 16 and zeroed.min() > 0  # 4x4, less where clipped at a border
    np.testing.assert_array_equal(out[out != 0], x[out != 0])
    centred = keras.ops.convert_to_numpy(cutout(x, uniforms(3, cy=0.5, cx=0.5), 0.5))
    assert ((centred == 0).reshape(3, -1).sum(axis=1) == 16).all()


def test_color_follows_the_paper() -> None:
    x = batch(2, channels=3)
    bright = keras.ops.convert_to_numpy(color(x, uniforms(2, bright=0.9)))
    np.testing.assert_allclose(bright, x + 0.4, atol=1e-6)
    grey = keras.ops.convert_to_numpy(color(x, uniforms(2, sat=0.0)))
    np.testing.assert_allclose(grey, np.repeat(x.mean(-1, keepdims=True), 3, -1), atol=1e-6)
    flat = keras.ops.convert_to_numpy(color(x, uniforms(2, contrast=0.0)))
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    np.testing.assert_allclose(flat, (x - mean) * 0.5 + mean, atol=1e-6)
    one = batch(2)  # 1 channel: saturation is skipped
    np.testing.assert_allclose(keras.ops.convert_to_numpy(color(one, uniforms(2, sat=0.0))), one,
                               atol=1e-6)


@pytest.mark.parametrize("op", ["color", "translation", "cutout"])
def test_gradients_flow_through_each_op(op: str) -> None:
    from pipeline.generative.gradients import compile_input_grad

    augment = DiffAugment((op,))
    u = draws([3], 4)[:, 0]
    weights = batch(4, seed=5)
    grad = compile_input_grad(lambda x, u: keras.ops.sum(augment(x, u) * weights))
    value, g = grad(batch(4), u)
    assert np.isfinite(value) and g.shape == (4, 8, 8, 1)
    assert (np.abs(g).reshape(4, -1).max(axis=1) > 0).all()  # every image passes a gradient
    if op == "cutout":  # except through the zeroed square
        assert ((g == 0).reshape(4, -1).sum(axis=1) > 0).all()


def test_same_seed_same_augmentation() -> None:
    x = batch(5, channels=3)
    augment = DiffAugment(("color", "translation", "cutout"))
    a, b = (keras.ops.convert_to_numpy(augment(x, draws([42, 1, 3, 2], 5)[:, 0])) for _ in "ab")
    np.testing.assert_array_equal(a, b)
    other = keras.ops.convert_to_numpy(augment(x, draws([42, 1, 4, 2], 5)[:, 0]))
    assert not np.allclose(a, other)


def test_empty_list_is_today(tmp_path: Path) -> None:
    x = batch()
    assert DiffAugment(())(x, None) is x
    assert augmenter(DcganParams()) is None
    images, labels = blobs(24, 8)
    write_arrays(tmp_path / "train.h5", images, labels, ["left", "right"])
    plain = DcganParams(image_size=(8, 8), batch_size=8)
    on = plain.model_copy(update={"diff_augment": ["translation"]})
    off_loader, on_loader = GANLoader(tmp_path / "train.h5", plain, 7), GANLoader(
        tmp_path / "train.h5", on, 7)
    off_batch, on_batch = off_loader[1], on_loader[1]
    assert len(off_batch) == 2 and len(off_loader.signature()) == 2
    assert on_batch[2].shape == (8, 2, DRAWS) and on_loader.signature()[2][1] == (None, 2, DRAWS)
    for a, b in zip(off_batch, on_batch[:2], strict=True):  # the same images and noise
        np.testing.assert_array_equal(a, b)
    on_loader.set_epoch(1)
    assert not np.array_equal(on_loader[1][2], on_batch[2])  # fresh draws each epoch


def test_training_with_diff_augment_repeats_and_differs_from_off(tmp_path: Path) -> None:
    images, labels = blobs(16, 8)
    write_arrays(tmp_path / "train.h5", images, labels, ["left", "right"])

    def weights(policy: list[str]) -> np.ndarray:
        p = DcganParams(image_size=(8, 8), generator_filters=[8, 4], discriminator_filters=[4, 8],
                        latent_dim=8, batch_size=8, diff_augment=policy)
        keras.utils.set_random_seed(3)
        gan = DCGAN(build_generator(p), build_discriminator(p), augmenter(p))
        gan.compile(optimizer=keras.optimizers.Adam(p.lr, beta_1=p.beta_1))
        gan.fit(GANLoader(tmp_path / "train.h5", p, 3), epochs=1, verbose=0, shuffle=False)
        return np.concatenate([np.ravel(w) for w in gan.generator.get_weights()])

    policy = ["color", "translation", "cutout"]
    on = weights(policy)
    np.testing.assert_array_equal(on, weights(policy))
    assert not np.allclose(on, weights([]))


@pytest.mark.parametrize("policy", [["flip"], ["cutout", "cutout"]])
def test_bad_policy_exits_2_naming_the_key(tmp_path: Path, policy: list[str]) -> None:
    params = write_params(tmp_path, diff_augment=policy)
    result = CliRunner().invoke(main, ["dcgan", "--params", str(params), "--data", str(tmp_path)])
    assert result.exit_code == 2
    assert "dcgan" in result.output and "diff_augment" in result.output
    with pytest.raises(ValueError, match="unknown DiffAugment op"):
        DiffAugment(("flip",))
    assert yaml.safe_load(params.read_text())["dcgan"]["diff_augment"] == policy
