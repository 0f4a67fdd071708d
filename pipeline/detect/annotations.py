"""Reading and checking a user's boxes: CSV, PASCAL VOC, COCO JSON, the UIUC cars; the split.

Each reader turns its format into :class:`Candidate` images (an absolute path and its boxes in
pixels, ``x1 = x0 + width``) and rejects of the annotation itself; :func:`load` then checks
every candidate like ingest does. Each image is fully decoded by
:func:`pipeline.io.images.inspect` (Pillow; unreadable or too many pixels: a reject), a box of
zero or negative size rejects its image (``empty-box``), so does a box wholly outside it
(``box-outside``); a box partly outside is clipped to the image and keeps its annotated
coordinates in ``Box.source``. A box whose label is not in ``detect_data.labels`` is listed as
ignored and dropped, its image kept. Images are split into train and test by the hash of their
bytes (:func:`pipeline.data.split.unit_interval`), unless the source has its own test set.

The readers: ``xml.etree`` for VOC (1-based inclusive corners: ``x0 = xmin - 1, x1 = xmax``),
``pycocotools.coco.COCO`` for COCO (``bbox`` is ``[x, y, w, h]``), the csv module for CSV and
the UIUC ground-truth files (``n: (row,col) ...`` of 100x40 windows, or ``n: (row,col,width)``
with height ``0.4 * width`` at multiple scales).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import re
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pycocotools.coco import COCO

from pipeline.config.detect import DetectDataParams
from pipeline.data.ingest import printable
from pipeline.data.sources import display_path
from pipeline.data.split import unit_interval
from pipeline.detect.boxes import AnnotatedImage, Box, to_coco
from pipeline.io import atomic
from pipeline.io.errors import InputError
from pipeline.io.images import IMAGE_EXTENSIONS, RejectedImage, inspect
from pipeline.io.tables import csv_text

#: ``(path, reason, detail)``: a rejected image (or annotation), or an ignored box.
Reject = tuple[str, str, str]
#: The annotation file looked for when ``detect_data.source.path`` is a folder (csv, coco).
CSV_NAME = "annotations.csv"
COCO_NAME = "annotations.json"
CSV_FIELDS = ("path", "label", "xmin", "ymin", "xmax", "ymax")
COORDS = CSV_FIELDS[2:]
REJECT_FIELDS = ["path", "reason", "detail"]
UIUC_LABEL = "car"
#: UIUC single-scale windows are 100 wide and 40 high; multi-scale ones 0.4 times as high as wide.
UIUC_WINDOW = (100.0, 40.0)
UIUC_ASPECT = 0.4
_UIUC_TESTS = {"single": ("TestImages", "trueLocations.txt"),
               "multi": ("TestImages_Scale", "trueLocations_Scale.txt")}
#: Rejects named in the message of a refused run.
_SHOWN = 10


@dataclass
class Candidate:
    """An image file an annotation names, its boxes, and what the annotation says of it.

    ``size`` is the ``(width, height)`` the annotation claims (checked against the file),
    ``split`` a split the source fixes (``train``/``test``), ``problem`` a ``(reason, detail)``
    found while reading that rejects the image before it is opened, ``fill`` the label of one
    more box that covers the whole image (UIUC positives), added once the size is known.
    """

    path: Path
    boxes: list[Box] = field(default_factory=list)
    size: tuple[int, int] | None = None
    split: str = ""
    problem: tuple[str, str] | None = None
    fill: str = ""


@dataclass
class DetectionData:
    """The checked, split images, their labels (category order), and what was left out."""

    train: list[AnnotatedImage]
    test: list[AnnotatedImage]
    labels: list[str]
    rejects: list[Reject] = field(default_factory=list)
    ignored: list[Reject] = field(default_factory=list)
    clipped: int = 0

    def summary(self) -> dict[str, object]:
        """Images, boxes and negative images per split; rejects, ignored and clipped boxes."""
        def counts(images: list[AnnotatedImage]) -> dict[str, int]:
            return {"images": len(images), "boxes": sum(len(i.boxes) for i in images),
                    "negatives": sum(not i.boxes for i in images)}

        return {"train": counts(self.train), "test": counts(self.test), "labels": len(self.labels),
                "rejected": len(self.rejects), "ignored_boxes": len(self.ignored),
                "clipped_boxes": self.clipped,
                "rejects_by_reason": dict(sorted(Counter(r[1] for r in self.rejects).items()))}


def _key(path: Path) -> Path:
    """An absolute path naming the same file however it was spelled (symlinks not followed)."""
    return Path(os.path.abspath(path))


def _shown(path: Path) -> str:
    return printable(display_path(path))


def _number(text: str | None) -> float:
    value = float((text or "").strip())
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not finite")
    return value


def _root(images: str | Path | None, default: Path) -> Path:
    if images and not Path(images).is_dir():
        raise InputError(f"detect_data.source.images: no folder at {images}")
    return Path(images) if images else default


def _image_files(root: Path) -> list[Path]:
    """Image files below ``root`` (recursive, :data:`IMAGE_EXTENSIONS`, hidden ones skipped)."""
    return sorted(p for p in root.rglob("*")
                  if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


def read_csv(path: Path, images: str | Path | None = None) -> tuple[list[Candidate], list[Reject]]:
    """Rows ``path,label,xmin,ymin,xmax,ymax`` of the CSV ``path`` (or ``path/annotations.csv``),
    image paths relative to ``images``, else to the CSV's folder (absolute allowed): one box per
    row, and every image file below that folder with no row is a negative image, as is one whose
    row has an empty label and empty corners. A bad row (a missing field, a corner that is no
    number) rejects its image (``bad-row``, with the line)."""
    path = Path(path)
    if path.is_dir():
        path = path / CSV_NAME
    if not path.is_file():
        raise InputError(f"detect_data.source.path: no CSV file at {path}")
    root = _root(images, path.parent)
    found: dict[Path, Candidate] = {}
    rejects: list[Reject] = []
    try:
        _csv_rows(path, root, found, rejects)
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text: {exc}") from None
    if root.is_dir():
        for file in _image_files(root):
            found.setdefault(_key(file), Candidate(_key(file)))
    return list(found.values()), rejects


def _csv_rows(path: Path, root: Path, found: dict[Path, Candidate], rejects: list[Reject]) -> None:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [name for name in CSV_FIELDS if name not in (reader.fieldnames or [])]
        if missing:
            raise InputError(f"{path} needs the columns {','.join(CSV_FIELDS)}; missing {missing}")
        for row in reader:
            line = reader.line_num
            raw = (row.get("path") or "").strip()
            if not raw:
                rejects.append((f"{_shown(path)}:{line}", "bad-row", f"line {line}: empty path"))
                continue
            key = _key(root / raw)
            cand = found.setdefault(key, Candidate(key))
            problem = _csv_box(row, cand)
            if problem and not cand.problem:
                cand.problem = ("bad-row", f"{path.name} line {line}: {problem}")


def _csv_box(row: dict[str, str | None], cand: Candidate) -> str:
    """Add the row's box to ``cand``; return what is wrong with the row ("" if nothing)."""
    if any(row.get(name) is None for name in CSV_FIELDS):
        return "missing column(s) " + ",".join(n for n in CSV_FIELDS if row.get(n) is None)
    label = (row["label"] or "").strip()
    coords = [(row[name] or "").strip() for name in COORDS]
    if not label and not any(coords):
        return ""  # a negative image
    if not label:
        return "empty label"
    try:
        x0, y0, x1, y1 = (_number(value) for value in coords)
    except ValueError:
        return f"corners {','.join(coords)} are not all numbers"
    cand.boxes.append(Box(label, x0, y0, x1, y1))
    return ""


