"""The embedded detection default: scikit-learn's 8x8 digits pasted onto scikit-image's photos.

Both ship inside the installed packages (``sklearn.datasets.load_digits`` and the images that
``skimage.data`` loads without a download), so the default run needs no network. Each scene is
a random crop of a grey photo resized (OpenCV, area interpolation) to the scene size, with
0 or a few digits resized (OpenCV, bilinear) to random square sides, never overlapping. A digit
is drawn as bright strokes over a darkened halo, inside its square only: the pixels outside
every box are the photo's. The scenes are written as PNGs and an ordinary annotations CSV
(``path,label,xmin,ymin,xmax,ymax``; a scene with no digit has no row), so they go through the
same reader and checks as a user's CSV.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from pipeline.config.detect import ScenesParams
from pipeline.io.tables import csv_text

#: ``skimage.data`` photos in the installed package (no download): textures, objects, text.
BACKGROUNDS = ("brick", "grass", "gravel", "camera", "coins", "moon", "text", "page", "cell", "clock")
FIELDS = ["path", "label", "xmin", "ymin", "xmax", "ymax"]
#: How much the background under a stroke's halo is darkened (0: not at all, 1: to black).
HALO = 0.6
_PLACEMENT_TRIES = 100


def backgrounds() -> list[np.ndarray]:
    """The :data:`BACKGROUNDS` photos as 2-D uint8 arrays."""
    import skimage.data

    out = []
    for name in BACKGROUNDS:
        image = np.asarray(getattr(skimage.data, name)())
        if image.ndim == 3:
            image = cv2.cvtColor(image[..., :3], cv2.COLOR_RGB2GRAY)
        out.append(image.astype(np.uint8))
    return out


def digit_patch(digit: np.ndarray, side: int) -> np.ndarray:
    """An 8x8 digit of 0-16 grey levels as a ``side x side`` uint8 patch, stretched so that its
    brightest cell is 255."""
    scaled = digit.astype(np.float32) * np.float32(255.0 / max(float(digit.max()), 1.0))
    resized = cv2.resize(scaled, (side, side), interpolation=cv2.INTER_LINEAR)
    return np.clip(np.rint(resized), 0, 255).astype(np.uint8)


def paste(scene: np.ndarray, patch: np.ndarray, y: int, x: int) -> None:
    """Draw ``patch`` into ``scene`` at ``(y, x)`` in place: ``max(background * (1 - HALO *
    halo), patch)`` where the halo is the patch dilated by one pixel (OpenCV), so the strokes
    are bright on any background and the region is at least ``patch`` everywhere."""
    side_y, side_x = patch.shape
    region = scene[y:y + side_y, x:x + side_x].astype(np.float32)
    halo = cv2.dilate(patch, np.ones((3, 3), np.uint8)).astype(np.float32) / 255.0
    darkened = np.rint(region * (1.0 - HALO * halo)).astype(np.uint8)
    scene[y:y + side_y, x:x + side_x] = np.maximum(darkened, patch)


def _crop(rng: np.random.Generator, photo: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A random crop of ``photo`` with the scene's aspect ratio, resized to ``size`` (h, w)."""
    height, width = size
    most = min(photo.shape[0] / height, photo.shape[1] / width)
    scale = most * rng.uniform(0.4, 1.0)
    crop_h = min(photo.shape[0], max(1, round(height * scale)))
    crop_w = min(photo.shape[1], max(1, round(width * scale)))
    y = int(rng.integers(0, photo.shape[0] - crop_h + 1))
    x = int(rng.integers(0, photo.shape[1] - crop_w + 1))
    crop = photo[y:y + crop_h, x:x + crop_w]
    shrink = crop_h > height
    return cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


class _DigitPool:
    """Digit images per class, each used once before any is used again (shuffled per round)."""

    def __init__(self, rng: np.random.Generator, classes: list[int]):
        from sklearn.datasets import load_digits

        digits = load_digits()
        self.rng = rng
        self.images = digits.images
        self.by_class = {c: np.flatnonzero(digits.target == c) for c in classes}
        self.queues: dict[int, list[int]] = {c: [] for c in classes}

    def take(self, digit: int) -> np.ndarray:
        if not self.queues[digit]:
            self.queues[digit] = [int(i) for i in self.rng.permutation(self.by_class[digit])]
        return self.images[self.queues[digit].pop()]


def _overlaps(box: tuple[int, int, int, int], boxes: list[tuple[int, int, int, int]]) -> bool:
    x0, y0, x1, y1 = box
    return any(x0 < b[2] and b[0] < x1 and y0 < b[3] and b[1] < y1 for b in boxes)


def make_scene(rng: np.random.Generator, params: ScenesParams, photos: list[np.ndarray],
               pool: _DigitPool, count: int) -> tuple[np.ndarray, list[tuple[str, int, int, int, int]]]:
    """One scene with up to ``count`` digits; returns the image and ``(label, x0, y0, x1, y1)``
    per digit (``x1 = x0 + side``). A digit that finds no free place is left out."""
    height, width = params.image_size
    scene = _crop(rng, photos[int(rng.integers(len(photos)))], (height, width))
    placed: list[tuple[int, int, int, int]] = []
    labels: list[str] = []
    for _ in range(count):
        digit = int(rng.choice(params.digits))
        side = int(rng.integers(params.object_sizes[0], params.object_sizes[1] + 1))
        for _try in range(_PLACEMENT_TRIES):
            y = int(rng.integers(0, height - side + 1))
            x = int(rng.integers(0, width - side + 1))
            box = (x, y, x + side, y + side)
            if not _overlaps(box, placed):
                break
        else:
            continue
        paste(scene, digit_patch(pool.take(digit), side), y, x)
        placed.append(box)
        labels.append(str(digit))
    return scene, [(label, *box) for label, box in zip(labels, placed, strict=True)]


def _replace_dir(tmp: Path, out: Path) -> None:
    """Put the finished folder ``tmp`` in place of ``out`` (renames; the old one is deleted)."""
    if not out.exists():
        os.replace(tmp, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    old.rmdir()
    os.replace(out, old)
    os.replace(tmp, out)
    if old.is_dir():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink(missing_ok=True)


def write_scenes(out: Path, params: ScenesParams, seed: int | None = None) -> None:
    """Write ``params.images`` scenes as ``out/images/scene_NNNN.png`` and their boxes as
    ``out/annotations.csv``, replacing ``out`` as a whole (built in a temporary sibling folder,
    then renamed). The same seed (``None``: ``params.seed``) gives the same files, byte for byte."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(params.seed if seed is None else seed)
    photos = backgrounds()
    pool = _DigitPool(rng, sorted(set(params.digits)))
    negatives = set(rng.permutation(params.images)[: round(params.images * params.negatives)].tolist())
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        (tmp / "images").mkdir()
        rows = []
        for index in range(params.images):
            count = 0 if index in negatives else int(rng.integers(params.objects[0], params.objects[1] + 1))
            scene, boxes = make_scene(rng, params, photos, pool, count)
            name = f"images/scene_{index:04d}.png"
            Image.fromarray(scene, "L").save(tmp / name, optimize=False)
            rows += [dict(zip(FIELDS, (name, *box), strict=True)) for box in boxes]
        (tmp / "annotations.csv").write_text(csv_text(FIELDS, rows), encoding="utf-8")
        _replace_dir(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
