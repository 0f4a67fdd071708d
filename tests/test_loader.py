"""The HDF5 loader: every image once per epoch, new order each epoch, repeatable, fits a model."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

from pipeline.config import AugmentParams
from pipeline.train.augment import build as build_augment
from pipeline.train.loader import HDF5Loader, _runs
from pipeline.train.preprocess import Preprocessor


def make_split(path: Path, n: int = 103, size: int = 6) -> np.ndarray:
    """Images whose first pixel encodes their row number (mod 256) and labels = row % 3."""
    images = np.zeros((n, size, size, 3), np.uint8)
    images[:, 0, 0, 0] = np.arange(n) % 256
    images[:, 0, 0, 1] = np.arange(n) // 256
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=images, chunks=(1, size, size, 3))
        f.create_dataset("labels", data=(np.arange(n) % 3).astype(np.int32))
        f.create_dataset("paths", data=[f"{i}.png" for i in range(n)], dtype=h5py.string_dtype())
        f.attrs["classes"] = json.dumps(["a", "b", "c"])
    return images


def rows_seen(loader: HDF5Loader) -> list[int]:
    seen = []
    for i in range(len(loader)):
        x, y = loader[i]
        ids = (np.rint(x[:, 0, 0, 0] * 255) + 256 * np.rint(x[:, 0, 0, 1] * 255)).astype(int)
        np.testing.assert_array_equal(y, ids % 3)
        seen.extend(ids.tolist())
    return seen


@pytest.mark.parametrize("memory_limit_mb", [1024, 0])
def test_each_epoch_sees_every_image_once_in_new_order(tmp_path: Path, memory_limit_mb: int) -> None:
    make_split(tmp_path / "s.h5", n=1000)
    loader = HDF5Loader(tmp_path / "s.h5", 32, Preprocessor(), training=True, seed=3,
                        memory_limit_mb=memory_limit_mb, block_size=16)
    assert loader.in_memory is (memory_limit_mb > 0)
    first = rows_seen(loader)
    loader.on_epoch_end()
    second = rows_seen(loader)
    assert sorted(first) == sorted(second) == list(range(1000))
    assert first != second and first != sorted(first)
    again = HDF5Loader(tmp_path / "s.h5", 32, Preprocessor(), training=True, seed=3,
                       memory_limit_mb=memory_limit_mb, block_size=16)
    assert rows_seen(again) == first


def test_evaluation_order_is_file_order(tmp_path: Path) -> None:
    make_split(tmp_path / "s.h5", n=50)
    loader = HDF5Loader(tmp_path / "s.h5", 16, Preprocessor(), memory_limit_mb=0)
    assert rows_seen(loader) == list(range(50))
    assert len(loader) == 4


def test_runs_are_contiguous_slices() -> None:
    assert _runs(np.array([2, 3, 4, 9, 11, 12])) == [(2, 5), (9, 10), (11, 13)]
    assert _runs(np.array([], dtype=int)) == []


def test_preprocessing_mean_scale_and_crop() -> None:
    batch = np.full((2, 6, 8, 3), 100, np.uint8)
    pre = Preprocessor(scale=True, mean=(50.0, 60.0, 70.0), crop=(4, 4))
    out = pre(batch)
    assert out.dtype == np.float32 and out.shape == (2, 4, 4, 3)
    np.testing.assert_allclose(out[0, 0, 0], np.array([50, 40, 30]) / 255, rtol=1e-6)
    marked = np.zeros((1, 6, 8, 1), np.uint8)
    marked[0, 1:5, 2:6] = 1
    assert Preprocessor(scale=False, crop=(4, 4))(marked).min() == 1  # centre crop
    rng = np.random.default_rng(0)
    offsets = {tuple(np.argwhere(Preprocessor(scale=False, crop=(2, 2)).crop_batch(
        np.arange(48).reshape(1, 6, 8, 1), rng)[0, :, :, 0] >= 0)[0]) for _ in range(5)}
    assert offsets == {(0, 0)}
    with pytest.raises(ValueError, match="larger than the images"):
        Preprocessor(crop=(7, 7))(batch)


def test_random_crops_differ_between_epochs(tmp_path: Path) -> None:
    images = np.random.default_rng(0).integers(0, 256, (8, 10, 10, 3), dtype=np.uint8)
    with h5py.File(tmp_path / "s.h5", "w") as f:
        f.create_dataset("images", data=images)
        f.create_dataset("labels", data=np.zeros(8, np.int32))
        f.attrs["classes"] = json.dumps(["a"])
    loader = HDF5Loader(tmp_path / "s.h5", 8, Preprocessor(crop=(6, 6)), training=True)
    first = loader[0][0]
    loader.on_epoch_end()
    assert first.shape == (8, 6, 6, 3) and not np.array_equal(first, loader[0][0])


def test_augmentation_only_in_training(tmp_path: Path) -> None:
    make_split(tmp_path / "s.h5", n=16, size=8)
    augment = build_augment(AugmentParams(flip=True, shift=0.3), seed=0)
    assert build_augment(AugmentParams(), seed=0) is None
    train = HDF5Loader(tmp_path / "s.h5", 16, Preprocessor(), training=True, augment=augment)
    evaluate = HDF5Loader(tmp_path / "s.h5", 16, Preprocessor(), augment=augment)
    assert evaluate.augment is None
    plain = HDF5Loader(tmp_path / "s.h5", 16, Preprocessor(), training=True)
    x_aug, x_plain = train[0][0], plain[0][0]
    assert x_aug.shape == x_plain.shape and not np.allclose(x_aug, x_plain)


def test_augmentation_of_a_batch_depends_only_on_seed_epoch_and_batch(tmp_path: Path) -> None:
    """Batch 1 of epoch 3 read first, or after every batch before it: the same transforms (a
    resumed run sees what an uninterrupted one saw); another seed gives other transforms."""
    rng = np.random.default_rng(0)
    with h5py.File(tmp_path / "s.h5", "w") as f:
        f.create_dataset("images", data=rng.integers(0, 256, (40, 12, 12, 3), dtype=np.uint8))
        f.create_dataset("labels", data=(np.arange(40) % 3).astype(np.int32))
        f.create_dataset("paths", data=[f"{i}.png" for i in range(40)],
                         dtype=h5py.string_dtype())
        f.attrs["classes"] = json.dumps(["a", "b", "c"])
    every = AugmentParams(flip=True, rotation=0.1, shift=0.2, zoom=0.2, contrast=0.3)

    def loader(seed: int = 0, epoch: int = 0) -> HDF5Loader:
        return HDF5Loader(tmp_path / "s.h5", 8, Preprocessor(), training=True, seed=seed,
                          augment=build_augment(every, seed), epoch=epoch)

    direct = loader(epoch=3)[1][0]
    walked = loader()
    for _ in range(3):
        [walked[i] for i in range(len(walked))]
        walked.on_epoch_end()
    walked[0]
    np.testing.assert_array_equal(walked[1][0], direct)
    plain = HDF5Loader(tmp_path / "s.h5", 8, Preprocessor(), training=True, epoch=3)[1][0]
    assert not np.allclose(direct, plain)
    # the same order, another augmentation seed: other transforms
    other = HDF5Loader(tmp_path / "s.h5", 8, Preprocessor(), training=True, seed=0, epoch=3,
                       augment=build_augment(every, 1))[1][0]
    assert not np.allclose(direct, other)


def test_feeds_model_fit(tmp_path: Path) -> None:
    make_split(tmp_path / "s.h5", n=64, size=8)
    loader = HDF5Loader(tmp_path / "s.h5", 16, Preprocessor(), training=True, memory_limit_mb=0)
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    history = model.fit(loader, epochs=2, shuffle=False, verbose=0)
    assert len(history.history["loss"]) == 2 and loader.epoch >= 2
    assert model.predict(HDF5Loader(tmp_path / "s.h5", 16, Preprocessor()), verbose=0).shape == (64, 3)


def test_fit_data_gives_each_epoch_its_own_order(tmp_path: Path) -> None:
    from pipeline.train.loader import eval_data, fit_data

    make_split(tmp_path / "s.h5", n=100, size=4)
    loader = HDF5Loader(tmp_path / "s.h5", 32, Preprocessor(), training=True, seed=5)
    expected = []
    for epoch in (2, 3):
        loader.set_epoch(epoch)
        expected.append(rows_seen(loader))
    data, steps = fit_data(loader, first_epoch=2, epochs=4)
    seen = []
    for x, y in data:
        x = np.asarray(x)
        ids = (np.rint(x[:, 0, 0, 0] * 255) + 256 * np.rint(x[:, 0, 0, 1] * 255)).astype(int)
        np.testing.assert_array_equal(np.asarray(y), ids % 3)
        seen.extend(ids.tolist())
    per_epoch = len(loader) if steps is None else steps
    assert per_epoch == 4
    if steps is not None:  # TensorFlow: one pipeline spanning both epochs
        assert seen == expected[0] + expected[1]
    evaluation = eval_data(HDF5Loader(tmp_path / "s.h5", 32, Preprocessor()))
    model = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(3, activation="softmax")])
    assert model.predict(evaluation, verbose=0).shape == (100, 3)
