"""Shipping: a real zoo model exported to ONNX, SavedModel and LiteRT, each scored by its own
runtime against Keras; bad formats, folders and broken parity; ONNX prediction without TF."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from pipeline.config.export import EXPORT_FORMATS
from pipeline.io.hdf5 import write_arrays
from pipeline.train.preprocess import Preprocessor, save_spec
from tests.conftest import MAX_METRICS, ROOT, numbers_in, shipped_params_with, venv_env

SHAPE = (12, 12, 1)
CLASSES = [str(c) for c in range(4)]


def tiny_model(folder: Path, preprocessor: Preprocessor, shape: tuple[int, int, int] = SHAPE,
               seed: int = 0) -> Path:
    """ShallowNet from the zoo (random weights), saved the way the train stage saves a model."""
    import keras

    from pipeline.models.zoo import build

    keras.utils.set_random_seed(seed)
    model = build("shallownet", preprocessor.output_shape(shape), len(CLASSES))
    folder.mkdir(parents=True)
    model.save(folder / "model.keras")
    save_spec(folder / "preprocess.json", preprocessor, classes=CLASSES, size=list(shape[:2]),
              channels=shape[2], resize="simple", interpolation="bilinear")
    return folder


def images(count: int, seed: int, shape: tuple[int, int, int] = SHAPE) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, *shape), dtype=np.uint8)


def keras_probabilities(folder: Path, batch: np.ndarray) -> np.ndarray:
    import keras

    from pipeline.train.preprocess import load_spec

    preprocessor, _ = load_spec(folder / "preprocess.json")
    model = keras.models.load_model(folder / "model.keras", compile=False)
    return model.predict_on_batch(preprocessor(batch))


def run_stage(root: Path, **export: object):
    from stages.export import cli

    params = shipped_params_with(root, export={"model": str(root / "model"), **export})
    return CliRunner().invoke(cli, ["--params", str(params), "--data", str(root / "data"),
                                    "--out", str(root / "models/export"),
                                    "--metrics", str(root / "results/metrics.json")])


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The export stage run once on a tiny model with mean subtraction and scaling."""
    root = tmp_path_factory.mktemp("export")
    tiny_model(root / "model", Preprocessor(scale=True, mean=(120.0,)))
    labels = np.arange(40) % len(CLASSES)
    write_arrays(root / "data" / "test.h5", images(40, 1), labels, CLASSES)
    done = run_stage(root)
    assert done.exit_code == 0, done.output
    assert f"all {len(EXPORT_FORMATS)} exports match the Keras model" in done.output
    return root


def test_the_stage_exports_every_format_and_scores_it_with_its_runtime(shipped: Path) -> None:
    metrics = json.loads((shipped / "results/metrics.json").read_text())
    assert numbers_in(metrics) <= MAX_METRICS and metrics["images"] == 40
    digest = hashlib.sha256((shipped / "model/model.keras").read_bytes()).hexdigest()
    for fmt in EXPORT_FORMATS:
        assert metrics[fmt]["rank1"] == metrics["rank1_keras"]
        assert metrics[fmt]["max_abs_diff"] <= 1e-4
        manifest = json.loads((shipped / "models/export" / fmt / "export.json").read_text())
        assert manifest["format"] == fmt and manifest["preprocessing"] == "baked"
        assert manifest["input"] == {"name": "images", "shape": [None, 12, 12, 1], "dtype": "uint8"}
        assert manifest["classes"] == CLASSES and manifest["source"]["sha256"] == digest
        assert all((shipped / "models/export" / fmt / f).is_file() for f in manifest["files"])
    assert sorted(p.name for p in (shipped / "models").iterdir()) == ["export"]


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_each_export_takes_any_batch_size(shipped: Path, fmt: str) -> None:
    from pipeline.export.runtimes import load

    exported = load(shipped / "models/export" / fmt)
    batch = images(5, 7)
    expected = keras_probabilities(shipped / "model", batch)
    for part in (batch[:1], batch):
        np.testing.assert_allclose(exported.run(part), expected[:len(part)], atol=1e-5)


def test_broken_parity_exits_1_and_leaves_the_last_export(shipped: Path) -> None:
    before = {p: p.read_bytes() for p in (shipped / "models").rglob("*") if p.is_file()}
    metrics = (shipped / "results/metrics.json").read_text()
    done = run_stage(shipped, formats=["onnx"], tolerance=1e-12)
    assert done.exit_code == 1, done.output
    lines = done.output.strip().splitlines()
    assert len(lines) == 1 and "parity broken (export.tolerance 1e-12)" in lines[0]
    assert "onnx: rank-1" in lines[0]
    assert {p: p.read_bytes() for p in (shipped / "models").rglob("*") if p.is_file()} == before
    assert (shipped / "results/metrics.json").read_text() == metrics


def test_parity_needs_the_same_rank1_and_close_probabilities() -> None:
    from pipeline.export.parity import compare

    keras_probs = np.array([[0.6, 0.4], [0.3, 0.7]], np.float32)
    labels = np.array([0, 1])
    assert compare("onnx", keras_probs, keras_probs + 1e-6, labels, 1e-4).holds
    far = compare("onnx", keras_probs, keras_probs + np.array([[0.0, 0.01], [0.0, 0.0]]), labels, 1e-4)
    assert not far.holds and far.rank1 == far.rank1_keras == 1.0
    flipped = compare("onnx", keras_probs, keras_probs[:, ::-1], labels, 1.0)
    assert not flipped.holds and flipped.rank1 == 0.0


