"""SRCNN: sub-image geometry, the network's alignment with its labels, PSNR/SSIM, `upscale`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from pipeline.generative import superres
from stages.cli import main


def ramp(height: int, width: int) -> np.ndarray:
    """A smooth plane: bicubic resampling reproduces it away from the borders."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    return 0.2 + 0.002 * x + 0.003 * y


def test_patch_corners_and_shapes() -> None:
    hr = np.random.default_rng(0).random((80, 95), dtype=np.float32)
    patches = superres.cut_patches(hr, scale=3, size=33, stride=14, edge=6)
    cropped = superres.modcrop(hr, 3)  # 78 x 93
    rows, cols = len(range(0, 78 - 33 + 1, 14)), len(range(0, 93 - 33 + 1, 14))
    assert patches.inputs.shape == (rows * cols, 33, 33, 1)
    assert patches.labels.shape == (rows * cols, 21, 21, 1)
    lr = superres.degrade(cropped, 3)
    last = rows * cols - 1
    y, x = (rows - 1) * 14, (cols - 1) * 14
    np.testing.assert_array_equal(patches.inputs[last, ..., 0], lr[y:y + 33, x:x + 33])
    np.testing.assert_array_equal(patches.labels[last, ..., 0], cropped[y + 6:y + 27, x + 6:x + 27])


def test_labels_align_with_the_inputs_centre() -> None:
    """On a plane the degraded input equals the sharp image inside, so every interior label must
    equal its input's centre crop; one pixel of misalignment would be off by a slope (>= 0.002)."""
    hr = ramp(120, 150)
    patches = superres.cut_patches(hr, scale=3, size=33, stride=14, edge=6)
    corners = [(y, x) for y in range(0, 120 - 33 + 1, 14) for x in range(0, 150 - 33 + 1, 14)]
    interior = [i for i, (y, x) in enumerate(corners) if 12 <= y <= 120 - 45 and 12 <= x <= 150 - 45]
    assert len(interior) >= 4
    centre = patches.inputs[interior, 6:27, 6:27]
    np.testing.assert_allclose(centre, patches.labels[interior], atol=2e-4)
    shifted = patches.inputs[interior, 7:28, 6:27]
    assert np.abs(shifted - patches.labels[interior]).min() > 1e-3


def test_valid_network_output_is_the_label_window() -> None:
    """An SRCNN whose layers pass the centre tap through returns exactly the input's centre:
    its output has the label's shape and position."""
    from pipeline.generative.srcnn import build

    model = build((4, 2), (9, 1, 5))
    for layer, k in zip(model.layers[1:], (9, 1, 5), strict=True):
        kernel, bias = (w.copy() * 0 for w in layer.get_weights())
        kernel[k // 2, k // 2, 0, 0] = 1.0
        layer.set_weights([kernel, bias])
    patches = superres.cut_patches(np.random.default_rng(1).random((60, 60), dtype=np.float32),
                                   scale=3, size=33, stride=27, edge=superres.border((9, 1, 5)))
    out = np.asarray(model.predict(patches.inputs, verbose=0))
    assert out.shape == patches.labels.shape
    np.testing.assert_allclose(out, patches.inputs[:, 6:27, 6:27], atol=1e-6)


def test_psnr_matches_a_hand_computed_case() -> None:
    reference = np.full((4, 4), 100, np.uint8)
    test = reference.copy()
    test[0, 0] = 116  # one error of 16 over 16 pixels: MSE = 16
    assert superres.psnr(reference, test) == pytest.approx(10 * math.log10(255**2 / 16))
    assert superres.psnr(reference, test) == pytest.approx(36.0896, abs=1e-4)
    assert superres.ssim(reference.repeat(4, 0).repeat(4, 1), reference.repeat(4, 0).repeat(4, 1)) \
        == pytest.approx(1.0)


def test_luminance_is_bt601_studio_range() -> None:
    white = np.full((2, 2, 3), 255, np.uint8)
    black = np.zeros((2, 2, 3), np.uint8)
    assert superres.luminance(white)[0, 0] * 255 == pytest.approx(235)
    assert superres.luminance(black)[0, 0] * 255 == pytest.approx(16)


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """An untrained SRCNN saved as the srcnn stage saves one."""
    from pipeline.generative.srcnn import build
    from pipeline.io.atomic import write_json

    folder = tmp_path / "srcnn"
    folder.mkdir()
    build((8, 4)).save(folder / "model.keras")
    write_json(folder / "srcnn.json", {"scale": 3, "border": 6})
    return folder


def test_upscale_output_is_input_size_times_scale(model_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "in"
    source.mkdir()
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (17, 23, 3), np.uint8)).save(
        source / "odd.png")
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (9, 5), np.uint8), "L").save(
        source / "grey.png")
    (source / "broken.jpg").write_bytes(b"not a jpeg")
    runner = CliRunner()
    one = runner.invoke(main, ["upscale", str(source / "odd.png"), str(tmp_path / "odd_x3.png"),
                               "--scale", "3", "--model", str(model_dir)])
    assert one.exit_code == 0, one.output
    assert Image.open(tmp_path / "odd_x3.png").size == (69, 51)
    many = runner.invoke(main, ["upscale", str(source), str(tmp_path / "out"), "--scale", "2",
                                "--model", str(model_dir)])
    assert many.exit_code == 0, many.output
    assert Image.open(tmp_path / "out" / "grey.png").size == (10, 18)
    assert Image.open(tmp_path / "out" / "odd.png").size == (46, 34)
    assert "skipped" in many.output and "broken.jpg" in many.output


