"""Training windows for a window classifier, in the HDF5 layout ``train`` and ``evaluate`` read.

Positives are the annotated boxes resized to the window (the box itself, then copies shifted and
scaled by up to ``jitter``); negatives are random windows of several sizes that overlap no box
by more than ``negative_iou``, from every image (negative images included), windows beside each
box that overlap it partly (so part of an object is background) and windows on each box at the
wrong scale (zoom negatives). With ``fill_outside`` the last two may reach past the image, the
rest of the window filled from a negative image. Class 0 is the background. Which training
images validate is decided by a hash of the path, so adding an image moves no other. OpenCV
resizes; h5py writes (through :mod:`pipeline.io.hdf5`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

from pipeline.config.detect import DetectWindowsParams
from pipeline.data.split import unit_interval
from pipeline.detect.boxes import AnnotatedImage, xyxy
from pipeline.detect.geometry import iou_matrix
from pipeline.io import atomic
from pipeline.io.hdf5 import write_arrays
from pipeline.io.images import check_pixels, to_channels
from pipeline.io.progress import progress


def read_image(path: str | Path, channels: int, max_pixels: int | None = None) -> np.ndarray:
    """``(H, W, channels)`` uint8 pixels of an image file, EXIF orientation applied (Pillow);
    :class:`~pipeline.io.images.RejectedImage`, undecoded, if it has more than ``max_pixels``."""
    with Image.open(path) as img:
        check_pixels(img, max_pixels)
        array = np.asarray(to_channels(ImageOps.exif_transpose(img), channels), np.uint8)
    return array[..., None] if array.ndim == 2 else array


def crop_resized(image: np.ndarray, box: Sequence[float], window_hw: tuple[int, int]) -> np.ndarray:
    """The ``x0, y0, x1, y1`` region of ``image`` (clipped to it) resized to ``window_hw``."""
    height, width = image.shape[:2]
    x0, y0 = int(np.clip(np.floor(box[0]), 0, width - 1)), int(np.clip(np.floor(box[1]), 0, height - 1))
    x1 = int(np.clip(np.ceil(box[2]), x0 + 1, width))
    y1 = int(np.clip(np.ceil(box[3]), y0 + 1, height))
    region = image[y0:y1, x0:x1]
    shrink = region.shape[0] > window_hw[0] or region.shape[1] > window_hw[1]
    out = cv2.resize(region, (window_hw[1], window_hw[0]),
                     interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return out.reshape(*window_hw, image.shape[2])


def jittered(box: Sequence[float], copies: int, jitter: float,
             rng: np.random.Generator) -> Iterator[tuple[float, float, float, float]]:
    """The box itself, then ``copies - 1`` copies shifted and scaled by up to ``jitter``."""
    x0, y0, x1, y1 = box
    yield x0, y0, x1, y1
    w, h = x1 - x0, y1 - y0
    for _ in range(copies - 1):
        scale = 1.0 + rng.uniform(-jitter, jitter)
        cx = (x0 + x1) / 2 + rng.uniform(-jitter, jitter) * w
        cy = (y0 + y1) / 2 + rng.uniform(-jitter, jitter) * h
        yield cx - w * scale / 2, cy - h * scale / 2, cx + w * scale / 2, cy + h * scale / 2


def background_boxes(image: AnnotatedImage, params: DetectWindowsParams,
                     rng: np.random.Generator, tries: int = 30) -> list[tuple[float, float, float, float]]:
    """Up to ``negatives_per_image`` random window-shaped boxes overlapping no object by more
    than ``negative_iou``; a window larger than the image is shrunk to fit it."""
    wh, ww = params.window
    fits = min(image.height / wh, image.width / ww)
    low, high = params.negative_scales
    objects = xyxy(image.boxes)
    found: list[tuple[float, float, float, float]] = []
    for _ in range(params.negatives_per_image * tries):
        if len(found) == params.negatives_per_image:
            break
        scale = min(rng.uniform(low, high), fits)
        h, w = wh * scale, ww * scale
        x0, y0 = rng.uniform(0, image.width - w), rng.uniform(0, image.height - h)
        candidate = (x0, y0, x0 + w, y0 + h)
        if not len(objects) or iou_matrix([candidate], objects).max() <= params.negative_iou:
            found.append(candidate)
    return found


def near_boxes(image: AnnotatedImage, params: DetectWindowsParams, rng: np.random.Generator,
               outside: bool = False, tries: int = 30) -> list[tuple[float, float, float, float]]:
    """Up to ``negatives_per_box`` background boxes beside each object: its size times
    0.7-1.3, shifted until it overlaps that object (IoU above 0) and every object by at
    most ``negative_iou``, and lies inside the image (``outside``: reaches past it by at most its
    own size)."""
    objects = xyxy(image.boxes)
    found: list[tuple[float, float, float, float]] = []
    for x0, y0, x1, y1 in objects:
        wanted = len(found) + params.negatives_per_box
        for _ in range(params.negatives_per_box * tries):
            if len(found) == wanted:
                break
            scale = rng.uniform(0.7, 1.3)
            w, h = (x1 - x0) * scale, (y1 - y0) * scale
            cx = (x0 + x1) / 2 + rng.uniform(-1.0, 1.0) * w
            cy = (y0 + y1) / 2 + rng.uniform(-1.0, 1.0) * h
            candidate = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
            margin = (w, h, w, h) if outside else (0, 0, 0, 0)
            if candidate[0] < -margin[0] or candidate[1] < -margin[1] \
                    or candidate[2] > image.width + margin[2] \
                    or candidate[3] > image.height + margin[3]:
                continue
            overlaps = iou_matrix([candidate], objects)[0]
            if overlaps.max() <= params.negative_iou and \
                    iou_matrix([candidate], [(x0, y0, x1, y1)])[0, 0] > 0:
                found.append(candidate)
    return found


def zoom_boxes(image: AnnotatedImage, params: DetectWindowsParams, rng: np.random.Generator,
               outside: bool = False) -> list[tuple[float, float, float, float]]:
    """``zoom_negatives`` background boxes per object: centred on it (shifted by up to
    ``jitter`` of its side), its size times a factor of ``zoom_scales`` (even ones) or divided
    by one (odd ones); one reaching past the image is left out unless ``outside`` (by at most
    its own size)."""
    found: list[tuple[float, float, float, float]] = []
    low, high = params.zoom_scales
    for x0, y0, x1, y1 in xyxy(image.boxes):
        w, h = x1 - x0, y1 - y0
        for k in range(params.zoom_negatives):
            zoom = rng.uniform(low, high) ** (1 if k % 2 == 0 else -1)
            cx = (x0 + x1) / 2 + rng.uniform(-params.jitter, params.jitter) * w
            cy = (y0 + y1) / 2 + rng.uniform(-params.jitter, params.jitter) * h
            zw, zh = w * zoom / 2, h * zoom / 2
            box = (cx - zw, cy - zh, cx + zw, cy + zh)
            reach = (2 * zw, 2 * zh) if outside else (0.0, 0.0)
            if box[0] >= -reach[0] and box[1] >= -reach[1] and \
                    box[2] <= image.width + reach[0] and box[3] <= image.height + reach[1]:
                found.append(box)
    return found


def filled(image: np.ndarray, box: Sequence[float], filler: np.ndarray) -> tuple[np.ndarray, tuple]:
    """``image`` on a canvas that covers ``box`` too, the rest of the canvas ``filler`` mirrored
    to size (numpy's symmetric padding); returns the canvas and ``box`` in its pixels."""
    height, width = image.shape[:2]
    left, top = max(0, int(np.ceil(-box[0]))), max(0, int(np.ceil(-box[1])))
    right = max(0, int(np.ceil(box[2])) - width)
    bottom = max(0, int(np.ceil(box[3])) - height)
    canvas_h, canvas_w = height + top + bottom, width + left + right
    canvas = np.pad(filler, ((0, max(0, canvas_h - filler.shape[0])),
                             (0, max(0, canvas_w - filler.shape[1])), (0, 0)), mode="symmetric")
    canvas = canvas[:canvas_h, :canvas_w].copy()
    canvas[top:top + height, left:left + width] = image
    return canvas, (box[0] + left, box[1] + top, box[2] + left, box[3] + top)


def inside(box: Sequence[float], shape: tuple[int, ...]) -> bool:
    """Whether ``x0, y0, x1, y1`` lies within an image of ``shape``."""
    return box[0] >= 0 and box[1] >= 0 and box[2] <= shape[1] and box[3] <= shape[0]


def validates(path: str, seed: int, share: float) -> bool:
    """Whether the image at ``path`` goes to val: a stable hash of the path string and seed."""
    return unit_interval(seed, hashlib.sha256(path.encode()).hexdigest()) < share


def split_of(path: str, seed: int, params: DetectWindowsParams, training: bool) -> str:
    """``train`` or ``val`` (by :func:`validates`) for a training image, else ``test``."""
    if not training:
        return "test"
    return "val" if validates(path, seed, params.val) else "train"


@dataclass
class _Split:
    windows: list[np.ndarray] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    def add(self, window: np.ndarray, label: int, name: str) -> None:
        self.windows.append(window)
        self.labels.append(label)
        self.names.append(name)

    def arrays(self, window_hw: tuple[int, int], channels: int) -> tuple[np.ndarray, np.ndarray]:
        if not self.windows:
            return np.empty((0, *window_hw, channels), np.uint8), np.empty(0, np.int32)
        return np.stack(self.windows), np.asarray(self.labels, np.int32)


def cut(images: Sequence[AnnotatedImage], labels: Sequence[str], params: DetectWindowsParams,
        seed: int, training: bool) -> dict[str, _Split]:
    """Windows of ``images`` by split: ``train`` and ``val`` when ``training`` (jittered copies),
    else ``test`` (each box once)."""
    classes = {label: i + 1 for i, label in enumerate(labels)}
    rng = np.random.default_rng(seed)
    splits: dict[str, _Split] = {}
    fillers: dict[str, list[str]] = {}
    if params.fill_outside:
        for image in images:
            if not image.boxes:
                fillers.setdefault(split_of(image.path, seed, params, training), []).append(image.path)
    for image in progress(images, desc="windows", unit="image"):
        name = split_of(image.path, seed, params, training)
        split = splits.setdefault(name, _Split())
        pixels = read_image(image.path, params.channels)
        for b, box in enumerate(image.boxes):
            copies = params.positives_per_box if training else 1
            for c, region in enumerate(jittered(box.xyxy, copies, params.jitter, rng)):
                split.add(crop_resized(pixels, region, params.window), classes[box.label],
                          f"{image.path}#box{b}.{c}")
        for n, region in enumerate(background_boxes(image, params, rng)):
            split.add(crop_resized(pixels, region, params.window), 0, f"{image.path}#bg{n}")
        mine = fillers.get(name)
        per_box = [*near_boxes(image, params, rng, outside=bool(mine)),
                   *zoom_boxes(image, params, rng, outside=bool(mine))]
        for n, region in enumerate(per_box):
            canvas = pixels
            if mine and not inside(region, pixels.shape):
                filler = read_image(mine[int(rng.integers(len(mine)))], params.channels)
                canvas, region = filled(pixels, region, filler)
            split.add(crop_resized(canvas, region, params.window), 0, f"{image.path}#near{n}")
    return splits


def write(train: Sequence[AnnotatedImage], test: Sequence[AnnotatedImage], labels: Sequence[str],
          params: DetectWindowsParams, seed: int, out: Path) -> dict[str, object]:
    """Write ``out/{train,val,test}.h5``, ``mean.json`` and ``windows.json``; return the counts."""
    classes = [params.background, *labels]
    splits = cut(train, labels, params, seed, training=True)
    splits.update(cut(test, labels, params, seed + 1, training=False))
    out.mkdir(parents=True, exist_ok=True)
    counts: dict[str, object] = {}
    for name in ("train", "val", "test"):
        split = splits.get(name, _Split())
        pixels, targets = split.arrays(params.window, params.channels)
        write_arrays(out / f"{name}.h5", pixels, targets, classes, split.names)
        counts[name] = {cls: int((targets == i).sum()) for i, cls in enumerate(classes)}
        if name == "train":
            flat = pixels.reshape(-1, params.channels)
            mean = flat.mean(axis=0) if len(pixels) else np.zeros(params.channels)
            std = flat.std(axis=0, dtype=np.float64) if len(pixels) else np.zeros(params.channels)
            atomic.write_json(out / "mean.json", {"mean": np.round(mean, 4).tolist(),
                                                  "std": np.round(std, 4).tolist(),
                                                  "images": len(pixels)})
    record = {"classes": classes, "window": list(params.window), "channels": params.channels,
              "windows": counts}
    atomic.write_json(out / "windows.json", record)
    return record
