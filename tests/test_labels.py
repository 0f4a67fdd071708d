"""One-hot labels: label smoothing, MixUp and CutMix; the sparse path when all three are off."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
import yaml

from pipeline.config import AugmentParams, ParamsError, TrainParams, validate
from pipeline.train.augment import build, write_preview
from pipeline.train.loader import HDF5Loader, eval_data, fit_data
from pipeline.train.preprocess import Preprocessor
from pipeline.train.training import compile_model, one_hot
from tests.conftest import ROOT, set_dotted

CLASSES = 7
#: Images of distinct random pixels, so where each output pixel came from shows.
IMAGES = np.random.default_rng(0).integers(0, 256, (6, 16, 16, 3)).astype(np.float32)
#: Image i is its own class: a mixed label says which image went in, and by how much.
OWN = np.eye(len(IMAGES), dtype=np.float32)


def make_split(path: Path, n: int = 40, size: int = 8) -> np.ndarray:
    labels = (np.arange(n) % CLASSES).astype(np.int32)
    rng = np.random.default_rng(1)
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8))
        f.create_dataset("labels", data=labels)
        f.create_dataset("paths", data=[f"{i}.png" for i in range(n)], dtype=h5py.string_dtype())
        f.attrs["classes"] = json.dumps([f"c{i}" for i in range(CLASSES)])
    return labels


def tiny_model(size: int = 8) -> keras.Model:
    return keras.Sequential([keras.Input((size, size, 3)), keras.layers.Flatten(),
                             keras.layers.Dense(CLASSES, activation="softmax")])


def test_loader_one_hot_batches_and_signature(tmp_path: Path) -> None:
    labels = make_split(tmp_path / "s.h5")
    sparse = HDF5Loader(tmp_path / "s.h5", 16, Preprocessor())
    dense = HDF5Loader(tmp_path / "s.h5", 16, Preprocessor(), one_hot=CLASSES)
    x, y = dense[0]
    x_sparse, y_sparse = sparse[0]
    np.testing.assert_array_equal(x, x_sparse)
    assert y_sparse.dtype == np.int32 and y_sparse.shape == (16,)
    assert y.dtype == np.float32 and y.shape == (16, CLASSES)
    np.testing.assert_array_equal(y, np.eye(CLASSES)[labels[:16]])
    assert sparse.signature()[1] == ("int32", (None,))
    assert dense.signature()[1] == ("float32", (None, CLASSES))
    with pytest.raises(ValueError, match="one_hot"):
        HDF5Loader(tmp_path / "s.h5", 16, Preprocessor(), training=True,
                   augment=build(AugmentParams(mixup_alpha=0.2), 0))


def test_mixup_blends_images_and_labels_alike() -> None:
    augment = build(AugmentParams(mixup_alpha=0.4), seed=0)
    x, y = augment.mix(IMAGES, OWN, epoch=1, batch=2)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-6)
    for i in range(len(IMAGES)):
        expected = (y[i][:, None, None, None] * IMAGES).sum(axis=0)  # the labels' blend
        np.testing.assert_allclose(x[i], expected, rtol=1e-4, atol=1e-2)
    assert not np.allclose(x, IMAGES)
    again = build(AugmentParams(mixup_alpha=0.4), seed=0).mix(IMAGES, OWN, 1, 2)
    np.testing.assert_array_equal(again[0], x)
    assert not np.array_equal(augment.mix(IMAGES, OWN, 1, 3)[1], y)


def test_cutmix_pastes_a_box_and_labels_follow_its_area() -> None:
    augment = build(AugmentParams(cutmix_alpha=1.0), seed=0)
    x, y = augment.mix(IMAGES, OWN, epoch=0, batch=1)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-6)
    pasted = 0
    for i in range(len(IMAGES)):
        own = np.all(x[i] == IMAGES[i], axis=-1)
        sources = [j for j in range(len(IMAGES)) if y[i, j] > 0]
        from_others = [np.all(x[i] == IMAGES[j], axis=-1) for j in sources if j != i]
        # every pixel is the image's own or the pasted image's
        assert np.all(own | np.any(from_others, axis=0)) if from_others else own.all()
        if from_others:
            pasted += 1
            # the label's share is the box's share of the pixels (to a pixel row or column)
            assert abs(float(from_others[0].mean()) - (1 - y[i, i])) <= 2 / 16 + 1e-6
    assert pasted


def test_both_on_one_of_the_two_per_batch() -> None:
    augment = build(AugmentParams(mixup_alpha=0.4, cutmix_alpha=1.0), seed=0)
    kinds = set()
    for batch in range(12):
        x, y = augment.mix(IMAGES, OWN, 0, batch)
        copied = all(np.isin(x[i], IMAGES[y[i] > 0]).all() for i in range(len(IMAGES)))
        kinds.add("cutmix" if copied else "mixup")
    assert kinds == {"cutmix", "mixup"}


def test_training_batches_mixed_validation_batches_plain(tmp_path: Path) -> None:
    labels = make_split(tmp_path / "s.h5")
    augment = build(AugmentParams(mixup_alpha=0.4, cutmix_alpha=1.0), seed=0)
    train = HDF5Loader(tmp_path / "s.h5", 16, Preprocessor(), training=True, augment=augment,
                       one_hot=CLASSES)
    val = HDF5Loader(tmp_path / "s.h5", 16, Preprocessor(), augment=augment, one_hot=CLASSES)
    _, y = train[0]
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-6)
    assert (y.max(axis=1) < 1).any()  # some images mixed
    np.testing.assert_array_equal(val[0][1], np.eye(CLASSES)[labels[:16]])


def test_label_smoothing_and_mixing_train_a_step(tmp_path: Path) -> None:
    """Categorical loss and metrics under today's names, on tf.data (or the PyDataset), with
    class weights (Keras weighs a one-hot row by its largest entry)."""
    make_split(tmp_path / "s.h5")
    params = TrainParams(label_smoothing=0.1, augment=AugmentParams(mixup_alpha=0.4))
    assert one_hot(params) and not one_hot(TrainParams(augment=AugmentParams()))
    train = HDF5Loader(tmp_path / "s.h5", 16, Preprocessor(), training=True,
                       augment=build(params.augment, 0), one_hot=CLASSES)
    val = HDF5Loader(tmp_path / "s.h5", 16, Preprocessor(), one_hot=CLASSES)
    model = tiny_model()
    compile_model(model, keras.optimizers.SGD(0.01), CLASSES, one_hot=True, label_smoothing=0.1)
    data, steps = fit_data(train, 0, 1)
    history = model.fit(data, steps_per_epoch=steps, epochs=1, validation_data=eval_data(val),
                        shuffle=False, verbose=0, class_weight=dict.fromkeys(range(CLASSES), 2.0))
    assert set(history.history) == {"loss", "accuracy", "rank5", "val_loss", "val_accuracy",
                                    "val_rank5"}
    assert all(np.isfinite(v[0]) for v in history.history.values())
    # the loss is Keras's smoothed categorical cross-entropy
    x, y = val[0]
    p = model.predict(x, verbose=0)
    smoothed = y * 0.9 + 0.1 / CLASSES
    manual = float(np.mean(-(smoothed * np.log(np.clip(p, 1e-7, 1))).sum(axis=1)))
    np.testing.assert_allclose(float(model.compute_loss(x, y, p)), manual, rtol=1e-4)


def test_sparse_path_when_all_three_are_off(tmp_path: Path) -> None:
    make_split(tmp_path / "s.h5")
    shipped = validate(yaml.safe_load((ROOT / "params.yaml").read_text()))
    for section in (shipped.train, shipped.detect_train, shipped.finetune):
        assert not one_hot(section)
    model = tiny_model()
    compile_model(model, keras.optimizers.SGD(0.01), CLASSES)
    assert model.loss == "sparse_categorical_crossentropy"
    loader = HDF5Loader(tmp_path / "s.h5", 16, Preprocessor(), training=True,
                        augment=build(shipped.train.augment, 0))
    assert loader[0][1].dtype == np.int32 and loader.signature()[1] == ("int32", (None,))
    history = model.fit(loader, epochs=1, shuffle=False, verbose=0)
    assert set(history.history) == {"loss", "accuracy", "rank5"}
    with pytest.raises(ValueError, match="one-hot"):
        compile_model(tiny_model(), "sgd", CLASSES, label_smoothing=0.1)


def test_a_model_trained_on_one_hot_labels_scores_int_labels(tmp_path: Path) -> None:
    """evaluate loads the model without its categorical loss and scores the split's indices."""
    from pipeline.evaluate.evaluation import evaluate_model
    from pipeline.train.preprocess import save_spec

    make_split(tmp_path / "s.h5")
    model = tiny_model()
    compile_model(model, keras.optimizers.SGD(0.01), CLASSES, one_hot=True, label_smoothing=0.1)
    model.fit(HDF5Loader(tmp_path / "s.h5", 40, Preprocessor(), one_hot=CLASSES), verbose=0)
    model.save(tmp_path / "model.keras")
    save_spec(tmp_path / "preprocess.json", Preprocessor(),
              classes=[f"c{i}" for i in range(CLASSES)], size=[8, 8], channels=3,
              resize="simple", interpolation="bilinear")
    scores = evaluate_model(tmp_path, tmp_path / "s.h5", 16)["metrics"]
    assert scores["images"] == 40 and 0.0 <= scores["rank1"] <= scores["rank5"] <= 1.0