def test_upscale_skips_images_over_the_pixel_limit(model_dir: Path, tmp_path: Path) -> None:
    """A header claiming 8000x6000 (48 Mpx > the 40 Mpx default) is skipped undecoded; before,
    upscale decoded it (and a real 20000x20000 PNG took 3 GB)."""
    from tests.conftest import huge_header_png

    source = tmp_path / "in"
    source.mkdir()
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (9, 5, 3), np.uint8)).save(
        source / "small.png")
    (source / "huge.png").write_bytes(huge_header_png(8000, 6000))
    runner = CliRunner()
    done = runner.invoke(main, ["upscale", str(source), str(tmp_path / "out"), "--scale", "2",
                                "--model", str(model_dir)])
    assert done.exit_code == 0, done.output
    assert "huge.png: too-many-pixels: 8000x6000 > 40000000 pixels" in done.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["small.png"]
    tight = runner.invoke(main, ["upscale", str(source / "small.png"), str(tmp_path / "s.png"),
                                 "--model", str(model_dir), "--max-pixels", "44"])
    assert tight.exit_code == 2, tight.output
    assert "too-many-pixels: 5x9 > 44 pixels" in tight.output


def test_srcnn_stages_apply_ingest_max_pixels(model_dir: Path, tmp_path: Path) -> None:
    """srcnn_data and srcnn_evaluate skip, undecoded, images over ``ingest.max_pixels``."""
    from tests.conftest import shipped_params_with

    photos = tmp_path / "photos"
    photos.mkdir()
    for name, (h, w) in (("small.png", (60, 80)), ("large.png", (90, 120))):
        smooth = (ramp(h, w)[..., None] * np.array([255, 200, 150])).astype(np.uint8)
        Image.fromarray(smooth).save(photos / name)
    params = str(shipped_params_with(
        tmp_path, ingest={"max_pixels": 6000}, srcnn={"filters": [8, 4]},
        srcnn_data={"images": str(photos), "glob": "*.png", "stride": 20},
        srcnn_evaluate={"images": str(photos), "glob": "*.png", "crop": 16}))
    runner = CliRunner()
    data = runner.invoke(main, ["srcnn_data", "--params", params, "--out", str(tmp_path / "d")])
    assert data.exit_code == 0, data.output
    record = json.loads((tmp_path / "d" / "patches.json").read_text())
    assert [Path(p).name for p, _ in record["skipped"]] == ["large.png"]
    assert record["skipped"][0][1] == "too-many-pixels: 120x90 > 6000 pixels"
    scored = runner.invoke(main, ["srcnn_evaluate", "--params", params, "--model", str(model_dir),
                                  "--out", str(tmp_path / "e")])
    assert scored.exit_code == 0, scored.output
    report = json.loads((tmp_path / "e" / "report.json").read_text())
    assert [(Path(r["path"]).name, r["reason"]) for r in report["skipped"]] == [
        ("large.png", "too-many-pixels: 120x90 > 6000 pixels")]


def noisy_photos(folder: Path) -> Path:
    """Two 90x120 RGB ramps with different noise, ``a.png`` and ``b.png``, in ``folder``."""
    folder.mkdir()
    smooth = (ramp(90, 120)[..., None] * np.array([255, 200, 150])).astype(np.uint8)
    for name, seed in (("a.png", 4), ("b.png", 5)):
        noise = np.random.default_rng(seed).integers(0, 40, smooth.shape)
        Image.fromarray((smooth + noise).astype(np.uint8)).save(folder / name)
    return folder


