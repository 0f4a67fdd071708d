"""DCGAN: a tiny model trains and draws samples, `generate`, resume after a kill, the GAN score."""

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
import yaml
from click.testing import CliRunner
from PIL import Image

from pipeline.generative.gan_score import class_stats, fit_images
from pipeline.io.hdf5 import write_arrays
from stages.cli import main
from tests.conftest import ROOT, venv_env

pytestmark = pytest.mark.slow


def blobs(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Grey images of a bright square at one of two places (class 0 left, 1 right)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    images = rng.integers(0, 40, (n, size, size, 1)).astype(np.uint8)
    half = size // 2
    for image, label in zip(images, labels, strict=True):
        image[2:half + 2, label * half:(label + 1) * half] = 220
    return images, labels


def write_params(folder: Path, **dcgan) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["dcgan"].update({"image_size": [8, 8], "generator_filters": [8, 4],
                            "discriminator_filters": [4, 8], "epochs": 2, "batch_size": 16,
                            "grid": 3, **dcgan})
    params["gan_score"].update(samples=40, batch_size=16)
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny DCGAN trained for 2 epochs of 3 steps by the dcgan stage."""
    work = tmp_path_factory.mktemp("dcgan")
    images, labels = blobs(40, 8)
    write_arrays(work / "data" / "train.h5", images, labels, ["left", "right"])
    write_arrays(work / "data" / "test.h5", *blobs(20, 8, seed=1), ["left", "right"])
    write_params(work)
    result = CliRunner().invoke(main, [
        "dcgan", "--params", str(work / "params.yaml"), "--data", str(work / "data"),
        "--out", str(work / "model"), "--live", str(work / "live"),
        "--checkpoint", str(work / "ckpt")])
    assert result.exit_code == 0, result.output
    return work


def test_tiny_dcgan_trains_and_saves_samples(trained: Path) -> None:
    model = trained / "model"
    assert (model / "generator.keras").stat().st_size > 0
    meta = json.loads((model / "dcgan.json").read_text())
    assert meta["size"] == [8, 8] and meta["latent_dim"] == 100
    grids = sorted((trained / "live" / "plots" / "images" / "samples").iterdir())
    assert [g.name for g in grids] == ["epoch_001.png", "epoch_002.png"]
    with Image.open(grids[-1]) as grid:  # 3x3 tiles of 8 px with 2 px gaps, enlarged
        assert grid.width % (3 * 8 + 4 * 2) == 0
    steps = (trained / "live" / "plots" / "metrics" / "train" / "d_loss.tsv").read_text()
    assert len(steps.strip().splitlines()) == 3  # header + 2 epochs
    assert (trained / "live" / "curves.png").stat().st_size > 0
    assert json.loads((trained / "ckpt" / "state.json").read_text())["complete"] is True


def test_generate_writes_n_images_repeatably(trained: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    for name in ("a", "b"):
        result = runner.invoke(main, ["generate", str(trained / "model"), "5", str(tmp_path / name),
                                      "--seed", "3"])
        assert result.exit_code == 0, result.output
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == ["grid.png"] + [f"sample_{i:04d}.png" for i in range(5)]
    with Image.open(tmp_path / "a" / "sample_0004.png") as image:
        assert image.size == (8, 8) and image.mode == "L"
    assert (tmp_path / "a" / "sample_0002.png").read_bytes() == \
        (tmp_path / "b" / "sample_0002.png").read_bytes()
    assert "Sample N images" in runner.invoke(main, ["generate", "--help"]).output


def test_gan_score_reports_confidence_coverage_and_entropy(trained: Path) -> None:
    import keras

    from pipeline.train.preprocess import Preprocessor, save_spec

    classifier = trained / "classifier"
    classifier.mkdir(exist_ok=True)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(2, activation="softmax")])
    model.save(classifier / "model.keras")
    save_spec(classifier / "preprocess.json", Preprocessor(), classes=["left", "right"],
              size=[8, 8], channels=1, resize="simple", interpolation="bilinear")
    params = yaml.safe_load((trained / "params.yaml").read_text())
    params["gan_score"]["classifier"] = str(classifier)
    (trained / "params.yaml").write_text(yaml.safe_dump(params))
    result = CliRunner().invoke(main, [
        "gan_score", "--params", str(trained / "params.yaml"), "--data", str(trained / "data"),
        "--generator", str(trained / "model"), "--out", str(trained / "score")])
    assert result.exit_code == 0, result.output
    metrics = json.loads((trained / "score" / "metrics.json").read_text())
    generated, real = metrics["generated"], metrics["real"]
    assert generated["images"] == 40 and real["images"] == 20 and real["split"] == "test"
    assert 0.5 <= generated["mean_confidence"] <= 1.0
    assert 1 <= generated["classes_hit"] <= 2 and metrics["max_entropy_bits"] == 1.0
    assert metrics["classes"] == 2 and "classes" not in generated and "classes" not in real
    rows = (trained / "score" / "histogram.csv").read_text().splitlines()
    assert rows[0] == "class,generated,real" and len(rows) == 3
    assert sum(int(r.split(",")[1]) for r in rows[1:]) == 40


def test_class_stats_by_hand() -> None:
    even = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6]])
    stats = class_stats(even, ["a", "b"], min_share=0.01)
    assert stats["mean_confidence"] == pytest.approx(0.75)
    assert stats["classes_hit"] == 2 and stats["entropy_bits"] == pytest.approx(1.0)
    collapsed = class_stats(np.array([[0.6, 0.3, 0.1]] * 10), ["a", "b", "c"], min_share=0.01)
    assert collapsed["classes_hit"] == 1 and collapsed["entropy_bits"] == 0.0
    assert collapsed["max_entropy_bits"] == pytest.approx(np.log2(3), abs=1e-4)
    skewed = np.array([[1.0, 0.0]] * 99 + [[0.0, 1.0]])
    assert class_stats(skewed, ["a", "b"], min_share=0.05)["classes_hit"] == 1


def test_fit_images_resizes_and_converts() -> None:
    images = np.zeros((3, 16, 16, 1), np.uint8)
    assert fit_images(images, (28, 28), 3).shape == (3, 28, 28, 3)
    assert fit_images(images, (16, 16), 1) is images


def test_bad_size_names_the_key() -> None:
    from pipeline.config import ParamsError, validate

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["dcgan"]["image_size"] = [30, 30]
    params["dcgan"]["generator_filters"] = [16, 8, 4]
    with pytest.raises(ParamsError, match=r"dcgan: image_size \[30, 30\] must be divisible by 8"):
        validate(params)


def test_dcgan_resumes_after_kill(tmp_path: Path) -> None:
    images, labels = blobs(1600, 16)
    write_arrays(tmp_path / "data" / "train.h5", images, labels, ["left", "right"])
    write_params(tmp_path, image_size=[16, 16], epochs=3, batch_size=8)
    cmd = [sys.executable, "-m", "stages.dcgan", "--params", str(tmp_path / "params.yaml"),
           "--data", str(tmp_path / "data"), "--out", str(tmp_path / "model"),
           "--live", str(tmp_path / "live"), "--checkpoint", str(tmp_path / "ckpt")]
    env = {**venv_env(), "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    backup = tmp_path / "ckpt" / "backup" / "training_metadata.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and not backup.exists():
        time.sleep(0.05)
    time.sleep(0.3)  # into the second epoch
    assert proc.poll() is None, "training finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "model" / "generator.keras").exists()
    resumed = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming an interrupted run from epoch" in resumed.stdout
    epochs = [line.split()[1] for line in resumed.stdout.splitlines() if line.startswith("epoch ")]
    assert epochs[0] != "1/3" and epochs[-1] == "3/3"
    rows = (tmp_path / "live" / "plots" / "metrics" / "train" / "g_loss.tsv").read_text()
    assert [line.split("\t")[0] for line in rows.strip().splitlines()[1:]] == ["0", "1", "2"]
    assert (tmp_path / "model" / "generator.keras").exists()


def test_gan_score_without_a_generator_exits_2_naming_the_folder(tmp_path: Path) -> None:
    """A --generator folder with no generator.keras: exit 2 naming it, nothing written."""
    (tmp_path / "hdf5").mkdir()
    (tmp_path / "dcgan").mkdir()
    result = CliRunner().invoke(main, [
        "gan_score", "--params", str(ROOT / "params.yaml"), "--data", str(tmp_path / "hdf5"),
        "--generator", str(tmp_path / "dcgan"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert f"no generator.keras in {tmp_path / 'dcgan'}" in result.output
    assert not (tmp_path / "out").exists()
