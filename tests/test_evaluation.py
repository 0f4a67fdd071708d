"""Evaluation: 10-crop geometry and averaging, the bias/variance table, misclassified grid,
ensembles and ensemble members' params."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline.config import EvaluateParams, ParamsError, load_params, member_params
from pipeline.evaluate.diagnosis import diagnose, table_markdown
from pipeline.evaluate.gallery import misclassified
from pipeline.evaluate.oversample import crop_size, crop_views, view_count, view_preprocessor
from pipeline.io.hdf5 import Split, write_arrays
from pipeline.train.preprocess import Preprocessor, save_spec
from tests.conftest import MAX_METRICS, ROOT, numbers_in, venv_env


def test_ten_crop_takes_corners_centre_and_their_mirrors() -> None:
    batch = np.arange(2 * 6 * 8 * 1, dtype=np.uint8).reshape(2, 6, 8, 1)
    views = crop_views(batch, (4, 5), flip=True)
    assert len(views) == 10 and all(v.shape == (2, 4, 5, 1) for v in views)
    np.testing.assert_array_equal(views[0], batch[:, :4, :5])       # top left
    np.testing.assert_array_equal(views[3], batch[:, 2:, 3:])       # bottom right
    np.testing.assert_array_equal(views[4], batch[:, 1:5, 1:6])     # centre
    for plain, mirror in zip(views[:5], views[5:], strict=True):
        np.testing.assert_array_equal(mirror, plain[:, :, ::-1])
    assert len(crop_views(batch, (4, 5), flip=False)) == 5
    with pytest.raises(ValueError, match="larger than the images"):
        crop_views(batch, (7, 5), flip=False)
    # A crop the size of the image is one view: the image and its mirror.
    whole = crop_views(batch, (6, 8), flip=True)
    assert len(whole) == 2 and view_count((6, 8), (6, 8), True) == 2
    np.testing.assert_array_equal(whole[1], batch[:, :, ::-1])
    assert view_count((6, 8), (4, 5), True) == 10 and view_count((6, 8), (6, 5), False) == 3


def test_crop_size_follows_the_training_crop_or_the_fraction() -> None:
    assert crop_size(Preprocessor(crop=(24, 20)), (28, 28), 0.5) == (24, 20)
    assert crop_size(Preprocessor(), (32, 16), 0.75) == (24, 12)
    # Whole-image models see crops resized back to the stored size; crop models see the crop.
    assert view_preprocessor(Preprocessor(), (32, 16)).size == (32, 16)
    assert view_preprocessor(Preprocessor(crop=(24, 20)), (28, 28)).size is None
    assert view_preprocessor(Preprocessor(size=(40, 40)), (28, 28)).size == (40, 40)


def test_diagnosis_names_each_gap_and_the_largest() -> None:
    errors = {"train": 0.05, "train_dev": 0.07, "val": 0.15, "test": 0.16}
    result = diagnose(errors, human_error=0.01)
    gaps = result["gaps"]
    assert gaps["avoidable_bias"] == pytest.approx(0.04)
    assert gaps["variance"] == pytest.approx(0.02)
    assert gaps["data_mismatch"] == pytest.approx(0.08)
    assert gaps["val_overfit"] == pytest.approx(0.01)
    assert result["largest"] == "data_mismatch"
    assert "Largest gap: **data_mismatch**" in table_markdown(result)
    without = diagnose({"train": 0.01, "val": 0.2, "test": 0.2})
    assert without["largest"] == "variance_or_mismatch" and "variance" not in without["gaps"]
    assert "split.train_dev" in table_markdown(without)


def test_misclassified_are_the_most_confident_mistakes_first() -> None:
    labels = np.array([0, 1, 1, 0, 2])
    predicted = np.array([0, 0, 2, 1, 2])
    confidence = np.array([0.9, 0.6, 0.8, 0.7, 0.99])
    assert misclassified(labels, predicted, confidence, 10).tolist() == [2, 3, 1]
    assert misclassified(labels, predicted, confidence, 2).tolist() == [2, 3]


def blobs(folder: Path) -> Path:
    """train/train_dev/val/test.h5 of two classes told apart by a bright centre square."""
    rng = np.random.default_rng(3)
    for name, count in (("train", 60), ("train_dev", 12), ("val", 12), ("test", 16)):
        labels = np.arange(count) % 2
        images = rng.integers(0, 60, (count, 16, 16, 1)).astype(np.uint8)
        images[labels == 1, 5:11, 5:11] = 220
        write_arrays(folder / f"{name}.h5", images, labels, ["dark", "bright"],
                     [f"{name}/{i}.png" for i in range(count)])
    return folder


def tiny_model(folder: Path, data: Path, seed: int) -> Path:
    """A real two-class Keras model fitted briefly on ``data``, saved like the train stage."""
    import keras

    keras.utils.set_random_seed(seed)
    train = Split(data / "train.h5")
    model = keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Conv2D(4, 3),
                              keras.layers.GlobalMaxPooling2D(),
                              keras.layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(train.read() / 255.0, train.labels, epochs=3, verbose=0)
    folder.mkdir(parents=True)
    model.save(folder / "model.keras")
    save_spec(folder / "preprocess.json", Preprocessor(), classes=train.classes)
    return folder


def test_evaluate_reports_oversampling_diagnosis_and_pictures(tmp_path: Path) -> None:
    import keras

    from pipeline.evaluate.evaluation import Scorer, evaluate, write_outputs

    data = blobs(tmp_path / "data")
    model_dir = tiny_model(tmp_path / "model", data, seed=0)
    settings = EvaluateParams(oversample={"enabled": True, "crop": 0.75, "flip": True},
                              human_error=0.01, misclassified=4)
    result = evaluate(model_dir, data, data, settings)
    metrics = write_outputs(result, tmp_path / "out", "test", settings.misclassified)
    assert json.loads((tmp_path / "out" / "metrics.json").read_text()) == metrics
    over = metrics["oversampled"]
    assert over["views"] == 10 and over["rank1_gain"] == pytest.approx(
        over["rank1"] - metrics["rank1"], abs=1e-6)
    # The metrics hold the headline (the gaps); the report each split's error and the classes.
    assert set(metrics["diagnosis"]) == {"avoidable_bias", "variance", "data_mismatch",
                                         "val_overfit"}
    assert numbers_in(metrics) <= MAX_METRICS and "per_class" not in metrics
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    errors = report["diagnosis"]["errors"]
    assert set(errors) == {"train", "train_dev", "val", "test"}
    assert errors["test"] == pytest.approx(1 - metrics["rank1"], abs=1e-6)
    assert report["diagnosis"]["images"]["test"] == metrics["images"]
    assert metrics["diagnosis"]["variance"] == pytest.approx(
        errors["train_dev"] - errors["train"], abs=1e-6)
    assert {"precision", "recall"} <= set(report["report"][report["classes"][0]])
    for name in ("misclassified.png", "confusion.png", "diagnosis.md", "report.txt"):
        assert (tmp_path / "out" / name).stat().st_size > 0

    # The oversampled probabilities are the mean of the model on each resized view.
    model = keras.models.load_model(model_dir / "model.keras")
    images = Split(data / "test.h5").read()
    views = [view / 255.0 for view in crop_views(images, (12, 12), flip=True)]
    expected = np.mean([model.predict(keras.ops.convert_to_numpy(
        keras.ops.image.resize(v.astype("float32"), (16, 16))), verbose=0) for v in views], axis=0)
    got, n_views = Scorer(model_dir).predict_oversampled(data / "test.h5", 0.75, flip=True)
    assert n_views == 10
    np.testing.assert_allclose(got.probabilities, expected, atol=1e-5)


def test_ensemble_averages_members(tmp_path: Path) -> None:
    from pipeline.evaluate.ensemble import (
        average,
        best_member,
        member_scores,
        predict_members,
        summary,
    )
    from pipeline.evaluate.evaluation import scores

    data = blobs(tmp_path / "data")
    models = {f"m{seed}": tiny_model(tmp_path / f"m{seed}", data, seed) for seed in (0, 1)}
    predictions = predict_members(models, data, data, "test", 8)
    mean = average(predictions)
    np.testing.assert_allclose(mean.probabilities, (predictions["m0"].probabilities
                                                    + predictions["m1"].probabilities) / 2)
    members = member_scores(predictions)
    result = summary(members, scores(mean.probabilities, mean.labels, mean.classes)["metrics"])
    best = max(m["rank1"] for m in members.values())
    assert result["rank1_gain_over_best"] == pytest.approx(result["rank1"] - best, abs=1e-6)
    assert members[best_member(members)]["rank1"] == best == result["best_member_rank1"]
    assert "members" not in result  # each member's scores go to report.json


def params_with(tmp_path: Path, members: dict) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["ensemble"]["members"] = members
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_member_params_merge_overrides_into_train(tmp_path: Path) -> None:
    path = params_with(tmp_path, {"wide": {"base": {"seed": 7}, "train": {"arch": {"width": 2}}}})
    params = load_params(path)
    member = member_params(params, "wide")
    assert member.base.seed == 7 and member.train.arch.width == 2
    assert member.train.model == params.train.model  # everything else as in train
    with pytest.raises(KeyError, match="no ensemble member"):
        member_params(params, "narrow")


def test_a_bad_member_override_names_its_dotted_key(tmp_path: Path) -> None:
    with pytest.raises(ParamsError) as raised:
        load_params(params_with(tmp_path, {"fast": {"train": {"lr": -1}}}))
    assert "ensemble.members.fast: train.lr" in raised.value.lines[0]
    with pytest.raises(ParamsError) as raised:
        load_params(params_with(tmp_path, {"odd": {"hdf5": {"image_size": [8, 8]}}}))
    assert "members.odd: may override base and train only, got hdf5" in raised.value.lines[0]
    done = subprocess.run([sys.executable, "-m", "stages.cli", "params", "check",
                           str(params_with(tmp_path, {"fast": {"train": {"lr": -1}}}))],
                          cwd=ROOT, env=venv_env(), capture_output=True, text=True)
    assert done.returncode == 2 and "ensemble.members.fast: train.lr" in done.stderr


def test_train_refuses_an_unknown_member(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "stages.train", "--params",
                           str(params_with(tmp_path, {"a": {}})), "--member", "b",
                           "--data", str(tmp_path)],
                          cwd=ROOT, env=venv_env(), capture_output=True, text=True)
    assert done.returncode == 2 and "no ensemble member 'b'" in done.stderr


def test_gaps_within_two_standard_errors_are_noise() -> None:
    errors = {"train": 0.01, "train_dev": 0.02, "val": 0.04, "test": 0.04}
    counts = {"train": 1000, "train_dev": 50, "val": 50, "test": 50}
    small = diagnose(errors, human_error=0.008, counts=counts)
    # One image in 50 is 0.02: none of these gaps is beyond 2 standard errors.
    assert small["largest"] is None
    pooled = (0.01 * 1000 + 0.02 * 50) / 1050
    assert small["standard_errors"]["variance"] == pytest.approx(
        np.sqrt(pooled * (1 - pooled) * (1 / 1000 + 1 / 50)), abs=1e-6)
    assert "(within noise)" in table_markdown(small)
    # A split without mistakes is still uncertain: 0 of 100 against 3 of 100 is noise.
    assert diagnose({"train_dev": 0.0, "val": 0.03}, counts={"train_dev": 100, "val": 100})[
        "largest"] is None
    large = diagnose(errors, counts={k: 100_000 for k in errors})
    assert large["largest"] == "data_mismatch"
