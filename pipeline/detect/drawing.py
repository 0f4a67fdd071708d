"""Pictures of detections: boxes drawn on an image, and captioned grids of crops.

Pillow does the drawing (``ImageDraw`` rectangles and text, ``ImageOps.pad`` for the tiles).
Ground truth is green, true detections blue, false positives red, each detection with its label
and score. Small images are enlarged by a whole factor (nearest neighbour, so pixels stay
sharp) before drawing, so that thin boxes and text stay readable. The grids are drawn here
rather than with :func:`pipeline.evaluate.gallery.titled_grid`, which wants images of one size
and writes its own file through matplotlib.

:func:`worst_false_positives` and :func:`misses` pick what the grids show, by
:func:`pipeline.detect.scoring.match_image`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

from pipeline.detect.boxes import AnnotatedImage, Box, Detection
from pipeline.detect.scoring import Rule, match_image
from pipeline.io.atomic import atomic_path

TRUTH = (0, 255, 0)
TRUE_POSITIVE = (0, 0, 255)
FALSE_POSITIVE = (255, 0, 0)
TEXT = (255, 255, 255)
FONT_SIZE = 11


def _font(size: int = FONT_SIZE) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def to_rgb(image: np.ndarray) -> Image.Image:
    """A uint8 ``HxW``, ``HxWx1`` or ``HxWx3`` array as an RGB Pillow image."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"expected an HxW or HxWx3 image, got shape {image.shape}")
    return Image.fromarray(image).convert("RGB")


def enlargement(height: int, width: int, min_side: int = 256) -> int:
    """The whole factor that brings the shorter side to at least ``min_side`` (1 if it is)."""
    return max(1, math.ceil(min_side / max(1, min(height, width))))


def _caption(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str,
             colour: tuple[int, int, int], limit: tuple[int, int]) -> None:
    """``text`` in white on a ``colour`` strip just above ``xy`` (below it at the top edge)."""
    font = _font()
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    w, h = right - left + 2, bottom - top + 2
    x = min(max(0, xy[0]), max(0, limit[0] - w))
    y = xy[1] - h if xy[1] - h >= 0 else min(xy[1] + 1, max(0, limit[1] - h))
    draw.rectangle((x, y, x + w - 1, y + h - 1), fill=colour)
    draw.text((x + 1 - left, y + 1 - top), text, fill=TEXT, font=font)


def draw(image: np.ndarray, boxes: Sequence[Box], detections: Sequence[Detection],
         tp: Sequence[bool], min_side: int = 256, width: int = 2) -> Image.Image:
    """``image`` enlarged by :func:`enlargement` with its true ``boxes`` (green) and its
    ``detections`` (blue where ``tp``, red otherwise) drawn ``width`` pixels wide; each detection
    carries ``label score``. Detections are drawn after the boxes, lowest score first, so the
    surest lie on top."""
    if len(tp) != len(detections):
        raise ValueError(f"{len(tp)} true-positive flags for {len(detections)} detections")
    picture = to_rgb(image)
    factor = enlargement(picture.height, picture.width, min_side)
    if factor > 1:
        picture = picture.resize((picture.width * factor, picture.height * factor),
                                 Image.Resampling.NEAREST)
    pen = ImageDraw.Draw(picture)

    def rectangle(xyxy: tuple[float, float, float, float], colour: tuple[int, int, int]) -> None:
        x0, y0, x1, y1 = (round(v * factor) for v in xyxy)
        pen.rectangle((x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)), outline=colour, width=width)

    for box in boxes:
        rectangle(box.xyxy, TRUTH)
    order = np.argsort([d.score for d in detections], kind="stable")
    for i in order:
        det = detections[int(i)]
        colour = TRUE_POSITIVE if tp[int(i)] else FALSE_POSITIVE
        rectangle(det.xyxy, colour)
        _caption(pen, (det.x0 * factor, det.y0 * factor), f"{det.label} {det.score:.2f}", colour,
                 picture.size)
    return picture


def save_drawn(path: str | Path, image: np.ndarray, boxes: Sequence[Box],
               detections: Sequence[Detection], tp: Sequence[bool], **options) -> None:
    """:func:`draw` written to ``path`` as a PNG (atomically)."""
    picture = draw(image, boxes, detections, tp, **options)
    with atomic_path(path, suffix=".png") as tmp:
        picture.save(tmp, format="PNG")


