"""HDF5 round trip: what goes in comes back, uint8, chunked per image, written atomically."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from pipeline.config import Hdf5Params
from pipeline.data.pack import build
from pipeline.io.hdf5 import Split
from pipeline.io.images import load
from tests.conftest import make_class_folders


def manifest(paths: list[Path]) -> list[dict[str, str]]:
    return [{"path": str(p), "label": p.parent.name} for p in paths]


@pytest.mark.parametrize("workers", [1, 2])
def test_round_trip(tmp_path: Path, workers: int) -> None:
    # 150 images: five blocks of 32, enough for two workers to decode in parallel.
    paths = make_class_folders(tmp_path / "src", {"a": 75, "b": 75})
    params = Hdf5Params(image_size=(8, 6), workers=workers)
    total = build(manifest(paths), ["a", "b"], tmp_path / "train.h5", params, channels=3)
    with h5py.File(tmp_path / "train.h5") as f:
        images = f["images"]
        assert images.dtype == np.uint8 and images.shape == (150, 8, 6, 3)
        assert images.chunks == (1, 8, 6, 3)
        assert json.loads(f.attrs["classes"]) == ["a", "b"]
        assert list(f["labels"][:]) == [0] * 75 + [1] * 75
        stored = images[:]
    expected = np.stack([load(p, (8, 6), 3) for p in paths])
    np.testing.assert_array_equal(stored, expected)
    np.testing.assert_allclose(total[0], expected.sum(axis=(0, 1, 2)))
    np.testing.assert_allclose(total[1], np.square(expected, dtype=np.int64).sum(axis=(0, 1, 2)))
    split = Split(tmp_path / "train.h5")
    assert len(split) == 150 and split.paths() == [str(p) for p in paths]
    np.testing.assert_array_equal(split.read(5, 9), expected[5:9])
    assert not list(tmp_path.glob(".*tmp*"))


@pytest.mark.parametrize("workers", [1, 2])
def test_failed_build_leaves_no_file(tmp_path: Path, workers: int) -> None:
    paths = make_class_folders(tmp_path / "src", {"a": 140})
    rows = [*manifest(paths), {"path": str(tmp_path / "gone.png"), "label": "a"}]
    params = Hdf5Params(image_size=(4, 4), workers=workers)
    with pytest.raises(FileNotFoundError):
        build(rows, ["a"], tmp_path / "train.h5", params, channels=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_unknown_label_is_an_error(tmp_path: Path) -> None:
    paths = make_class_folders(tmp_path / "src", {"a": 1})
    with pytest.raises(ValueError, match=r"labels not in classes\.json"):
        build(manifest(paths), ["z"], tmp_path / "t.h5", Hdf5Params(image_size=(4, 4)), channels=1)


def test_grey_and_empty_splits(tmp_path: Path) -> None:
    paths = make_class_folders(tmp_path / "src", {"a": 2})
    build(manifest(paths), ["a"], tmp_path / "grey.h5", Hdf5Params(image_size=(5, 5)), channels=1)
    assert Split(tmp_path / "grey.h5").shape == (2, 5, 5, 1)
    build([], ["a"], tmp_path / "empty.h5", Hdf5Params(image_size=(5, 5)), channels=1)
    assert len(Split(tmp_path / "empty.h5")) == 0
