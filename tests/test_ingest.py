"""Sources, the bad-image corpus, conversion to channels, and the ingest reports."""

from __future__ import annotations

import csv
import json
import os
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
    """Identical images with one label are all kept (conflicting labels: the tests below)."""
    make_class_folders(in_tmp / "src", {"a": 2, "b": 2})
    first = in_tmp / "src" / "a" / "img_00000.png"
    (in_tmp / "src" / "a" / "copy.png").write_bytes(first.read_bytes())
    result = ingest(params_for(in_tmp / "src"))
    assert len(result.duplicates) == 1
    assert result.summary()["duplicate_label_conflicts"] == 0
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


def run_ingest_stage(folder: Path, out: Path, reports: Path, **ingest_params):
    """The ingest stage's command on ``folder`` (kind folder), as DVC runs it."""
    from click.testing import CliRunner

    from stages.ingest import cli
    from tests.conftest import shipped_params_with

    params = shipped_params_with(
        folder.parent, ingest={"source": {"kind": "folder", "path": str(folder)}, "workers": 1,
                               **ingest_params})
    return CliRunner().invoke(cli, ["--params", str(params), "--out", str(out),
                                    "--reports", str(reports)])


def ingest_set(out: Path, reports: Path) -> dict[str, bytes]:
    """The files one ingest run writes, by name, with their bytes."""
    names = [out / "manifest.csv", out / "classes.json", *(reports / n for n in (
        "rejects.csv", "duplicates.csv", "summary.json", "report.json"))]
    return {p.name: p.read_bytes() for p in names if p.is_file()}


def test_a_file_name_that_is_not_utf8_is_rejected_with_a_printable_name(in_tmp: Path) -> None:
    """Before: UnicodeEncodeError writing the manifest, after rejects.csv was rewritten."""
    make_class_folders(in_tmp / "src", {"a": 2, "b": 2})
    bad = os.fsencode(in_tmp / "src" / "a") + b"/caf\xe9 \xff.png"  # Latin-1, not UTF-8
    with open(bad, "wb") as handle:
        handle.write(write_image(in_tmp / "tmp.png", 7).read_bytes())
    (in_tmp / "tmp.png").unlink()
    done = run_ingest_stage(in_tmp / "src", in_tmp / "out", in_tmp / "reports",
                            max_reject_fraction=0.5)
    assert done.exit_code == 0, done.output
    rejects = read_csv(in_tmp / "reports" / "rejects.csv")
    assert [(Path(r["path"]).name, r["reason"]) for r in rejects] == [
        ("caf\\xe9 \\xff.png", "undecodable-name")]
    assert "not valid UTF-8" in rejects[0]["detail"]
    manifest = read_csv(in_tmp / "out" / "manifest.csv")
    assert len(manifest) == 4 and all("caf" not in r["path"] for r in manifest)
    assert json.loads((in_tmp / "reports" / "summary.json").read_text())["rejected"] == 1


def test_odd_but_valid_names_are_kept_losslessly(in_tmp: Path) -> None:
    """Commas, quotes, newlines, tabs, backslashes and non-ASCII text survive the manifest."""
    make_class_folders(in_tmp / "src", {"a": 2, "b": 2})
    odd = 'x, "y"\n\tz\\ é 日本.png'
    write_image(in_tmp / "src" / "b" / odd, 9)
    done = run_ingest_stage(in_tmp / "src", in_tmp / "out", in_tmp / "reports")
    assert done.exit_code == 0, done.output
    names = {Path(r["path"]).name for r in read_csv(in_tmp / "out" / "manifest.csv")}
    assert odd in names
    assert (in_tmp / "src" / "b" / odd).is_file()


@pytest.mark.parametrize("blocker", ["out-is-a-file", "last-report-is-a-folder"])
def test_a_failed_ingest_leaves_the_previous_set(in_tmp: Path, blocker: str) -> None:
    """The manifest and the four reports are one set: written together or not at all.
    Before: the reports were rewritten first, then writing the manifest failed."""
    make_class_folders(in_tmp / "src", {"a": 2, "b": 2})
    out, reports = in_tmp / "out", in_tmp / "reports"
    first = run_ingest_stage(in_tmp / "src", out, reports)
    assert first.exit_code == 0, first.output
    before = ingest_set(out, reports)
    assert len(before) == 6
    make_class_folders(in_tmp / "src", {"c": 2}, start=50)
    (in_tmp / "src" / "a" / "notes.txt").write_text("a new skip for rejects.csv")
    if blocker == "out-is-a-file":  # the manifest's folder cannot be made
        (in_tmp / "blocker").write_text("in the way")
        out = in_tmp / "blocker" / "out"
        before = {k: v for k, v in before.items() if k not in ("manifest.csv", "classes.json")}
    else:  # the last file of the set cannot be replaced: the ones renamed before are undone
        (reports / "report.json").unlink()
        (reports / "report.json").mkdir()
        del before["report.json"]
    second = run_ingest_stage(in_tmp / "src", out, reports)
    assert second.exit_code != 0
    assert ingest_set(out, reports) == before
    assert not [p for p in (*reports.iterdir(), *(out.iterdir() if out.is_dir() else []))
                if p.name.startswith(".")]  # no temporaries left behind


