"""Grad-CAM: a heatmap that finds a known object, the layer found inside a nested backbone, a wrong
layer name refused naming the valid ones, and the explain stage's outputs.

A tiny convnet is trained here in a few seconds to tell noise with a bright square at a random
place from noise alone; its Grad-CAM maps must peak on the square. The stage runs through Click's
``CliRunner`` in this process (Keras is imported once).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tests.conftest import MAX_METRICS, numbers_in, shipped_params_with

SIDE, SQUARE = 16, 4
CLASSES = ["absent", "square"]


def squares(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uint8 ``(n, 16, 16, 1)`` dim noise, half of it with a bright 4x4 square; the labels, and
    each square's top-left corner (-1 without one)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 60, (n, SIDE, SIDE, 1)).astype(np.uint8)
    labels = np.arange(n) % 2
    corners = np.full((n, 2), -1)
    for i in np.flatnonzero(labels):
        top, left = rng.integers(0, SIDE - SQUARE + 1, 2)
        images[i, top:top + SQUARE, left:left + SQUARE] = rng.integers(200, 256)
        corners[i] = top, left
    return images, labels, corners


@pytest.fixture(scope="module")
def square_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained square detector saved as a training stage saves one, and its test split."""
    import keras
    from keras import layers

    from pipeline.io.hdf5 import write_arrays
    from pipeline.train.preprocess import Preprocessor, save_spec

    keras.utils.set_random_seed(0)
    images, labels, _ = squares(512, seed=0)
    model = keras.Sequential([
        keras.Input((SIDE, SIDE, 1)),
        # named: Keras numbers unnamed layers per process, and other tests share the worker
        layers.Conv2D(8, 3, padding="same", activation="relu", name="conv_a"),
        layers.Conv2D(8, 3, padding="same", activation="relu", name="conv_b"),
        layers.GlobalAveragePooling2D(),
        layers.Dense(2, activation="softmax", name="predictions"),
    ], name="squares")
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(images / 255.0, labels, epochs=6, batch_size=32, verbose=0)
    folder = tmp_path_factory.mktemp("squares")
    (folder / "model").mkdir()
    model.save(folder / "model" / "model.keras")
    save_spec(folder / "model" / "preprocess.json", Preprocessor(), classes=CLASSES,
              size=[SIDE, SIDE], channels=1, resize="simple", interpolation="bilinear")
    test, test_labels, _ = squares(40, seed=1)
    write_arrays(folder / "data" / "test.h5", test, test_labels, CLASSES)
    return folder


def test_heatmap_peaks_on_the_square(square_model: Path) -> None:
    import keras

    from pipeline.explain.gradcam import GradCAM, upsample

    model = keras.models.load_model(square_model / "model" / "model.keras", compile=False)
    images, labels, corners = squares(40, seed=2)
    probabilities = model.predict(images / 255.0, verbose=0)
    assert (probabilities.argmax(axis=1) == labels).mean() >= 0.9  # it learned the task
    cam = GradCAM(model)
    assert cam.layer == "conv_b"  # the last 4-D output before the pooling
    present = np.flatnonzero(labels == 1)
    heat = upsample(cam.heatmaps(images[present] / 255.0, [1] * len(present)), (SIDE, SIDE))
    hits = 0
    for h, (top, left) in zip(heat, corners[present], strict=True):
        row, col = np.unravel_index(int(np.argmax(h)), h.shape)
        hits += top - 1 <= row <= top + SQUARE and left - 1 <= col <= left + SQUARE
    assert hits >= 0.8 * len(present), (hits, len(present))


def test_layer_is_found_inside_a_nested_backbone(tmp_path: Path) -> None:
    """MobileNet alpha 0.25 at 32x32 (random weights) inside a fine-tuning model, saved and
    loaded: the layer is the backbone's last map larger than 1x1, and the two halves Grad-CAM
    cuts the network into give back the model's own probabilities."""
    import keras

    from pipeline.config import HeadParams
    from pipeline.explain.gradcam import GradCAM
    from pipeline.models import backbones
    from pipeline.transfer.finetune import build_model

    body = backbones.build("mobilenet", "none", (32, 32), 0.25)
    build_model(body, HeadParams(units=[16]), 3, pretrained=False).save(tmp_path / "m.keras")
    model = keras.models.load_model(tmp_path / "m.keras", compile=False)
    cam = GradCAM(model)
    assert cam.layer == "mobilenet_0.25_32/conv_pw_11_relu"  # 2x2; conv_pw_12/13 are 1x1
    x = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    a = cam.activations(x)
    assert a.shape == (2, 2, 2, 512 // 4)  # conv_pw_11: 512 filters at alpha 0.25
    scores = a
    for part in cam._back:
        scores = part(scores, training=False)
    again = keras.ops.convert_to_numpy(keras.ops.softmax(cam._scores(scores)))
    np.testing.assert_allclose(again, keras.ops.convert_to_numpy(model(x)), atol=1e-6)
    assert cam.heatmaps(x, [0, 2]).shape == (2, 2, 2)
    named = GradCAM(model, "mobilenet_0.25_32/conv_pw_6_relu")
    assert named.heatmaps(x, [1, 1]).shape == (2, 2, 2)


def invoke(args: list[str], cwd: Path):
    from stages.explain import cli

    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(cwd)
        return CliRunner().invoke(cli, args)


def test_wrong_layer_exits_2_listing_the_layers(square_model: Path, tmp_path: Path) -> None:
    params = shipped_params_with(tmp_path, explain={"model": str(square_model / "model"),
                                                    "layer": "conv9"})
    done = invoke(["--params", str(params), "--data", str(square_model / "data"), "--out",
                   str(tmp_path / "out")], tmp_path)
    assert done.exit_code == 2, done.output
    assert "explain.layer" in done.output and "'conv9'" in done.output
    assert "valid layers: conv_a, conv_b" in done.output
    assert not (tmp_path / "out").exists()


def test_stage_writes_overlays_grid_report_and_metrics(square_model: Path, tmp_path: Path) -> None:
    params = shipped_params_with(tmp_path, explain={"model": str(square_model / "model"),
                                                    "mistakes": 3, "per_class": 2})
    out = tmp_path / "out"
    (out / "images").mkdir(parents=True)
    (out / "images" / "stale.png").write_bytes(b"from an earlier run")
    done = invoke(["--params", str(params), "--data", str(square_model / "data"), "--out",
                   str(out)], tmp_path)
    assert done.exit_code == 0, done.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 < numbers_in(metrics) <= MAX_METRICS
    assert metrics["layer"] == "conv_b" and metrics["correct_explained"] == 4
    assert metrics["images"] == metrics["mistakes_explained"] + 4
    assert metrics["mistakes_explained"] == min(3, metrics["mistakes_found"])
    # The heat is on the square: blacking out its hottest pixels costs far more than random ones.
    assert metrics["drop_hot"] > metrics["drop_random"] + 0.1
    assert metrics["heat_on_bright"] > metrics["bright_area"]
    report = json.loads((out / "report.json").read_text())
    files = sorted(p.name for p in (out / "images").iterdir())
    assert files == sorted(Path(row["file"]).name for row in report["images"])
    assert "correct_03_true-square_pred-square_1.00.png" in files
    from PIL import Image

    overlay = Image.open(out / report["images"][0]["file"])
    assert overlay.size == (112, 112) and overlay.mode == "RGB"
    assert Image.open(out / "grid.png").size[0] > 112