@pytest.mark.slow
def test_train_stage_with_all_three_on(tmp_path: Path) -> None:
    """``train`` end to end (in process): one-hot batches, the metrics under today's names,
    the preview PNG."""
    from tests.test_training import digits_data, run_in_process

    digits_data(tmp_path / "data", 128, size=12)
    metrics = run_in_process(tmp_path, "mix", model="shallownet", epochs=1, batch_size=32,
                             label_smoothing=0.1,
                             augment={"mixup_alpha": 0.2, "cutmix_alpha": 1.0})
    assert {"loss", "accuracy", "rank5"} <= set(metrics["train"])
    assert {"loss", "accuracy", "rank5"} <= set(metrics["val"])
    assert (tmp_path / "mix" / "live" / "plots" / "augment.png").stat().st_size > 0
    assert (tmp_path / "mix" / "model" / "model.keras").exists()


def test_preview_shows_the_mixing(tmp_path: Path) -> None:
    target = tmp_path / "augment.png"
    write_preview(build(AugmentParams(cutmix_alpha=1.0), 0), IMAGES.astype(np.uint8), target)
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def shipped_with(**train: object) -> dict:
    return set_dotted(yaml.safe_load((ROOT / "params.yaml").read_text()), train)


@pytest.mark.parametrize(("overrides", "line"), [
    ({"train.label_smoothing": 1.0}, "train.label_smoothing: Input should be less than 1"),
    ({"finetune.label_smoothing": -0.1}, "finetune.label_smoothing: Input should be greater"),
    ({"train.augment.cutmix_alpha": 1.5}, "train.augment.cutmix_alpha: Input should be less"),
    ({"detect_train.batch_size": 1, "detect_train.augment.mixup_alpha": 0.2},
     "detect_train.augment: mixup_alpha and cutmix_alpha mix images within a batch"),
])
def test_bad_values_name_the_key(overrides: dict, line: str) -> None:
    with pytest.raises(ParamsError) as info:
        validate(shipped_with(**overrides))
    assert any(got.startswith(line) for got in info.value.lines), info.value.lines


def test_bad_combination_exits_2(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from stages.train import cli

    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(shipped_with(**{"train.batch_size": 1,
                                                   "train.augment.cutmix_alpha": 1.0})))
    result = CliRunner().invoke(cli, ["--params", str(path), "--data", str(tmp_path)])
    assert result.exit_code == 2 and "train.augment: mixup_alpha and cutmix_alpha" in result.output


def test_ablation_turns_mixing_off() -> None:
    from pipeline.search.ablation import PRESETS

    for stage, knob in (("train", "train"), ("detect_train", "detect_train"),
                        ("finetune", "finetune")):
        off = PRESETS[stage]["augmentation"]
        assert off[f"{knob}.augment.mixup_alpha"] == off[f"{knob}.augment.cutmix_alpha"] == 0.0
