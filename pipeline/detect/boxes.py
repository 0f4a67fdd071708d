"""Boxes, detections and annotated images: the types every detection module shares.

Annotated images are stored as COCO JSON (the format ``pycocotools`` reads): one image entry per
image with its ``width`` and ``height``, one annotation per box, categories numbered from 1 in the
order of ``labels``. An image with no box is a negative image. A box keeps the coordinates it was
annotated with (``source``) when those reach past the image and were clipped; the UIUC criterion
scores against them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.io.atomic import read_json, write_json


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixels: ``x0, y0`` the top-left corner, ``x1, y1`` = corner + size."""

    label: str
    x0: float
    y0: float
    x1: float
    y1: float
    source: tuple[float, float, float, float] | None = None

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        return (self.x0, self.y0, self.x1, self.y1)

    @property
    def xywh(self) -> list[float]:
        return [self.x0, self.y0, self.width, self.height]


@dataclass(frozen=True)
class Detection:
    """A box a detector found, with its class and score (higher is surer)."""

    label: str
    score: float
    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        return (self.x0, self.y0, self.x1, self.y1)

    @property
    def xywh(self) -> list[float]:
        return [self.x0, self.y0, self.x1 - self.x0, self.y1 - self.y0]


@dataclass
class AnnotatedImage:
    """An image file (its path as stored), its size, and its boxes (none: a negative image)."""

    path: str
    width: int
    height: int
    boxes: list[Box] = field(default_factory=list)


def xyxy(items: Sequence[Box | Detection]) -> np.ndarray:
    """``(N, 4)`` float array of ``x0, y0, x1, y1``."""
    return np.asarray([item.xyxy for item in items], np.float64).reshape(-1, 4)


def to_coco(images: Sequence[AnnotatedImage], labels: Sequence[str]) -> dict:
    """The COCO ground-truth dictionary of ``images``; image ids are positions + 1."""
    ids = {label: i + 1 for i, label in enumerate(labels)}
    coco_images, annotations = [], []
    for image_id, image in enumerate(images, start=1):
        coco_images.append({"id": image_id, "file_name": image.path,
                            "width": image.width, "height": image.height})
        for box in image.boxes:
            entry = {"id": len(annotations) + 1, "image_id": image_id,
                     "category_id": ids[box.label], "bbox": box.xywh,
                     "area": box.width * box.height, "iscrowd": 0}
            if box.source is not None:
                entry["source_box"] = list(box.source)
            annotations.append(entry)
    return {"images": coco_images, "annotations": annotations,
            "categories": [{"id": i, "name": label} for label, i in ids.items()]}


def from_coco(data: dict) -> tuple[list[AnnotatedImage], list[str]]:
    """Images and labels back from :func:`to_coco`'s dictionary."""
    categories = sorted(data["categories"], key=lambda c: c["id"])
    names = {c["id"]: c["name"] for c in categories}
    images = {entry["id"]: AnnotatedImage(entry["file_name"], int(entry["width"]), int(entry["height"]))
              for entry in data["images"]}
    for entry in data["annotations"]:
        x, y, w, h = entry["bbox"]
        source = tuple(entry["source_box"]) if "source_box" in entry else None
        images[entry["image_id"]].boxes.append(
            Box(names[entry["category_id"]], x, y, x + w, y + h, source))
    return [images[key] for key in sorted(images)], [c["name"] for c in categories]


def write_annotations(target: str | Path, images: Sequence[AnnotatedImage],
                      labels: Sequence[str]) -> None:
    """Write ``images`` as a COCO JSON file (atomically)."""
    write_json(target, to_coco(images, labels))


def read_annotations(path: str | Path) -> tuple[list[AnnotatedImage], list[str]]:
    """Read a file :func:`write_annotations` wrote."""
    return from_coco(read_json(path))