def save_image(path: str | Path, picture: Image.Image) -> None:
    """A Pillow image (:func:`crop_grid`'s) written to ``path`` as a PNG (atomically)."""
    with atomic_path(path, suffix=".png") as tmp:
        picture.save(tmp, format="PNG")


def cut(image: np.ndarray, xyxy: tuple[float, float, float, float], margin: float = 0.1) -> np.ndarray:
    """The part of ``image`` under a box grown by ``margin`` of its size on each side, clipped to
    the image (at least one pixel)."""
    height, width = image.shape[:2]
    x0, y0, x1, y1 = xyxy
    mx, my = margin * (x1 - x0), margin * (y1 - y0)
    left = min(max(0, math.floor(x0 - mx)), width - 1)
    top = min(max(0, math.floor(y0 - my)), height - 1)
    right = max(left + 1, min(width, math.ceil(x1 + mx)))
    bottom = max(top + 1, min(height, math.ceil(y1 + my)))
    return image[top:bottom, left:right]


def crop_grid(crops: Sequence[np.ndarray], captions: Sequence[str], cols: int = 4,
              tile: tuple[int, int] = (96, 96), empty: str = "none") -> Image.Image:
    """The ``crops`` (uint8 arrays) as ``cols`` columns of ``tile`` (width, height) cells, each
    crop scaled to fit its cell (aspect kept, black padding) with its caption under it. No crops:
    a small image that says ``empty``."""
    if len(crops) != len(captions):
        raise ValueError(f"{len(captions)} captions for {len(crops)} crops")
    font = _font()
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line = probe.textbbox((0, 0), "Ag", font=font)[3] + 4
    if not len(crops):
        picture = Image.new("RGB", (max(tile[0], 64), line * 2), (255, 255, 255))
        ImageDraw.Draw(picture).text((4, line // 2), empty, fill=(0, 0, 0), font=font)
        return picture
    cols = max(1, min(cols, len(crops)))
    rows = math.ceil(len(crops) / cols)
    cell_w, cell_h = tile[0], tile[1] + line
    picture = Image.new("RGB", (cols * cell_w, rows * cell_h), (255, 255, 255))
    pen = ImageDraw.Draw(picture)
    for n, (crop, caption) in enumerate(zip(crops, captions, strict=True)):
        x, y = (n % cols) * cell_w, (n // cols) * cell_h
        tile_image = ImageOps.pad(to_rgb(crop), tile, method=Image.Resampling.NEAREST, color=(0, 0, 0))
        picture.paste(tile_image, (x, y))
        text = caption
        while text and pen.textlength(text, font=font) > cell_w - 4:
            text = text[:-1]
        pen.text((x + 2, y + tile[1] + 2), text, fill=(0, 0, 0), font=font)
    return picture


def worst_false_positives(images: Sequence[AnnotatedImage], detections: Sequence[Sequence[Detection]],
                          k: int, iou: float = 0.5, rule: Rule = "iou") -> list[tuple[int, Detection]]:
    """The ``k`` highest-scoring false positives, as ``(image index, detection)``, by
    :func:`~pipeline.detect.scoring.match_image`; ties keep image order."""
    found = []
    for index, (image, dets) in enumerate(zip(images, detections, strict=True)):
        tp, _ = match_image(image, dets, iou=iou, rule=rule)
        found.extend((index, det) for det, hit in zip(dets, tp, strict=True) if not hit)
    found.sort(key=lambda item: -item[1].score)
    return found[:k]


def misses(images: Sequence[AnnotatedImage], detections: Sequence[Sequence[Detection]], k: int,
           iou: float = 0.5, rule: Rule = "iou") -> list[tuple[int, Box]]:
    """Up to ``k`` true boxes no detection matched, as ``(image index, box)``, largest area first
    (a big object missed is the plainest failure); ties keep image order."""
    found = []
    for index, (image, dets) in enumerate(zip(images, detections, strict=True)):
        _, matched = match_image(image, dets, iou=iou, rule=rule)
        found.extend((index, box) for box, hit in zip(image.boxes, matched, strict=True) if not hit)
    found.sort(key=lambda item: -(item[1].width * item[1].height))
    return found[:k]