def test_an_unknown_format_exits_2_naming_the_key_or_option(tmp_path: Path) -> None:
    from stages.cli import EXPORT_FORMATS as CHOICES
    from stages.cli import main

    assert CHOICES == EXPORT_FORMATS
    (tmp_path / "data").mkdir()
    done = run_stage(tmp_path, formats=["onnx", "tflite"])
    assert done.exit_code == 2
    assert "export.formats: unknown format 'tflite'; known: onnx, saved_model, litert" in done.output
    (tmp_path / "model").mkdir()
    done = CliRunner().invoke(main, ["export", str(tmp_path / "model"), "--format", "tflite"])
    assert done.exit_code == 2 and "'--format'" in done.output


@pytest.mark.parametrize("missing", ["preprocess.json", "model.keras"])
def test_a_model_folder_without_its_files_exits_2_naming_the_file(tmp_path: Path,
                                                                  missing: str) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / ({"preprocess.json", "model.keras"} - {missing}).pop()).write_text("{}")
    write_arrays(tmp_path / "data" / "test.h5", images(2, 0), np.arange(2), CLASSES[:2])
    done = run_stage(tmp_path)
    assert done.exit_code == 2
    assert f"export.model: no {tmp_path / 'model' / missing}" in done.output
    assert not (tmp_path / "models").exists() and not (tmp_path / "results").exists()


def test_cvpipe_export_writes_one_format_checked_against_keras(tmp_path: Path) -> None:
    """Geometry baked too: a centre crop, grey to RGB and a resize, as the Preprocessor does."""
    from stages.cli import main

    model = tiny_model(tmp_path / "model", Preprocessor(crop=(10, 10), size=(12, 12), rgb=True))
    done = CliRunner().invoke(main, ["export", str(model), "--format", "onnx",
                                     "--out", str(tmp_path / "onnx")])
    assert done.exit_code == 0, done.output
    assert "top class as Keras's on 100% of 64 random images" in done.output
    from pipeline.export.runtimes import load

    batch = images(6, 3)
    np.testing.assert_allclose(load(tmp_path / "onnx" / "model.onnx").run(batch),
                               keras_probabilities(model, batch), atol=1e-5)


def test_gcn_and_standardisation_convert_to_onnx(tmp_path: Path) -> None:
    """Per-image reductions (GCN) and a per-channel std survive tf2onnx, flat images too."""
    from pipeline.export.formats import export, load_source
    from pipeline.export.runtimes import load

    batch = images(6, 4)
    batch[0] = 9
    for name, preprocessor in (("gcn", Preprocessor(scale=False, gcn=True)),
                               ("std", Preprocessor(scale=False, mean=(120.0,), std=(70.0,)))):
        model = tiny_model(tmp_path / name, preprocessor)
        export(load_source(model), "onnx", tmp_path / f"{name}-onnx")
        np.testing.assert_allclose(load(tmp_path / f"{name}-onnx" / "model.onnx").run(batch),
                                   keras_probabilities(model, batch), atol=1e-5)


@pytest.mark.parametrize("preprocessor", [
    Preprocessor(scale=False, mean=(10.0, 20.0, 30.0)), Preprocessor(backbone="vgg16"),
    Preprocessor(backbone="mobilenet", size=(16, 16)), Preprocessor(crop=(8, 6), scale=True),
    Preprocessor(scale=False, mean=(10.0, 20.0, 30.0), std=(50.0, 60.0, 70.0)),
    Preprocessor(scale=False, gcn=True, gcn_eps=1e-8)],
    ids=["mean", "caffe", "tf-resized", "crop", "standardize", "gcn"])
def test_the_baked_layer_is_the_preprocessor(preprocessor: Preprocessor) -> None:
    import keras

    from pipeline.export.baking import BakedPreprocessing

    batch = images(3, 5, (12, 12, 3))
    baked = keras.ops.convert_to_numpy(BakedPreprocessing(preprocessor.to_dict())(batch))
    np.testing.assert_allclose(baked, preprocessor(batch), rtol=1e-6, atol=1e-4)


#: Prediction in a process where TensorFlow, Keras (and JAX) cannot be imported.
NO_TF = """
import importlib.abc, json, sys

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras", "jax", "tf_keras"):
            raise ImportError(f"{name} is blocked")

sys.meta_path.insert(0, Refuse())
from click.testing import CliRunner
from stages.cli import main
out = []
for model in sys.argv[1:3]:
    done = CliRunner().invoke(main, ["predict", model, sys.argv[3], "--json", "-k", "4"])
    assert done.exit_code == 0, done.output
    out.append(json.loads(done.stdout))
print(json.dumps(out))
"""


def test_onnx_predict_runs_without_tensorflow_or_keras(shipped: Path, tmp_path: Path) -> None:
    from pipeline.tools.predict import predict

    batch = images(3, 11)
    for i, image in enumerate(batch):
        Image.fromarray(image[..., 0], "L").save(tmp_path / f"{i}.png")
    onnx = shipped / "models/export/onnx"
    done = subprocess.run([sys.executable, "-c", NO_TF, str(onnx), str(onnx / "model.onnx"),
                           str(tmp_path)], cwd=ROOT, env=venv_env(), capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    by_folder, by_file = json.loads(done.stdout)
    assert by_folder == by_file and len(by_folder) == 3
    expected, _ = predict(shipped / "model", [tmp_path], top_k=4)
    for got, want in zip(by_folder, expected, strict=True):
        assert [t["label"] for t in got["top"]] == [label for label, _ in want.top]
        np.testing.assert_allclose([t["probability"] for t in got["top"]],
                                   [p for _, p in want.top], atol=1e-5)
    litert, _ = predict(shipped / "models/export/litert", [tmp_path], top_k=4)
    assert [r.top[0][0] for r in litert] == [r.top[0][0] for r in expected]