def test_refused_ingest_writes_its_reports_and_removes_the_stale_manifest(in_tmp: Path) -> None:
    """Too many rejects: the reports say why; the previous manifest does not stay beside them."""
    make_class_folders(in_tmp / "src", {"a": 2, "b": 2})
    out, reports = in_tmp / "out", in_tmp / "reports"
    assert run_ingest_stage(in_tmp / "src", out, reports).exit_code == 0
    (in_tmp / "src" / "a" / "broken.png").write_bytes(b"not a png")
    refused = run_ingest_stage(in_tmp / "src", out, reports)
    assert refused.exit_code == 1 and "1 of 5 images rejected" in refused.output
    assert [r["reason"] for r in read_csv(reports / "rejects.csv")] == ["not-an-image"]
    assert not (out / "manifest.csv").exists() and not (out / "classes.json").exists()


def conflicting_copies(root: Path) -> None:
    """a: 2, b: 2 images; a copy of a's first image labelled b; a same-label copy in a."""
    make_class_folders(root, {"a": 2, "b": 2})
    (root / "b" / "copy.png").write_bytes((root / "a" / "img_00000.png").read_bytes())
    (root / "a" / "same.png").write_bytes((root / "a" / "img_00001.png").read_bytes())


def test_identical_images_with_conflicting_labels_are_rejected(in_tmp: Path) -> None:
    """Before: both copies were kept, one image with two labels."""
    conflicting_copies(in_tmp / "src")
    result = ingest(params_for(in_tmp / "src", max_reject_fraction=0.5))
    kept = sorted(Path(str(r["path"])).name for r in result.rows)
    assert kept == ["img_00001.png", "img_00002.png", "img_00003.png", "same.png"]
    conflicts = [r for r in result.rejects if r.reason == "conflicting-labels"]
    assert sorted(r.path.name for r in conflicts) == ["copy.png", "img_00000.png"]
    for reject in conflicts:
        assert "'a'" in reject.detail and "'b'" in reject.detail, reject.detail
    summary = result.summary()
    assert (summary["duplicate_groups"], summary["duplicate_label_conflicts"]) == (2, 1)
    assert summary["rejected"] == 2
    write_reports(result, in_tmp / "reports")
    rows = read_csv(in_tmp / "reports" / "rejects.csv")
    assert {Path(r["path"]).name for r in rows} == {"copy.png", "img_00000.png"}
    flagged = read_csv(in_tmp / "reports" / "duplicates.csv")
    assert sorted((Path(r["path"]).name, r["labels_conflict"]) for r in flagged) == [
        ("copy.png", "1"), ("img_00000.png", "1"), ("img_00001.png", "0"), ("same.png", "0")]


def test_keep_first_keeps_the_first_of_conflicting_copies(in_tmp: Path) -> None:
    conflicting_copies(in_tmp / "src")
    result = ingest(params_for(in_tmp / "src", duplicate_labels="keep_first"))
    kept = sorted(str(Path(str(r["path"])).relative_to(Path("src"))) for r in result.rows)
    assert kept == ["a/img_00000.png", "a/img_00001.png", "a/same.png", "b/img_00002.png",
                    "b/img_00003.png"]
    assert [(r.path.name, r.reason) for r in result.rejects] == [("copy.png", "conflicting-labels")]
    assert "keep_first" in result.rejects[0].detail


def test_csv_paths_under_declared_roots(in_tmp: Path) -> None:
    """Absolute paths, symlinks and .. paths that land in ``ingest.source.roots`` are allowed;
    anything else still escapes, and the reason names the roots."""
    data, other = in_tmp / "data", in_tmp / "other"
    write_image(in_tmp / "set" / "imgs" / "a.png", 1)
    write_image(data / "x.png", 2)
    write_image(data / "deep" / "y.png", 3)
    write_image(data / "z.png", 4)
    write_image(other / "w.png", 5)
    (in_tmp / "set" / "link.png").symlink_to(data / "deep" / "y.png")
    (in_tmp / "set" / "out.png").symlink_to(other / "w.png")
    (in_tmp / "set" / "labels.csv").write_text(
        f"path,label\nimgs/a.png,p\n{data / 'x.png'},q\nlink.png,p\n../data/z.png,q\n"
        f"../other/w.png,p\n{other / 'w.png'},q\nout.png,p\n"
    )
    closed = ingest(params_for(in_tmp / "set" / "labels.csv", "csv", max_reject_fraction=1.0))
    assert [Path(str(r["path"])).name for r in closed.rows] == ["a.png"]
    assert [r.reason for r in closed.rejects] == ["escapes-root"] * 6

    params = IngestParams(source=SourceParams(kind="csv", path=str(in_tmp / "set" / "labels.csv"),
                                              roots=["data"]),
                          workers=1, max_reject_fraction=1.0)
    opened = ingest(params)
    assert sorted(Path(str(r["path"])).name for r in opened.rows) == [
        "a.png", "link.png", "x.png", "z.png"]
    assert [r.reason for r in opened.rejects] == ["escapes-root"] * 3
    assert all(str(data.resolve()) in r.detail for r in opened.rejects)