def test_srcnn_data_train_evaluate_stages(tmp_path: Path) -> None:
    """The three stages on two small photos: patches, one epoch, PSNR/SSIM against bicubic."""
    import yaml

    from tests.conftest import ROOT

    photos = noisy_photos(tmp_path / "photos")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["srcnn_data"].update(images=str(photos), glob="a.png", stride=20)
    params["srcnn"].update(epochs=1, filters=[8, 4])
    params["srcnn_evaluate"].update(images=str(photos), glob="b.png", crop=32)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    runner = CliRunner()
    p = str(tmp_path / "params.yaml")
    for args in (["srcnn_data", "--params", p, "--out", str(tmp_path / "data")],
                 ["srcnn", "--params", p, "--data", str(tmp_path / "data"), "--out",
                  str(tmp_path / "model"), "--live", str(tmp_path / "live"), "--checkpoint",
                  str(tmp_path / "ckpt")],
                 ["srcnn_evaluate", "--params", p, "--model", str(tmp_path / "model"), "--out",
                  str(tmp_path / "eval")]):
        result = runner.invoke(main, args)
        assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "data" / "patches.json").read_text())
    assert record["label_size"] == 21 and record["train"] + record["val"] == 3 * 5
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["images"] == 1 and metrics["scale"] == 3 and metrics["skipped"] == 0
    assert json.loads((tmp_path / "eval" / "report.json").read_text()) == {"skipped": []}
    assert 10 < metrics["bicubic_psnr"] < 60 and 0 < metrics["srcnn_ssim"] <= 1
    assert metrics["psnr_gain"] == pytest.approx(metrics["srcnn_psnr"] - metrics["bicubic_psnr"],
                                                 abs=1e-3)
    assert (tmp_path / "eval" / "crops.png").stat().st_size > 0
    assert (tmp_path / "live" / "plots" / "metrics" / "val" / "psnr.tsv").exists()


def test_srcnn_schedule_decays_the_rate(tmp_path: Path) -> None:
    """``srcnn.schedule`` reaches the optimizer: cosine over two epochs prints the rate halfway
    between the peak and ``end_lr`` after the first, ``end_lr`` after the last; constant keeps
    the peak."""
    import yaml

    from tests.conftest import ROOT

    photos = noisy_photos(tmp_path / "photos")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["srcnn_data"].update(images=str(photos), glob="*.png", stride=20)
    runner = CliRunner()
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump(params))
    assert runner.invoke(main, ["srcnn_data", "--params", str(p), "--out",
                                str(tmp_path / "data")]).exit_code == 0
    rates = {}
    for kind in ("cosine", "constant"):
        params["srcnn"].update(epochs=2, filters=[4, 2], lr=0.004,
                               schedule={"kind": kind, "end_lr": 0.0001})
        p.write_text(yaml.safe_dump(params))
        out = tmp_path / kind
        result = runner.invoke(main, ["srcnn", "--params", str(p), "--data", str(tmp_path / "data"),
                                      "--out", str(out / "model"), "--live", str(out / "live"),
                                      "--checkpoint", str(out / "ckpt")])
        assert result.exit_code == 0, result.output
        rates[kind] = [float(line.split("  lr ")[1].split()[0])
                       for line in result.output.splitlines() if line.startswith("epoch ")]
    assert rates["cosine"] == pytest.approx([0.00205, 0.0001], rel=1e-3)
    assert rates["constant"] == [0.004, 0.004]


def test_even_kernel_and_too_small_patch_name_their_keys(tmp_path: Path) -> None:
    import yaml

    from pipeline.config import ParamsError, validate
    from tests.conftest import ROOT

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["srcnn"]["kernels"] = [9, 2, 5]
    with pytest.raises(ParamsError, match=r"srcnn\.kernels|srcnn: .*odd"):
        validate(params)
    params["srcnn"]["kernels"] = [9, 1, 5]
    params["srcnn_data"]["patch_size"] = 12
    with pytest.raises(ParamsError, match=r"srcnn_data\.patch_size: must exceed 12"):
        validate(params)


def test_no_matching_images_exits_naming_the_key(tmp_path: Path) -> None:
    import yaml

    from tests.conftest import ROOT

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["srcnn_data"].update(images=str(tmp_path), glob="*.png")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = CliRunner().invoke(main, ["srcnn_data", "--params", str(tmp_path / "params.yaml"),
                                       "--out", str(tmp_path / "data")])
    assert result.exit_code == 2
    assert "srcnn_data.images" in result.output and "'*.png'" in result.output
    assert not (tmp_path / "data").exists()
