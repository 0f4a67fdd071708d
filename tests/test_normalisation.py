"""Pixel normalisation: the train split's per-channel std in mean.json, standardisation and
global contrast normalisation (GCN) in the Preprocessor, their params checks, old specs, and
the consumers of a saved preprocessing (export's baked layer, detection's uint8 windows)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pipeline.config import ParamsError, TrainParams, load_params
from pipeline.io.errors import InputError
from pipeline.io.hdf5 import Split
from pipeline.train.preprocess import Preprocessor, load_spec, save_spec
from tests.conftest import make_class_folders, shipped_params_with

STANDARDIZE = Preprocessor(scale=False, mean=(100.0, 120.0, 90.0), std=(40.0, 60.0, 75.0))
GCN = Preprocessor(scale=False, gcn=True, gcn_eps=1e-8)


def batch(count: int = 6, shape: tuple[int, ...] = (12, 12, 3), seed: int = 0) -> np.ndarray:
    images = np.random.default_rng(seed).integers(0, 256, (count, *shape), dtype=np.uint8)
    images[-1] = 7  # a flat image
    return images


def test_the_hdf5_stage_writes_the_train_splits_mean_and_std(tmp_path: Path) -> None:
    from stages.hdf5 import cli

    paths = make_class_folders(tmp_path / "src", {"a": 5, "b": 4})
    splits = tmp_path / "split"
    splits.mkdir()
    (splits / "classes.json").write_text(json.dumps(["a", "b"]))
    for name, chosen in (("train", paths[:7]), ("train_dev", []), ("val", paths[7:]),
                         ("test", paths[7:])):
        lines = ["path,label", *(f"{p},{p.parent.name}" for p in chosen)]
        (splits / f"{name}.csv").write_text("\n".join(lines) + "\n")
    params = shipped_params_with(tmp_path, hdf5={"image_size": [6, 5], "workers": 1},
                                 ingest={"channels": 3})
    done = CliRunner().invoke(cli, ["--params", str(params), "--splits", str(splits),
                                    "--out", str(tmp_path / "hdf5")])
    assert done.exit_code == 0, done.output
    stats = json.loads((tmp_path / "hdf5" / "mean.json").read_text())
    pixels = Split(tmp_path / "hdf5" / "train.h5").read(0, 7).reshape(-1, 3).astype(np.float64)
    assert stats["images"] == 7
    np.testing.assert_allclose(stats["mean"], pixels.mean(axis=0), atol=1e-4)
    np.testing.assert_allclose(stats["std"], pixels.std(axis=0), atol=1e-4)


def test_standardised_and_gcn_pixels(tmp_path: Path) -> None:
    images = batch()
    flat = images.reshape(-1, 3).astype(np.float64)
    fitted = Preprocessor(scale=False, mean=tuple(flat.mean(axis=0)), std=tuple(flat.std(axis=0)))
    out = fitted(images).reshape(-1, 3)
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=0), 1, atol=1e-5)
    per_image = GCN(images)
    np.testing.assert_allclose(per_image[:-1].mean(axis=(1, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(per_image[:-1].std(axis=(1, 2, 3)), 1, atol=1e-5)
    assert not per_image[-1].any()  # a flat image is 0, not NaN
    np.testing.assert_allclose(GCN(images[:1] // 2 + 10), GCN(images[:1] // 2), atol=1e-5)
    save_spec(tmp_path / "preprocess.json", GCN, classes=["a"])
    assert load_spec(tmp_path / "preprocess.json")[0] == GCN


def test_a_spec_saved_before_the_new_modes_loads_as_it_was() -> None:
    old = {"scale": True, "mean": [33.5], "crop": None, "size": None, "rgb": False,
           "backbone": None}
    loaded = Preprocessor.from_dict(old)
    assert loaded == Preprocessor(scale=True, mean=(33.5,))
    assert loaded.std is None and not loaded.gcn


def train_params(**preprocess: object) -> TrainParams:
    return TrainParams(preprocess=preprocess)


def test_the_train_params_pick_the_std_and_drop_the_scale(tmp_path: Path) -> None:
    from pipeline.train.training import preprocessor_for

    (tmp_path / "mean.json").write_text(json.dumps({"mean": [10.0, 20.0, 30.0],
                                                    "std": [2.0, 4.0, 8.0], "images": 3}))
    standard = preprocessor_for(train_params(mean_subtract=True, standardize=True), tmp_path)
    assert standard == Preprocessor(scale=False, mean=(10.0, 20.0, 30.0), std=(2.0, 4.0, 8.0))
    assert preprocessor_for(train_params(gcn=True, gcn_eps=2.0), tmp_path) == \
        Preprocessor(scale=False, gcn=True, gcn_eps=2.0)
    assert preprocessor_for(train_params(), tmp_path) == Preprocessor()  # the default's
    (tmp_path / "mean.json").write_text(json.dumps({"mean": [10.0], "images": 3}))
    with pytest.raises(InputError, match=r"mean\.json: no per-channel std.*hdf5 stage again"):
        preprocessor_for(train_params(mean_subtract=True, standardize=True), tmp_path)
    (tmp_path / "mean.json").write_text(json.dumps({"mean": [10.0], "std": [0.0]}))
    with pytest.raises(InputError, match="constant"):
        preprocessor_for(train_params(mean_subtract=True, standardize=True), tmp_path)


@pytest.mark.parametrize(("preprocess", "key"), [
    ({"standardize": True}, "train.preprocess.standardize"),
    ({"gcn": True, "mean_subtract": True}, "train.preprocess.gcn"),
    ({"gcn": True, "gcn_eps": 0.0}, "train.preprocess.gcn_eps")])
def test_combinations_that_cannot_be_are_params_errors(tmp_path: Path, preprocess: dict,
                                                       key: str) -> None:
    from stages.train import cli

    train = load_params(shipped_params_with(tmp_path)).train.model_dump(mode="json")
    params = shipped_params_with(tmp_path, train={"preprocess": {**train["preprocess"],
                                                                 **preprocess}})
    with pytest.raises(ParamsError) as caught:
        load_params(params)
    assert caught.value.lines[0].startswith(f"{key}: ")
    done = CliRunner().invoke(cli, ["--params", str(params), "--data", str(tmp_path)])
    assert done.exit_code == 2 and key in done.output


@pytest.mark.parametrize("preprocessor", [STANDARDIZE, GCN], ids=["standardize", "gcn"])
def test_detection_scores_windows_as_the_preprocessor_does(preprocessor: Preprocessor) -> None:
    """Standardisation is a mean and a scale, fused into the graph on uint8; GCN runs in numpy."""
    import keras

    from pipeline.detect.classifiers import KerasWindows

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(2, activation="sigmoid")])
    windows = KerasWindows(model, preprocessor, (16, 16), 3, ["background", "obj"], 8)
    assert windows._fused is (not preprocessor.gcn)
    pixels = batch(11, (16, 16, 3), seed=2)
    p = np.asarray(model.predict_on_batch(preprocessor(pixels)), np.float64)
    np.testing.assert_allclose(windows.scores(pixels), np.log(p) - np.log1p(-p),
                               rtol=1e-5, atol=1e-5)
