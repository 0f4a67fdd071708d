"""Annotated images: the CSV, VOC, COCO and UIUC readers, their checks, the split, the scenes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from pipeline.config.detect import DetectDataParams, DetectSourceParams, ScenesParams
from pipeline.detect.annotations import CSV_FIELDS, check_rejects, load, write
from pipeline.detect.boxes import AnnotatedImage, Box, read_annotations, write_annotations
from pipeline.detect.scenes import digit_patch, paste, write_scenes
from pipeline.io.errors import InputError
from tests.conftest import SHARED, write_image

UIUC = SHARED / "data" / "uiuc_cars" / "CarData"


def params(path: Path | str, fmt: str = "csv", **extra) -> DetectDataParams:
    source = {key: extra.pop(key) for key in ("images", "uiuc_test") if key in extra}
    return DetectDataParams(source=DetectSourceParams(format=fmt, path=str(path), **source), **extra)


def write_rows(path: Path, rows: list[tuple]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_FIELDS)
        writer.writerows(rows)
    return path


def by_path(data) -> dict[str, AnnotatedImage]:
    return {image.path: image for image in [*data.train, *data.test]}


def test_csv_boxes_and_negatives(in_tmp: Path) -> None:
    root = in_tmp / "src"
    write_image(root / "a.png", 1, (40, 30))
    write_image(root / "b.png", 2, (40, 30))
    write_image(root / "sub" / "unlisted.png", 3, (20, 20))
    write_image(root / "marked.png", 4, (20, 20))
    (root / "notes.txt").write_text("not an image")
    write_rows(root / "annotations.csv", [
        ("a.png", "dog", 1, 2, 11, 12), ("a.png", "cat", 20, 5, 39.5, 29), ("b.png", "cat", 0, 0, 10, 10),
        ("marked.png", "", "", "", "", ""),
    ])
    data = load(params(root, test_fraction=0.0), seed=0, max_pixels=10**6)
    assert data.test == [] and data.rejects == [] and data.ignored == [] and data.clipped == 0
    assert data.labels == ["cat", "dog"]
    images = by_path(data)
    # stored relative to the working directory, as ingest stores its paths
    assert sorted(images) == ["src/a.png", "src/b.png", "src/marked.png", "src/sub/unlisted.png"]
    assert images["src/a.png"].boxes == [Box("dog", 1, 2, 11, 12), Box("cat", 20, 5, 39.5, 29)]
    assert (images["src/a.png"].width, images["src/a.png"].height) == (40, 30)
    assert images["src/marked.png"].boxes == [] and images["src/sub/unlisted.png"].boxes == []
    summary = data.summary()
    assert summary["train"] == {"images": 4, "boxes": 3, "negatives": 2}
    assert summary["test"] == {"images": 0, "boxes": 0, "negatives": 0}


def test_csv_bad_rows_are_listed(in_tmp: Path) -> None:
    root = in_tmp / "src"
    for index, name in enumerate(["ok", "zero", "outside", "partly", "strange", "numbers", "short"]):
        write_image(root / f"{name}.png", index, (40, 30))
    (root / "broken.png").write_bytes(b"not a png at all")
    write_rows(root / "boxes.csv", [
        ("ok.png", "car", 1, 1, 5, 5),
        ("zero.png", "car", 5, 5, 5, 9),
        ("outside.png", "car", 41, 0, 50, 10),
        ("partly.png", "car", -4, 20, 10, 35),
        ("strange.png", "car", 1, 1, 5, 5), ("strange.png", "boat", 2, 2, 8, 8),
        ("broken.png", "car", 1, 1, 5, 5),
        ("numbers.png", "car", "one", 1, 5, 5),
        ("short.png", "car", 1, 1),
        ("missing.png", "car", 1, 1, 5, 5),
    ])
    data = load(params(root / "boxes.csv", labels=["car"], max_reject_fraction=1.0), 0, 10**6)
    rejects = {path: (reason, detail) for path, reason, detail in data.rejects}
    assert {path: reason for path, (reason, _) in rejects.items()} == {
        "src/zero.png": "empty-box", "src/outside.png": "box-outside", "src/broken.png": "not-an-image",
        "src/numbers.png": "bad-row", "src/short.png": "bad-row", "src/missing.png": "missing"}
    assert "line 9" in rejects["src/numbers.png"][1] and "line 10" in rejects["src/short.png"][1]
    assert data.ignored == [("src/strange.png", "unknown-label", "label 'boat' is not in detect_data.labels")]
    images = by_path(data)
    assert sorted(images) == ["src/ok.png", "src/partly.png", "src/strange.png"]
    assert images["src/partly.png"].boxes == [Box("car", 0, 20, 10, 30, (-4, 20, 10, 35))]
    assert images["src/strange.png"].boxes == [Box("car", 1, 1, 5, 5)]
    assert data.clipped == 1 and data.labels == ["car"]
    assert data.summary()["rejects_by_reason"] == {"bad-row": 2, "box-outside": 1, "empty-box": 1,
                                                   "missing": 1, "not-an-image": 1}

    write(data, in_tmp / "out")
    with (in_tmp / "out" / "rejects.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["reason"] for r in rows].count("unknown-label") == 1 and len(rows) == 7
    summary = json.loads((in_tmp / "out" / "summary.json").read_text())
    assert summary["rejected"] == 6 and summary["clipped_boxes"] == 1
    train, labels = read_annotations(in_tmp / "out" / "train.json")
    test, _ = read_annotations(in_tmp / "out" / "test.json")
    assert labels == ["car"]
    assert {i.path: i.boxes for i in train + test} == {i.path: i.boxes for i in images.values()}


def test_too_many_rejects(in_tmp: Path) -> None:
    root = in_tmp / "src"
    for index in range(3):
        write_image(root / f"img{index}.png", index, (20, 20))
    write_rows(root / "annotations.csv", [("img0.png", "car", 0, 0, 0, 5), ("img1.png", "car", 0, 0, 5, 5)])
    with pytest.raises(InputError, match=r"1 of 3 images rejected .*max_reject_fraction=0.1") as info:
        load(params(root), 0, 10**6)
    assert any("src/img0.png: empty-box" in line for line in info.value.lines)
    data = load(params(root), 0, 10**6, check_fraction=False)
    check_rejects(data, 0.5)  # one in three is within a half
    assert load(params(root, max_reject_fraction=0.34), 0, 10**6).rejects == data.rejects
    (root / "img1.png").write_bytes(b"")
    (root / "img2.png").write_bytes(b"")
    with pytest.raises(InputError, match="all 3 images rejected"):
        load(params(root, max_reject_fraction=1.0), 0, 10**6)


def voc_xml(filename: str, size: tuple[int, int], objects: list[tuple]) -> str:
    parts = [f"<annotation><folder>x</folder><filename>{filename}</filename>",
             f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>"]
    for name, *corners in objects:
        tags = "".join(f"<{t}>{v}</{t}>"
                       for t, v in zip(("xmin", "ymin", "xmax", "ymax"), corners, strict=True))
        parts.append(f"<object><name>{name}</name><difficult>0</difficult><bndbox>{tags}</bndbox></object>")
    return "".join(parts) + "</annotation>"


def test_voc(tmp_path: Path) -> None:
    xml, images = tmp_path / "Annotations", tmp_path / "JPEGImages"
    xml.mkdir()
    for index, name in enumerate(["one", "empty", "wrong"]):
        write_image(images / f"{name}.jpg", index, (50, 40), "JPEG")
    objects = [("person", 11, 21, 40, 40), ("dog", 1, 1, 50, 9)]
    (xml / "one.xml").write_text(voc_xml("one.jpg", (50, 40), objects))
    (xml / "empty.xml").write_text(voc_xml("empty.jpg", (50, 40), []))
    (xml / "wrong.xml").write_text(voc_xml("wrong.jpg", (100, 80), [("dog", 1, 1, 5, 5)]))
    (xml / "cut.xml").write_text("<annotation><filename>one.jpg")
    data = load(params(xml, "voc", images=str(images), test_fraction=0.0, max_reject_fraction=0.5), 0, 10**6)
    images_by_name = {Path(i.path).name: i for i in data.train}
    assert sorted(images_by_name) == ["empty.jpg", "one.jpg"]
    # 1-based inclusive corners become 0-based x0 and x1 = xmax
    assert images_by_name["one.jpg"].boxes == [Box("person", 10, 20, 40, 40), Box("dog", 0, 0, 50, 9)]
    assert images_by_name["empty.jpg"].boxes == []
    assert sorted((Path(p).name, reason) for p, reason, _ in data.rejects) == [
        ("cut.xml", "bad-annotation"), ("wrong.jpg", "size-mismatch")]
    assert data.labels == ["dog", "person"] and data.clipped == 0


def test_coco_round_trip(tmp_path: Path) -> None:
    for index, name in enumerate(["a", "b", "c"]):
        write_image(tmp_path / "imgs" / f"{name}.png", index, (32, 24))
    original = [
        AnnotatedImage("imgs/a.png", 32, 24,
                       [Box("cat", 1.5, 2, 10, 20), Box("dog", 12, 0, 32, 8, (12, -3, 33, 8))]),
        AnnotatedImage("imgs/b.png", 32, 24, []),
        AnnotatedImage("imgs/c.png", 32, 24, [Box("dog", 0, 0, 5, 5)]),
    ]
    write_annotations(tmp_path / "annotations.json", original, ["dog", "cat"])
    data = load(params(tmp_path, "coco", test_fraction=0.0), 0, 10**6)
    assert data.rejects == [] and data.labels == ["cat", "dog"]
    got = {Path(i.path).relative_to(tmp_path).as_posix(): i for i in data.train}
    assert {k: (v.width, v.height, v.boxes) for k, v in got.items()} == {
        i.path: (i.width, i.height, i.boxes) for i in original}

    coco = json.loads((tmp_path / "annotations.json").read_text())
    coco["annotations"][0]["bbox"] = [1, 2, 0, 5]  # no width
    coco["annotations"].append({"id": 9, "image_id": 77, "category_id": 1, "bbox": [0, 0, 1, 1]})
    (tmp_path / "other.json").write_text(json.dumps(coco))
    data = load(params(tmp_path / "other.json", "coco", max_reject_fraction=1.0), 0, 10**6)
    assert sorted((Path(p).name, reason) for p, reason, _ in data.rejects) == [
        ("a.png", "empty-box"), ("other.json", "bad-annotation")]


@pytest.mark.skipif(not UIUC.is_dir(), reason=f"no UIUC cars at {UIUC}")
@pytest.mark.parametrize(("test_set", "images", "boxes"), [("single", 170, 200), ("multi", 108, 139)])
def test_uiuc(test_set: str, images: int, boxes: int) -> None:
    data = load(params(UIUC, "uiuc", uiuc_test=test_set), 0, 10**6)
    assert data.rejects == [] and data.labels == ["car"]
    positives = [i for i in data.train if i.boxes]
    assert len(positives) == 550 and len(data.train) - len(positives) == 500
    assert all(i.boxes == [Box("car", 0, 0, 100, 40)] for i in positives)
    assert len(data.test) == images and sum(len(i.boxes) for i in data.test) == boxes
    # boxes reaching past the image are clipped and keep their annotated corners
    clipped = [b for i in data.test for b in i.boxes if b.source is not None]
    assert len(clipped) == data.clipped >= 18
    for image in data.test:
        for box in image.boxes:
            assert 0 <= box.x0 < box.x1 <= image.width and 0 <= box.y0 < box.y1 <= image.height
    if test_set == "single":
        first = next(i for i in data.test if i.path.endswith("TestImages/test-1.pgm"))
        assert first.boxes == [Box("car", 20, 61, 120, 101), Box("car", 140, 63, 240, 103)]


def test_split_is_stable(tmp_path: Path) -> None:
    rows = []
    for index in range(24):
        write_image(tmp_path / f"img{index:02d}.png", index, (16, 16))
        rows.append((f"img{index:02d}.png", "car", 1, 1, 9, 9))
    write_rows(tmp_path / "annotations.csv", rows)

    def split(seed: int) -> list[str]:
        return sorted(i.path for i in load(params(tmp_path, test_fraction=0.5), seed, 10**6).test)

    first = split(3)
    assert 0 < len(first) < 24 and split(3) == first
    write_rows(tmp_path / "annotations.csv", rows[::-1])
    assert split(3) == first
    (tmp_path / "img00.png").unlink()  # other images do not move
    assert split(3) == [p for p in first if not p.endswith("img00.png")]
    assert split(4) != first


def test_paste_stays_in_its_square() -> None:
    scene = np.full((20, 30), 200, np.uint8)
    patch = digit_patch(load_digits().images[0], 10)
    paste(scene, patch, 4, 7)
    inside = scene[4:14, 7:17]
    assert np.all(inside >= patch) and inside.min() < 200 and patch.max() > 220
    outside = scene.copy()
    outside[4:14, 7:17] = 200
    assert np.all(outside == 200)


def test_scenes_are_deterministic_and_boxed(tmp_path: Path) -> None:
    scenes = ScenesParams(images=8, negatives=0.25, image_size=(40, 48), object_sizes=(12, 18),
                          objects=(1, 3), digits=[1, 7])
    write_scenes(tmp_path / "a", scenes, 5)
    write_scenes(tmp_path / "b", scenes, 5)
    write_scenes(tmp_path / "c", scenes, 6)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 9 and Path("annotations.csv") in files
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    csv_a, csv_c = ((tmp_path / name / "annotations.csv").read_text() for name in "ac")
    assert csv_a != csv_c
    write_scenes(tmp_path / "a", scenes.model_copy(update={"images": 2}), 5)  # replaces the folder
    assert len(list((tmp_path / "a" / "images").iterdir())) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c"]

    digits = load_digits()
    with (tmp_path / "b" / "annotations.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {r["label"] for r in rows} <= {"1", "7"}
    assert len({r["path"] for r in rows}) == 8 - 2  # two of the eight scenes are negatives
    for row in rows:
        image = np.asarray(Image.open(tmp_path / "b" / row["path"]))
        assert image.shape == (40, 48)
        x0, y0, x1, y1 = (int(row[k]) for k in ("xmin", "ymin", "xmax", "ymax"))
        assert 0 <= x0 < x1 <= 48 and 0 <= y0 < y1 <= 40 and x1 - x0 == y1 - y0
        others = [r for r in rows if r["path"] == row["path"] and r is not row]
        for other in others:
            ox0, oy0, ox1, oy1 = (int(other[k]) for k in ("xmin", "ymin", "xmax", "ymax"))
            assert x1 <= ox0 or ox1 <= x0 or y1 <= oy0 or oy1 <= y0  # never overlapping
        # some digit of the label, at the box's size, lies under the box: the strokes are there
        crop = image[y0:y1, x0:x1]
        candidates = digits.images[digits.target == int(row["label"])]
        assert any(np.all(crop >= digit_patch(d, x1 - x0)) for d in candidates)
    data = load(params(tmp_path / "b", test_fraction=0.0), 0, 10**6)
    assert data.rejects == [] and sum(len(i.boxes) for i in data.train) == len(rows)
