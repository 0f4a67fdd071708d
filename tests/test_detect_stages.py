"""The detection stages as a user runs them on their own CSV of boxes: an OpenCV cascade over
scikit-image's astronaut, scored by pycocotools, and ``cvpipe detect`` on new images."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import yaml
from PIL import Image

from pipeline.detect.drawing import FALSE_POSITIVE, TRUE_POSITIVE, TRUTH
from tests.conftest import run, shipped_params_with

CLI = [sys.executable, "-m", "stages.cli"]
HAAR = "cascade:haarcascade_frontalface_default.xml"
#: The astronaut's face (x0, y0, x1, y1), as annotated by eye for this test.
FACE = (175, 64, 272, 163)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with images, annotations.csv (one good face, one zero-size box) and params."""
    root = tmp_path_factory.mktemp("detect")
    data = root / "faces"
    data.mkdir()
    Image.fromarray(skimage.data.astronaut()).save(data / "astronaut.png")
    Image.fromarray(skimage.data.coffee()).save(data / "coffee.png")       # a negative image
    Image.fromarray(skimage.data.rocket()).save(data / "rocket.png")       # a bad box
    (data / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    rows = ["path,label,xmin,ymin,xmax,ymax", "astronaut.png,face," + ",".join(map(str, FACE)),
            "rocket.png,face,10,10,10,40", "broken.png,face,1,1,5,5"]
    (data / "annotations.csv").write_text("\n".join(rows) + "\n")
    shipped_params_with(
        root,
        detect_data={"source": {"format": "csv", "path": str(data), "images": "",
                                "uiuc_test": "single"},
                     "labels": ["face"], "test_fraction": 0.99, "max_reject_fraction": 0.6},
        detect={"detectors": {"haar": {"model": HAAR, "threshold": 0.0}}},
    )
    return root


def test_cascade_through_detect_data_detect_and_detect_evaluate(project: Path) -> None:
    done = run([*CLI, "detect_data"], project)
    assert "skipped" in done.stderr and "broken.png" in done.stderr
    summary = json.loads((project / "results/detect_data/summary.json").read_text())
    assert summary["rejected"] == 2 and summary["test"]["boxes"] == 1
    rejects = (project / "results/detect_data/rejects.csv").read_text()
    assert "rocket.png" in rejects and "broken.png" in rejects
    run([*CLI, "detect"], project)
    found = json.loads((project / "results/detect/haar.json").read_text())
    assert {Path(entry["path"]).name for entry in found["images"]} == {"astronaut.png", "coffee.png"}
    run([*CLI, "detect_evaluate"], project)
    metrics = json.loads((project / "results/detect_evaluate/metrics.json").read_text())
    assert metrics["haar"]["ap50"] == pytest.approx(1.0)
    assert metrics["haar"]["eer_recall_iou"] == pytest.approx(1.0)
    pr = (project / "results/detect_evaluate/pr/haar.csv").read_text().splitlines()
    assert pr[0] == "recall,precision" and len(pr) > 2
    drawn = Image.open(project / "results/detect_evaluate/images/haar_00.png")
    assert drawn.size == (512, 512)
    pixels = np.asarray(drawn.convert("RGB"))
    for colour in (TRUTH, TRUE_POSITIVE):  # the face's box, and the cascade's hit on it
        assert (pixels == colour).all(axis=-1).sum() > 100, colour
    assert not (pixels == FALSE_POSITIVE).all(axis=-1).any()


def test_cvpipe_detect_prints_draws_and_lists_unreadable_images(project: Path) -> None:
    images = project / "faces"
    done = run([*CLI, "detect", HAAR, str(images / "astronaut.png"), str(images / "broken.png"),
                "--label", "face", "--json", "--out", str(project / "drawn")], project)
    assert "skipped" in done.stderr and "broken.png" in done.stderr
    result = json.loads(done.stdout)
    assert len(result) == 1 and result[0]["detections"][0]["label"] == "face"
    box = result[0]["detections"][0]["box"]
    assert all(abs(a - b) < 15 for a, b in zip(box, FACE, strict=True)), box
    assert Path(result[0]["drawn"]).is_file()
    lines = run([*CLI, "detect", HAAR, str(images), "--label", "face"], project).stdout
    assert "astronaut.png\tface" in lines and "no boxes" in lines  # coffee, rocket: none
    none = run([*CLI, "detect", HAAR, str(images / "broken.png")], project, check=False)
    assert none.returncode == 2 and "no readable image" in none.stderr


def test_a_detector_without_a_model_is_refused_naming_the_key(project: Path, tmp_path: Path) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["detect"]["detectors"] = {"bad": {"threshold": 0.1}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    done = run([*CLI, "detect", "--params", str(tmp_path / "params.yaml")], project, check=False)
    assert done.returncode == 2 and "detect.detectors.bad.model" in done.stderr


def test_unknown_cascade_name_lists_the_shipped_ones(project: Path) -> None:
    done = run([*CLI, "detect", "cascade:nope.xml", str(project / "faces/astronaut.png")], project,
               check=False)
    assert done.returncode == 2 and "nope.xml" in done.stderr
    assert "haarcascade_frontalface_default.xml" in done.stderr
