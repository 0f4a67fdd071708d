"""Transfer learning: backbones by name, features to HDF5, logistic regression, fine-tuning,
the offline ``weights: imagenet`` error, and the real MobileNet weights from ../shared."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import load_params
from pipeline.io.hdf5 import Split, write_arrays
from pipeline.models import backbones
from pipeline.train.history import read_series
from pipeline.train.preprocess import Preprocessor
from tests.conftest import ROOT, venv_env
from tests.conftest import shipped_params_with as params_file

SHARED = ROOT.parent / "shared"
MOBILENET = SHARED / "weights" / "mobilenet_2_5_224_tf_no_top.h5"
FLOWERS = SHARED / "data" / "flowers17"


def stripes(folder: Path, n: int, size: int = 32, channels: int = 1) -> Path:
    """train/val/test.h5 of two easy classes: horizontal against vertical stripes."""
    rng = np.random.default_rng(0)
    for name, count in (("train", n), ("val", n // 4), ("test", n // 4)):
        labels = np.arange(count) % 2
        base = (np.arange(size) // 4 % 2 * 200).astype(np.uint8)
        images = np.where(labels[:, None, None] == 0, base[None, :, None], base[None, None, :])
        noise = rng.integers(0, 40, (count, size, size), dtype=np.uint8)
        images = np.repeat((images + noise)[..., None], channels, axis=-1).astype(np.uint8)
        write_arrays(folder / f"{name}.h5", images, labels, ["horizontal", "vertical"])
    return folder




def env() -> dict[str, str]:
    return {**venv_env(), "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


@pytest.mark.parametrize("name", ["vgg16", "resnet50v2", "mobilenetv2", "efficientnetb0"])
def test_backbones_without_weights_build_and_pool(name: str) -> None:
    import keras

    from pipeline.transfer.features import feature_model

    body = backbones.build(name, "none", (32, 32), alpha=0.35)
    batch = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype(np.float32)
    poolings = ("avg", "max", "flatten")
    heads = [feature_model(body, pooling).output for pooling in poolings]
    together = keras.Model(body.input, heads)  # the three feature models in one graph, one trace
    outputs = together.predict_on_batch(backbones.preprocess_input(name, batch))
    for pooling, rows in zip(poolings, outputs, strict=True):
        assert rows.ndim == 2 and rows.shape[0] == 2
        assert rows.shape[1] == (int(np.prod(body.output_shape[1:])) if pooling == "flatten"
                                 else body.output_shape[-1])


def test_preprocessor_resizes_grey_to_the_backbone_input() -> None:
    pre = Preprocessor(size=(32, 32), rgb=True, backbone="vgg16")
    batch = np.full((3, 12, 12, 1), 100, np.uint8)
    out = pre(batch)
    assert out.shape == (3, 32, 32, 3) and pre.output_shape((12, 12, 1)) == (32, 32, 3)
    # VGG's caffe preprocessing: BGR minus the ImageNet means.
    np.testing.assert_allclose(out[0, 0, 0], [100 - 103.939, 100 - 116.779, 100 - 123.68],
                               rtol=1e-5)
    assert Preprocessor.from_dict(pre.to_dict()) == pre


def test_imagenet_weights_offline_fail_fast_naming_the_fix(tmp_path: Path) -> None:
    stripes(tmp_path / "data", 8)
    params_file(tmp_path, backbone={"weights": "imagenet", "image_size": [128, 128]})
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "stages.extract_features", "--params", "params.yaml",
         "--data", "data", "--out", "features"],
        cwd=tmp_path, env={**env(), "KERAS_HOME": str(tmp_path / "keras")},
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2
    assert "mobilenet_2_5_128_tf_no_top.h5" in done.stderr
    assert "backbone.weights" in done.stderr and "never downloads" in done.stderr
    assert time.monotonic() - began < 60
    assert not (tmp_path / "features").exists()


def test_missing_weights_file_is_a_params_error(tmp_path: Path) -> None:
    from pipeline.config import ParamsError, require_inputs

    path = params_file(tmp_path, backbone={"weights": str(tmp_path / "nope.h5")})
    params = load_params(path)  # the schema checks values; extract_features checks the file
    with pytest.raises(ParamsError) as raised:
        require_inputs(params, "backbone.weights")
    assert raised.value.lines[0].startswith("backbone.weights: no such file")


def test_features_logreg_and_evaluation(tmp_path: Path) -> None:
    from pipeline.evaluate.evaluation import evaluate_model
    from pipeline.transfer import logreg
    from pipeline.transfer.features import FeatureSplit, extract, feature_model

    stripes(tmp_path / "data", 64, size=16)
    params = load_params(params_file(tmp_path, train_logreg={"grid": {"C": [0.1, 1.0]},
                                                             "power": 0.5}))
    model = feature_model(backbones.build("mobilenet", "none", (32, 32), 0.25), "avg")
    pre = Preprocessor(size=(32, 32), rgb=True, backbone="mobilenet")
    for name in ("train", "test"):
        count = extract(model, tmp_path / "data" / f"{name}.h5", tmp_path / "f" / f"{name}.h5",
                        pre, batch_size=10, dtype="float16", flip=True, progress=False)
        assert count == len(Split(tmp_path / "data" / f"{name}.h5"))
    train = FeatureSplit(tmp_path / "f" / "train.h5")
    assert train.features.shape == (64, 256) and np.isfinite(train.features).all()
    search = logreg.fit(train, params.train_logreg, seed=0, verbose=0)
    meta = logreg.save(search, tmp_path / "model", train)
    assert meta["best_params"]["C"] in (0.1, 1.0) and meta["classes"] == train.classes
    power = search.best_estimator_.named_steps["power"]
    assert np.allclose(power.transform(np.array([[-4.0, 0.0, 9.0]])), [[-2.0, 0.0, 3.0]])
    result = evaluate_model(tmp_path / "model", tmp_path / "f" / "test.h5", 32)
    assert result["metrics"]["images"] == 16 and 0.0 <= result["metrics"]["rank1"] <= 1.0


def finetune_cmd(work: Path) -> list[str]:
    return [sys.executable, "-m", "stages.finetune", "--params", "params.yaml", "--data", "data",
            "--out", "model", "--live", "live", "--checkpoint", "ckpt"]


def finetune_params(work: Path, warmup: int, unfreeze: int) -> Path:
    return params_file(work, finetune={
        "warmup": {"epochs": warmup, "optimizer": "rmsprop", "lr": 0.001},
        "unfreeze": {"epochs": unfreeze, "optimizer": "sgd", "lr": 0.01},
        "unfreeze_last": 10, "batch_size": 16,
        "augment": {"flip": True, "rotation": 0.0, "shift": 0.0},
    })


@pytest.mark.slow
def test_finetune_resumes_after_a_kill_in_the_second_phase(tmp_path: Path) -> None:
    """Warm-up (backbone frozen) then unfreezing, one history counted over both phases; killed
    in the second phase, the rerun resumes there; the result evaluates with its preprocessing."""
    from pipeline.evaluate.evaluation import evaluate_model

    stripes(tmp_path / "data", 512)
    finetune_params(tmp_path, 1, 3)
    proc = subprocess.Popen(finetune_cmd(tmp_path), cwd=tmp_path, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    metrics = tmp_path / "live" / "metrics.json"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        if metrics.exists() and json.loads(metrics.read_text() or "{}").get("step", -1) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "fine-tuning finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    killed = proc.communicate()[0]
    assert not (tmp_path / "model" / "model.keras").exists()
    assert "warm-up, body frozen" in killed and "backbone layers unfrozen" in killed, killed
    frozen = int(killed.split("body frozen: ")[1].split()[0].replace(",", ""))
    unfrozen = int(killed.split("unfrozen: ")[1].split()[0].replace(",", ""))
    assert unfrozen > frozen
    epochs = [line.split()[1] for line in killed.splitlines() if line.startswith("epoch ")]
    assert epochs[:2] == ["1/4", "2/4"], killed  # counted over both phases

    resumed = subprocess.run(finetune_cmd(tmp_path), cwd=tmp_path, env=env(),
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming an interrupted run from epoch" in resumed.stdout
    assert "warm-up, body frozen" not in resumed.stdout  # phase 1 is not repeated
    epochs = [line.split()[1] for line in resumed.stdout.splitlines() if line.startswith("epoch ")]
    assert epochs[-1] == "4/4" and "1/4" not in epochs and "2/4" not in epochs  # both phases
    steps, _ = read_series(tmp_path / "live" / "plots" / "metrics" / "train" / "loss.tsv")
    assert steps == [0, 1, 2, 3]  # both phases, one history
    assert not (tmp_path / "ckpt" / "warmup.weights.h5").exists()
    result = evaluate_model(tmp_path / "model", tmp_path / "data" / "test.h5", 8)
    assert result["metrics"]["images"] == 128
    spec = json.loads((tmp_path / "model" / "preprocess.json").read_text())
    assert spec["preprocess"]["backbone"] == "mobilenet" and spec["preprocess"]["rgb"]


@pytest.mark.skipif(not (MOBILENET.exists() and FLOWERS.exists()), reason="needs ../shared")
def test_imagenet_mobilenet_features_separate_two_flower_species(tmp_path: Path) -> None:
    from PIL import Image

    from pipeline.config import TrainLogregParams
    from pipeline.transfer import logreg
    from pipeline.transfer.features import FeatureSplit, extract, feature_model

    classes = sorted(p.name for p in FLOWERS.iterdir() if p.is_dir())[:2]
    images, labels = [], []
    for label, name in enumerate(classes):
        for path in sorted((FLOWERS / name).glob("*.jpg"))[:24]:
            with Image.open(path) as img:
                images.append(np.asarray(img.convert("RGB").resize((128, 128))))
            labels.append(label)
    images, labels = np.stack(images), np.array(labels)
    order = np.random.default_rng(0).permutation(len(labels))
    train, test = order[:32], order[32:]
    write_arrays(tmp_path / "train.h5", images[train], labels[train], classes)
    write_arrays(tmp_path / "test.h5", images[test], labels[test], classes)

    model = feature_model(backbones.build("mobilenet", str(MOBILENET), (128, 128), 0.25), "avg")
    pre = Preprocessor(size=(128, 128), rgb=True, backbone="mobilenet")
    for name in ("train", "test"):
        extract(model, tmp_path / f"{name}.h5", tmp_path / "f" / f"{name}.h5", pre, 16,
                progress=False)
    fitted = logreg.fit(FeatureSplit(tmp_path / "f" / "train.h5"),
                        TrainLogregParams(grid={"C": [1.0]}, cv=2, scale="l2"), 0, verbose=0)
    held = FeatureSplit(tmp_path / "f" / "test.h5")
    assert fitted.best_estimator_.score(held.features, held.labels) >= 0.9
