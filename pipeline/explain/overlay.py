"""Heatmaps drawn over their images: a matplotlib colormap, blended and enlarged, and a captioned
grid of them (Pillow: drawing the grid with matplotlib took seconds of the stage's time)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np


def colorize(heat: np.ndarray, colormap: str) -> np.ndarray:
    """A heatmap ``(H, W)`` in 0..1 as uint8 RGB ``(H, W, 3)`` through matplotlib's ``colormap``."""
    import matplotlib

    rgba = matplotlib.colormaps[colormap](np.clip(heat, 0.0, 1.0))
    return np.rint(rgba[..., :3] * 255).astype(np.uint8)


def _resize(array: np.ndarray, shape: tuple[int, int], smooth: bool) -> np.ndarray:
    from PIL import Image

    height, width = shape
    mode = Image.Resampling.BILINEAR if smooth else Image.Resampling.NEAREST
    image = Image.fromarray(array.astype(np.float32), "F") if smooth else Image.fromarray(array)
    return np.asarray(image.resize((width, height), mode))


def display_shape(image_shape: tuple[int, ...], display: int) -> tuple[int, int]:
    """``(H, W)`` with the shorter side ``display`` pixels (never smaller than the image)."""
    height, width = image_shape[:2]
    scale = max(1.0, display / min(height, width))
    return round(height * scale), round(width * scale)


def blend(image: np.ndarray, heat: np.ndarray, colormap: str = "jet", alpha: float = 0.45,
          display: int = 112) -> np.ndarray:
    """``image`` (uint8 ``(H, W, 1|3)``) enlarged (nearest) so its shorter side is ``display``
    pixels, with ``heat`` (``(h, w)`` in 0..1, any resolution: bilinear) coloured over it at
    opacity ``alpha``; uint8 RGB."""
    shape = display_shape(image.shape, display)
    pixels = np.clip(np.asarray(image), 0, 255).astype(np.uint8)
    if pixels.shape[-1] == 1:
        pixels = np.repeat(pixels, 3, axis=-1)
    base = _resize(pixels, shape, smooth=False).astype(np.float32)
    coloured = colorize(np.clip(_resize(heat, shape, smooth=True), 0.0, 1.0), colormap)
    return np.rint((1.0 - alpha) * base + alpha * coloured).clip(0, 255).astype(np.uint8)


def captioned_grid(images: list[np.ndarray], captions: list[str], title: str, cols: int = 5,
                   empty: str = "nothing to explain") -> np.ndarray:
    """Same-sized uint8 RGB ``images``, ``cols`` to a row, each under its (multi-line) caption,
    below ``title``; one uint8 RGB picture (a note saying ``empty`` without images)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=11)
    line, pad = 14, 6
    h, w = images[0].shape[:2] if images else (60, 240)
    lines = max((c.count("\n") + 1 for c in captions), default=1)
    cell_h, cell_w = h + lines * line + pad, w + pad
    cols = max(1, min(cols, len(images)))
    rows = max(1, -(-len(images) // cols))
    canvas = Image.new("RGB", (max(cols * cell_w + pad, 8 * len(title)), rows * cell_h + 2 * line),
                       "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((pad, 4), title, fill="black", font=font)
    if not images:
        draw.text((pad, 2 * line + pad), empty, fill="black", font=font)
    for i, (image, caption) in enumerate(zip(images, captions, strict=True)):
        row, col = divmod(i, cols)
        left, top = pad + col * cell_w, 2 * line + row * cell_h
        draw.multiline_text((left, top), caption, fill="black", font=font, spacing=2)
        canvas.paste(Image.fromarray(image), (left, top + lines * line))
    return np.asarray(canvas)


def save_png(rgb: np.ndarray, target: Path) -> None:
    """A uint8 RGB array to ``target`` as PNG (write through :mod:`pipeline.io.atomic`)."""
    from PIL import Image

    Image.fromarray(rgb).save(target, format="PNG")


def safe(label: str) -> str:
    """A class name fit for a file name: runs of other characters become ``-``."""
    return re.sub(r"[^A-Za-z0-9_]+", "-", label).strip("-") or "class"
