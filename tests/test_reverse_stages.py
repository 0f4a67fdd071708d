"""The dream and stylize stages as a user runs them: the DVC stage writing its folder with dvclive
plots, ``cvpipe dream IMAGE OUT`` / ``cvpipe stylize CONTENT STYLE OUT`` writing one PNG, and bad
input refused with exit 2, naming it, with nothing written (MobileNet alpha 0.25, random weights,
64-pixel images).

The runs that need Keras go through Click's ``CliRunner`` in this process (Keras is imported
once); the refusals made before Keras loads run ``python -m stages.cli`` as a user would.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from click.testing import CliRunner, Result
from PIL import Image

from tests.conftest import MAX_METRICS, numbers_in, run, shipped_params_with

CLI = [sys.executable, "-m", "stages.cli"]
NET = {"name": "mobilenet", "weights": "none", "alpha": 0.25}
#: The astronaut's top 400 rows, 512 wide: 64x50 (width x height) at max_side 64, 46x36 at the
#: smaller of two octaves.
DREAMED_SIZE = (64, 50)
DREAM_KEYS = {"octaves", "steps", "seconds", "loss_first", "loss_last"}
STYLIZE_KEYS = {"steps", "seconds_per_step", "content_last", "style_last", "tv_last", "total_last",
                "style_fraction"}


def dream_section(photos: Path, **overrides: object) -> dict:
    return {"image": str(photos / "astronaut.png"), "net": NET, "max_side": 64, "octaves": 2,
            "iterations": 2, "log_every": 1, **overrides}


def stylize_section(photos: Path, **overrides: object) -> dict:
    return {"content": str(photos / "astronaut.png"), "style": str(photos / "brick.png"),
            "net": NET, "image_size": [40, 40], "iterations": 3, **overrides}


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scikit-image photos as PNGs, a strip too thin for two octaves, and a broken PNG."""
    folder = tmp_path_factory.mktemp("photos")
    Image.fromarray(skimage.data.astronaut()[:400]).save(folder / "astronaut.png")
    Image.fromarray(skimage.data.brick()).save(folder / "brick.png")  # grey: read as RGB
    Image.fromarray(skimage.data.camera()[200:260]).save(folder / "strip.png")  # 64x8 at 64 px
    (folder / "garbage.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not an image at all" * 8)
    return folder


@pytest.fixture(scope="module")
def params(photos: Path) -> Path:
    """The shipped params with the small dream and stylize settings."""
    return shipped_params_with(photos, dream=dream_section(photos), stylize=stylize_section(photos))


def with_params(folder: Path, photos: Path, dream: dict | None = None,
                stylize: dict | None = None) -> Path:
    """``folder/params.yaml``: the small settings with ``dream`` / ``stylize`` keys changed."""
    return shipped_params_with(folder, dream=dream_section(photos, **(dream or {})),
                               stylize=stylize_section(photos, **(stylize or {})))


def invoke(args: list[str], cwd: Path) -> Result:
    """``cvpipe ARGS`` in this process (Keras stays loaded between calls), from ``cwd``."""
    from stages.cli import main

    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(cwd)
        return CliRunner().invoke(main, args)


def refused(done: Result | subprocess.CompletedProcess, *named: str) -> str:
    """The stderr of a run that must have exited 2 naming each of ``named``."""
    code = done.exit_code if isinstance(done, Result) else done.returncode
    output = done.output if isinstance(done, Result) else done.stdout + done.stderr
    assert code == 2, output
    stderr = done.stderr
    for name in named:
        assert name in stderr, (name, stderr)
    return stderr


def tree(folder: Path) -> list[str]:
    """Every file and folder under ``folder``, relative, sorted."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture(scope="module")
def stages_run(params: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Result]]:
    """Both stages run once from a fresh folder, as DVC runs them (default ``--out``)."""
    folder = tmp_path_factory.mktemp("stages")
    return folder, {name: invoke([name, "--params", str(params)], folder)
                    for name in ("dream", "stylize")}


def stage_output(stages_run: tuple[Path, dict[str, Result]], stage: str) -> Path:
    """The stage's results folder, once it ran, saying its net has random weights."""
    folder, results = stages_run
    done = results[stage]
    assert done.exit_code == 0, done.output
    assert f"{stage}.net.weights is none: random weights" in done.stderr
    return folder / "results" / stage