def _text(node: ET.Element, tag: str) -> str:
    found = node.find(tag)
    if found is None or found.text is None or not found.text.strip():
        raise ValueError(f"no <{tag}>")
    return found.text.strip()


def _voc_file(xml: Path, root: Path) -> Candidate:
    tree = ET.parse(xml).getroot()
    cand = Candidate(_key(root / _text(tree, "filename")))
    size = tree.find("size")
    if size is not None:
        with contextlib.suppress(ValueError):
            width, height = int(float(_text(size, "width"))), int(float(_text(size, "height")))
            if width > 0 and height > 0:
                cand.size = (width, height)
    for index, obj in enumerate(tree.findall("object"), start=1):
        try:
            label = _text(obj, "name")
            bndbox = obj.find("bndbox")
            if bndbox is None:
                raise ValueError("no <bndbox>")
            xmin, ymin, xmax, ymax = (_number(_text(bndbox, tag)) for tag in ("xmin", "ymin", "xmax", "ymax"))
        except ValueError as exc:
            cand.problem = ("bad-annotation", f"{xml.name} object {index}: {exc}")
            break
        cand.boxes.append(Box(label, xmin - 1.0, ymin - 1.0, xmax, ymax))
    return cand


def read_voc(folder: Path, images: str | Path | None = None) -> tuple[list[Candidate], list[Reject]]:
    """One PASCAL VOC XML file per image in ``folder`` (``filename`` relative to ``images``, else
    to the folder); an XML with no ``object`` is a negative image."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"detect_data.source.path: format voc needs a folder of XML files, got {folder}")
    root = _root(images, folder)
    found: dict[Path, Candidate] = {}
    rejects: list[Reject] = []
    for xml in sorted(folder.glob("*.xml")):
        try:
            cand = _voc_file(xml, root)
        except (ET.ParseError, ValueError) as exc:
            rejects.append((_shown(xml), "bad-annotation", str(exc)))
            continue
        if cand.path in found:
            rejects.append((_shown(cand.path), "duplicate-entry", f"{xml.name}: image already annotated"))
        else:
            found[cand.path] = cand
    return list(found.values()), rejects


def _coco_index(path: Path) -> COCO:
    if not path.is_file():
        raise InputError(f"detect_data.source.path: no COCO JSON file at {path}")
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # COCO prints its progress
            return COCO(str(path))
    except (json.JSONDecodeError, UnicodeDecodeError, AssertionError, KeyError, TypeError) as exc:
        raise InputError(f"{path} is not a COCO annotation file: {exc}") from None


def read_coco(path: Path, images: str | Path | None = None) -> tuple[list[Candidate], list[Reject]]:
    """A COCO JSON file ``path`` (or ``path/annotations.json``), ``file_name`` relative to
    ``images``, else to the file's folder; an image with no annotation is a negative image. A
    ``source_box`` (what :func:`pipeline.detect.boxes.write_annotations` keeps of a clipped box)
    is kept."""
    path = Path(path)
    if path.is_dir():
        path = path / COCO_NAME
    coco = _coco_index(path)
    root = _root(images, path.parent)
    names = {cat_id: str(cat.get("name", cat_id)) for cat_id, cat in coco.cats.items()}
    found: dict[Path, Candidate] = {}
    rejects: list[Reject] = []
    for image_id, entry in coco.imgs.items():
        if not entry.get("file_name"):
            rejects.append((_shown(path), "bad-annotation", f"image id {image_id}: no file_name"))
            continue
        cand = Candidate(_key(root / str(entry["file_name"])))
        with contextlib.suppress(KeyError, TypeError, ValueError):
            width, height = int(entry["width"]), int(entry["height"])
            if width > 0 and height > 0:
                cand.size = (width, height)
        for ann in coco.imgToAnns.get(image_id, []):
            try:
                cand.boxes.append(_coco_box(ann, names))
            except (KeyError, TypeError, ValueError) as exc:
                cand.problem = ("bad-annotation", f"annotation {ann.get('id')}: bad bbox or category "
                                                  f"({type(exc).__name__}: {exc})")
                break
        if cand.path in found:
            rejects.append((_shown(cand.path), "duplicate-entry", f"image id {image_id}: already listed"))
        else:
            found[cand.path] = cand
    for ann in coco.dataset.get("annotations", []):
        if ann.get("image_id") not in coco.imgs:
            rejects.append((_shown(path), "bad-annotation",
                            f"annotation {ann.get('id')}: image_id {ann.get('image_id')} is no image"))
    return list(found.values()), rejects


def _coco_box(ann: dict, names: dict[int, str]) -> Box:
    bbox, source = ann["bbox"], ann.get("source_box")
    if not isinstance(bbox, list) or (source is not None and not isinstance(source, list)):
        raise TypeError("bbox and source_box must be lists")
    x, y, w, h = (_number(str(v)) for v in bbox)
    corners = tuple(_number(str(v)) for v in source) if source else None
    if corners is not None and len(corners) != 4:
        raise ValueError(f"source_box has {len(corners)} numbers, not 4")
    return Box(names[ann["category_id"]], x, y, x + w, y + h, corners)


_WINDOW = re.compile(r"\(\s*([-+\d.]+)\s*,\s*([-+\d.]+)\s*(?:,\s*([-+\d.]+)\s*)?\)")


def read_uiuc_locations(path: Path) -> dict[int, list[Box]]:
    """``trueLocations.txt`` / ``trueLocations_Scale.txt``: image number -> its car boxes.

    Windows are ``(row, column)`` of the top-left corner, 100x40 pixels, or ``(row, column,
    width)`` with height ``0.4 * width``.
    """
    out: dict[int, list[Box]] = {}
    for line_no, line in enumerate(Path(path).read_text(encoding="ascii").splitlines(), start=1):
        if not line.strip():
            continue
        number, sep, rest = line.partition(":")
        if not sep or not number.strip().isdigit():
            raise InputError(f"{path} line {line_no}: expected 'n: (row,col) ...', got {line!r}")
        boxes = []
        for row, col, width in _WINDOW.findall(rest):
            try:
                w, h = (float(width), float(width) * UIUC_ASPECT) if width else UIUC_WINDOW
                y, x = float(row), float(col)
            except ValueError:
                raise InputError(f"{path} line {line_no}: ({row},{col},{width}) is not numbers") from None
            boxes.append(Box(UIUC_LABEL, x, y, x + w, y + h))
        out[int(number)] = boxes
    return out


def _natural(path: Path) -> list[object]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def read_uiuc(folder: Path, test: str = "single") -> tuple[list[Candidate], list[Reject]]:
    """The UIUC cars folder (``CarData``): train = ``TrainImages/pos-*.pgm`` (one car filling
    the 100x40 crop; its size is read from the file when checked) and ``neg-*.pgm`` (negative
    images); test = ``TestImages`` (``test="single"``) or ``TestImages_Scale`` (``"multi"``)
    with their ground-truth files."""
    folder = Path(folder)
    images, truth = _UIUC_TESTS[test]
    needed = [folder / "TrainImages", folder / images, folder / truth]
    if missing := [str(p) for p in needed if not p.exists()]:
        raise InputError(f"detect_data.source.path: {folder} is not the UIUC CarData folder; "
                         f"missing {', '.join(missing)}")
    cands = [Candidate(_key(p), split="train", fill=UIUC_LABEL)
             for p in sorted((folder / "TrainImages").glob("pos-*.pgm"), key=_natural)]
    cands += [Candidate(_key(p), split="train")
              for p in sorted((folder / "TrainImages").glob("neg-*.pgm"), key=_natural)]
    locations = read_uiuc_locations(folder / truth)
    for file in sorted((folder / images).glob("test-*.pgm"), key=_natural):
        number = int(file.stem.split("-")[1])
        cands.append(Candidate(_key(file), list(locations.get(number, [])), split="test"))
    return cands, []


def read_source(params: DetectDataParams) -> tuple[list[Candidate], list[Reject]]:
    """The candidates of ``params.source`` and the rejects of its annotations."""
    source = params.source
    if not source.path:
        raise InputError(f"detect_data.source.path: format {source.format} needs a path")
    path = Path(source.path)
    if source.format == "csv":
        return read_csv(path, source.images)
    if source.format == "voc":
        return read_voc(path, source.images)
    if source.format == "coco":
        return read_coco(path, source.images)
    return read_uiuc(path, source.uiuc_test)


def _clip(box: Box, width: int, height: int) -> Box:
    x0, y0 = max(box.x0, 0.0), max(box.y0, 0.0)
    x1, y1 = min(box.x1, float(width)), min(box.y1, float(height))
    return Box(box.label, x0, y0, x1, y1, box.source or box.xyxy)


@dataclass
class _Checked:
    images: list[tuple[AnnotatedImage, str, str]] = field(default_factory=list)  # image, sha, split
    rejects: list[Reject] = field(default_factory=list)
    ignored: list[Reject] = field(default_factory=list)
    clipped: int = 0


def _check_boxes(cand: Candidate, width: int, height: int, labels: set[str], out: _Checked
                 ) -> tuple[list[Box], int]:
    """The image's kept boxes (clipped) and how many were clipped; :class:`RejectedImage` for a
    box of no area or one wholly outside the image."""
    boxes = [*cand.boxes, *([Box(cand.fill, 0.0, 0.0, float(width), float(height))] if cand.fill else [])]
    kept: list[Box] = []
    clipped = 0
    for box in boxes:
        if labels and box.label not in labels:
            out.ignored.append((_shown(cand.path), "unknown-label",
                                f"label {box.label!r} is not in detect_data.labels"))
            continue
        corners = ",".join(f"{v:g}" for v in box.xyxy)
        if box.width <= 0 or box.height <= 0:
            raise RejectedImage("empty-box", f"{box.label} box {corners} has no area")
        if box.x1 <= 0 or box.y1 <= 0 or box.x0 >= width or box.y0 >= height:
            raise RejectedImage("box-outside", f"{box.label} box {corners} lies outside the "
                                               f"{width}x{height} image")
        if box.x0 < 0 or box.y0 < 0 or box.x1 > width or box.y1 > height:
            box = _clip(box, width, height)
            clipped += 1
        kept.append(box)
    return kept, clipped


def check_candidates(candidates: list[Candidate], labels: list[str], max_pixels: int) -> _Checked:
    """Open every candidate (Pillow, :func:`inspect`) and check its boxes; see the module doc."""
    out = _Checked()
    wanted = set(labels)
    for cand in sorted(candidates, key=lambda c: str(c.path)):
        shown = _shown(cand.path)
        try:
            if cand.problem:
                raise RejectedImage(*cand.problem)
            if not cand.path.is_file():
                raise RejectedImage("missing", "no such file")
            try:
                info = inspect(cand.path, max_pixels)
            except OSError as exc:
                raise RejectedImage("unreadable", exc.strerror or str(exc)) from None
            if cand.size and cand.size != (info.width, info.height):
                raise RejectedImage("size-mismatch", f"annotated {cand.size[0]}x{cand.size[1]}, "
                                                     f"the file is {info.width}x{info.height}")
            ignored = len(out.ignored)
            try:
                boxes, clipped = _check_boxes(cand, info.width, info.height, wanted, out)
            except RejectedImage:
                del out.ignored[ignored:]  # a rejected image's boxes are not listed twice
                raise
        except RejectedImage as exc:
            out.rejects.append((shown, exc.reason, exc.detail))
            continue
        out.clipped += clipped
        image = AnnotatedImage(display_path(cand.path), info.width, info.height, boxes)
        out.images.append((image, info.sha256, cand.split))
    return out


def check_rejects(data: DetectionData, max_reject_fraction: float) -> None:
    """Raise :class:`InputError` when more than ``max_reject_fraction`` of the images were
    rejected, or none is left; its lines name the first rejects and the count per reason."""
    kept = len(data.train) + len(data.test)
    total = kept + len(data.rejects)
    if not total:
        raise InputError("detect_data.source: found no images")
    fraction = len(data.rejects) / total
    if fraction > max_reject_fraction or not kept:
        lines = [f"{path}: {reason}" + (f" ({detail})" if detail else "")
                 for path, reason, detail in data.rejects[:_SHOWN]]
        if len(data.rejects) > _SHOWN:
            lines.append(f"... and {len(data.rejects) - _SHOWN} more")
        by_reason = Counter(r[1] for r in data.rejects)
        lines += [f"{reason}: {count}" for reason, count in sorted(by_reason.items())]
        message = (f"{len(data.rejects)} of {total} images rejected ({fraction:.1%}), more than "
                   f"detect_data.max_reject_fraction={max_reject_fraction:g}")
        raise InputError(message if kept else f"all {total} images rejected", lines)


def load(params: DetectDataParams, seed: int, max_pixels: int, check_fraction: bool = True
         ) -> DetectionData:
    """Read, check and split the annotated images of ``params`` (see the module doc).

    Raises :class:`InputError` for too many rejects unless ``check_fraction`` is false (then the
    caller may write the reports first and call :func:`check_rejects` itself).
    """
    candidates, rejects = read_source(params)
    checked = check_candidates(candidates, params.labels, max_pixels)
    train: list[AnnotatedImage] = []
    test: list[AnnotatedImage] = []
    for image, sha, split in checked.images:
        in_test = split == "test" if split else unit_interval(seed, sha) < params.test_fraction
        (test if in_test else train).append(image)
    found = {box.label for image, _, _ in checked.images for box in image.boxes}
    labels = list(params.labels) if params.labels else sorted(found)
    data = DetectionData(train, test, labels, sorted(rejects + checked.rejects), checked.ignored,
                         checked.clipped)
    if check_fraction:
        check_rejects(data, params.max_reject_fraction)
    return data


def _json(data: object) -> str:
    return json.dumps(data, indent=2, sort_keys=False) + "\n"


def write(data: DetectionData, out: Path, reports: Path | None = None) -> None:
    """``out/train.json`` and ``out/test.json`` (COCO, :func:`pipeline.detect.boxes.to_coco`),
    ``rejects.csv`` (rejects, then ignored boxes) and ``summary.json`` in ``reports`` (default
    ``out``), as one set
    (:func:`pipeline.io.atomic.atomic_paths`): all replaced, or on any error none."""
    out = Path(out)
    rows = [dict(zip(REJECT_FIELDS, entry, strict=True)) for entry in [*data.rejects, *data.ignored]]
    files = {out / "train.json": _json(to_coco(data.train, data.labels)),
             out / "test.json": _json(to_coco(data.test, data.labels)),
             (reports or out) / "rejects.csv": csv_text(REJECT_FIELDS, rows),
             (reports or out) / "summary.json": _json(data.summary())}
    with atomic.atomic_paths(list(files)) as temps:
        for tmp, text in zip(temps, files.values(), strict=True):
            tmp.write_text(text, encoding="utf-8")
