"""Sources, the bad-image corpus, conversion to channels, and the ingest reports."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.config import IngestParams, SourceParams
from pipeline.data.ingest import TooManyRejects, check_rejects, ingest, write_manifest, write_reports
from pipeline.io.images import load, to_channels
from pipeline.io.tables import read_csv
from tests.conftest import make_bad_corpus, make_class_folders, write_image


def params_for(path: Path, kind: str = "folder", **extra) -> IngestParams:
    return IngestParams(source=SourceParams(kind=kind, path=str(path)), workers=1, **extra)


def test_class_folders(in_tmp: Path) -> None:
    make_class_folders(in_tmp / "src", {"cat": 3, "dog": 2})
    (in_tmp / "src" / "cat" / ".DS_Store").write_bytes(b"junk")
    (in_tmp / "src" / "dog" / "notes.txt").write_text("not an image")
    result = ingest(params_for(in_tmp / "src"))
    assert result.classes == ["cat", "dog"]
    assert [r["label"] for r in result.rows] == ["cat"] * 3 + ["dog"] * 2
    assert [(r.reason, r.counted) for r in result.rejects] == [("extension", False)]
    assert result.summary()["reject_fraction"] == 0.0


def test_labels_from_file_names(in_tmp: Path) -> None:
    for i in range(3):
        write_image(in_tmp / "train" / f"cat.{i}.jpg", i, fmt="JPEG")
        write_image(in_tmp / "train" / f"dog.{i}.jpg", 10 + i, fmt="JPEG")
    write_image(in_tmp / "train" / "nested" / "dog.99.jpg", 99, fmt="JPEG")
    write_image(in_tmp / "train" / "_unlabelled.jpg", 100, fmt="JPEG")
    params = params_for(in_tmp / "train", "filename")
    params.source.pattern = r"^(?P<label>[a-z]+)\.\d+\."
    result = ingest(params)
    labels = sorted(r["label"] for r in result.rows)
    assert labels == ["cat"] * 3 + ["dog"] * 4
    assert [(Path(r.path).name, r.reason) for r in result.rejects] == [
        ("_unlabelled.jpg", "no-label")
    ]


def test_csv_manifest_relative_and_escaping_paths(in_tmp: Path) -> None:
    root = in_tmp / "set"
    write_image(root / "imgs" / "a.png", 1)
    write_image(root / "imgs" / "b.png", 2)
    write_image(in_tmp / "outside.png", 3)
    (root / "labels.csv").write_text(
        "path,label\nimgs/a.png,x\nimgs/b.png,y\n../outside.png,x\nimgs/missing.png,y\n"
    )
    result = ingest(params_for(root / "labels.csv", "csv"))
    assert [(Path(str(r["path"])).name, r["label"]) for r in result.rows] == [
        ("a.png", "x"), ("b.png", "y")
    ]
    assert sorted(r.reason for r in result.rejects) == ["escapes-root", "missing"]


def test_bad_image_corpus_is_sorted_out(in_tmp: Path) -> None:
    expected = make_bad_corpus(in_tmp / "src" / "odd")
    make_class_folders(in_tmp / "src", {"fine": 2})
    result = ingest(params_for(in_tmp / "src", max_reject_fraction=0.5))
    rejected = {Path(r.path).name: r.reason for r in result.rejects}
    accepted = {Path(str(r["path"])).name for r in result.rows}
    assert rejected == {name: why for name, why in expected.items() if why}
    assert accepted >= {name for name, why in expected.items() if why is None}
    rotated = next(r for r in result.rows if str(r["path"]).endswith("rotated.jpg"))
    assert (rotated["width"], rotated["height"]) == (20, 40)

    write_reports(result, in_tmp / "reports")
    with (in_tmp / "reports" / "rejects.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {Path(r["path"]).name for r in rows} == set(rejected)
    assert all(r["reason"] and r["counted"] == "1" for r in rows)
    # summary.json (DVC metrics) holds the headline counts, report.json the breakdowns.
    summary = json.loads((in_tmp / "reports" / "summary.json").read_text())
    assert summary["rejected"] == len(rejected) and "images_per_class" not in summary
    report = json.loads((in_tmp / "reports" / "report.json").read_text())
    assert sum(report["rejects_by_reason"].values()) == len(rejected)
    assert report["images_per_class"]["fine"] == 2


def test_too_many_rejects_fail_but_report_first(in_tmp: Path) -> None:
    make_bad_corpus(in_tmp / "src" / "odd")
    make_class_folders(in_tmp / "src", {"fine": 2})
    params = params_for(in_tmp / "src", max_reject_fraction=0.1)
    result = ingest(params)
    write_reports(result, in_tmp / "reports")
    with pytest.raises(TooManyRejects, match=r"4 of 12 images rejected"):
        check_rejects(result, params)
    assert (in_tmp / "reports" / "rejects.csv").exists()


def test_duplicates_are_reported(in_tmp: Path) -> None:
    make_class_folders(in_tmp / "src", {"a": 2, "b": 2})
    first = in_tmp / "src" / "a" / "img_00000.png"
    (in_tmp / "src" / "b" / "copy.png").write_bytes(first.read_bytes())
    result = ingest(params_for(in_tmp / "src"))
    assert len(result.duplicates) == 1
    assert result.summary()["duplicate_label_conflicts"] == 1
    write_manifest(result, in_tmp / "out")
    rows = read_csv(in_tmp / "out" / "manifest.csv")
    assert len(rows) == 5
    assert len({r["sha256"] for r in rows}) == 4


@pytest.mark.parametrize("mode", ["CMYK", "RGBA", "P", "LA", "1"])
def test_modes_convert_to_rgb_and_grey(mode: str) -> None:
    img = Image.new("RGB", (4, 3), (200, 100, 50)).convert(mode)
    assert to_channels(img, 3).mode == "RGB"
    assert to_channels(img, 1).mode == "L"


def test_sixteen_bit_scales_to_eight(in_tmp: Path) -> None:
    make_bad_corpus(in_tmp)
    grey = load(in_tmp / "sixteen.png", (10, 20), 1)
    assert grey.shape == (10, 20, 1)
    assert grey[0, 0, 0] == 100 and grey[0, -1, 0] == 255


def test_exif_orientation_applies_before_resize(in_tmp: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20] = 255  # left half white as stored
    Image.fromarray(pixels).save(in_tmp / "r.png", exif=exif)
    shown = load(in_tmp / "r.png", (40, 20), 3)  # displayed: 20 wide, 40 tall, top half white
    assert shown.shape == (40, 20, 3)
    assert shown[:20].mean() > 250 and shown[20:].mean() < 5


def test_jpeg_draft_decoding_matches_full_decode(in_tmp: Path) -> None:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    big = Image.fromarray(base).resize((800, 600), Image.Resampling.BICUBIC)
    big.save(in_tmp / "big.jpg", quality=95)
    drafted = load(in_tmp / "big.jpg", (60, 80), 3).astype(int)
    with Image.open(in_tmp / "big.jpg") as img:
        full = np.asarray(img.convert("RGB").resize((80, 60), Image.Resampling.BILINEAR)).astype(int)
    assert np.abs(drafted - full).mean() < 4


def test_aspect_resize_crops_centre(in_tmp: Path) -> None:
    pixels = np.zeros((10, 30, 3), np.uint8)
    pixels[:, 10:20] = 255  # white centre third
    Image.fromarray(pixels).save(in_tmp / "wide.png")
    out = load(in_tmp / "wide.png", (10, 10), 3, resize="aspect", interpolation="nearest")
    assert out.shape == (10, 10, 3) and out.min() == 255