def test_the_dream_stage_writes_its_picture_plots_and_metrics(
        stages_run: tuple[Path, dict[str, Result]], photos: Path) -> None:
    out = stage_output(stages_run, "dream")
    dreamed = Image.open(out / "dream.png")
    assert dreamed.format == "PNG" and dreamed.size == DREAMED_SIZE
    before = Image.open(photos / "astronaut.png").resize(DREAMED_SIZE, Image.Resampling.BICUBIC)
    assert np.abs(np.asarray(dreamed, float) - np.asarray(before, float)).mean() > 1.0
    pair = Image.open(out / "before_after.png")
    assert pair.width == 2 * 256 and pair.height > 256  # two captioned 256-pixel tiles
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) - {"step"} == DREAM_KEYS and numbers_in(metrics) <= MAX_METRICS
    assert metrics["octaves"] == 2 and metrics["steps"] == 4
    rows = (out / "plots/metrics/loss.tsv").read_text().splitlines()
    assert rows[0].split("\t")[-1] == "loss" and len(rows) == 1 + 4
    images = {str(p.relative_to(out / "plots/images")) for p in (out / "plots/images").rglob("*.png")}
    assert images == {"octave_1/step_0000.png", "octave_1/step_0001.png",
                      "octave_2/step_0002.png", "octave_2/step_0003.png"}
    assert Image.open(out / "plots/images/octave_1/step_0000.png").size == (46, 36)


def test_the_stylize_stage_writes_its_picture_plots_and_metrics(
        stages_run: tuple[Path, dict[str, Result]]) -> None:
    out = stage_output(stages_run, "stylize")
    stylized = Image.open(out / "stylized.png")
    assert stylized.format == "PNG" and stylized.size == (40, 40)
    pair = Image.open(out / "before_after.png")
    assert pair.width == 3 * 256 and pair.height > 256  # content, style, result
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) - {"step"} == STYLIZE_KEYS and numbers_in(metrics) <= MAX_METRICS
    assert metrics["steps"] == 3 and 0 < metrics["style_fraction"] < 1  # the style loss fell
    for name in ("content", "style", "tv", "total"):
        rows = (out / f"plots/metrics/{name}.tsv").read_text().splitlines()
        assert rows[0].split("\t")[-1] == name and len(rows) == 1 + 3, name
    assert list((out / "plots/images").rglob("*.png"))
    assert sorted(p.name for p in out.parent.parent.iterdir()) == ["results"]  # nothing beside it


def test_cvpipe_dream_writes_exactly_the_output(params: Path, photos: Path, tmp_path: Path) -> None:
    output = tmp_path / "dreamed.png"
    done = invoke(["dream", str(photos / "astronaut.png"), str(output), "--params", str(params)],
                  tmp_path)
    assert done.exit_code == 0, done.output
    assert "random weights" in done.stderr and str(output) in done.stdout
    assert tree(tmp_path) == ["dreamed.png"]
    dreamed = Image.open(output)
    assert dreamed.format == "PNG" and dreamed.size == DREAMED_SIZE and dreamed.mode == "RGB"


def test_cvpipe_stylize_writes_exactly_the_output_making_its_folder(
        params: Path, photos: Path, tmp_path: Path) -> None:
    output = tmp_path / "new" / "stylized.png"
    done = invoke(["stylize", str(photos / "astronaut.png"), str(photos / "brick.png"), str(output),
                   "--params", str(params)], tmp_path)
    assert done.exit_code == 0, done.output
    assert tree(tmp_path) == ["new", "new/stylized.png"]
    stylized = Image.open(output)
    assert stylized.format == "PNG" and stylized.size == (40, 40)


def test_a_layer_the_network_lacks_is_named_with_the_valid_ones(photos: Path, tmp_path: Path) -> None:
    params = with_params(tmp_path, photos, dream={"layers": {"conv_pw_99_relu": 1.0}},
                         stylize={"content_layer": "block5_conv2"})
    dreamed = invoke(["dream", "--params", str(params), "--out", str(tmp_path / "d")], tmp_path)
    refused(dreamed, "'conv_pw_99_relu'", "conv_pw_5_relu")
    styled = invoke(["stylize", str(photos / "astronaut.png"), str(photos / "brick.png"),
                     str(tmp_path / "s.png"), "--params", str(params)], tmp_path)
    refused(styled, "'block5_conv2'", "conv_pw_5_relu")
    assert tree(tmp_path) == ["params.yaml"]


def test_an_image_too_thin_for_the_octaves_is_refused(photos: Path, tmp_path: Path) -> None:
    params = with_params(tmp_path, photos, dream={"image": str(photos / "strip.png")})
    stage = invoke(["dream", "--params", str(params), "--out", str(tmp_path / "d")], tmp_path)
    refused(stage, "dream.max_side 64", "2 octaves", ">= 32 pixels")
    one = invoke(["dream", str(photos / "strip.png"), str(tmp_path / "x.png"), "--params",
                  str(params)], tmp_path)
    refused(one, "dream.octave_scale")
    assert tree(tmp_path) == ["params.yaml"]


def test_unreadable_and_missing_images_are_named(params: Path, photos: Path, tmp_path: Path) -> None:
    garbage, missing = photos / "garbage.png", tmp_path / "nope.png"
    refused(run([*CLI, "dream", str(garbage), "x.png", "--params", str(params)], tmp_path,
                check=False), "IMAGE", str(garbage), "not a readable image")
    refused(run([*CLI, "dream", str(missing), "x.png", "--params", str(params)], tmp_path,
                check=False), "IMAGE: no such image", str(missing))
    refused(run([*CLI, "stylize", str(photos / "astronaut.png"), str(garbage), "x.png", "--params",
                 str(params)], tmp_path, check=False), "STYLE", str(garbage))
    staged = with_params(tmp_path, photos, dream={"image": str(missing)},
                         stylize={"style": str(garbage)})
    refused(run([*CLI, "dream", "--params", str(staged), "--out", "d"], tmp_path, check=False),
            "dream.image", str(missing))
    refused(run([*CLI, "stylize", "--params", str(staged), "--out", "s"], tmp_path, check=False),
            "stylize.style", str(garbage), "not a readable image")
    assert tree(tmp_path) == ["params.yaml"]


def test_a_missing_weights_file_names_the_key(photos: Path, tmp_path: Path) -> None:
    nope = {"net": {**NET, "weights": "/nope.h5"}}
    params = with_params(tmp_path, photos, dream=nope, stylize=nope)
    refused(run([*CLI, "dream", "--params", str(params), "--out", "d"], tmp_path, check=False),
            "dream.net.weights", "/nope.h5")
    refused(run([*CLI, "dream", str(photos / "astronaut.png"), "x.png", "--params", str(params)],
                tmp_path, check=False), "dream.net.weights", "/nope.h5")
    refused(run([*CLI, "stylize", "--params", str(params), "--out", "s"], tmp_path, check=False),
            "stylize.net.weights", "/nope.h5")
    assert tree(tmp_path) == ["params.yaml"]


def test_an_input_without_its_output_is_a_usage_error(params: Path, photos: Path,
                                                      tmp_path: Path) -> None:
    image = str(photos / "astronaut.png")
    refused(run([*CLI, "dream", image, "--params", str(params)], tmp_path, check=False),
            "give both IMAGE and OUTPUT")
    refused(run([*CLI, "stylize", image, image, "--params", str(params)], tmp_path, check=False),
            "give CONTENT, STYLE and OUTPUT")
    assert tree(tmp_path) == []
