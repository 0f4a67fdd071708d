"""Decoding with Pillow: checking a file, converting any mode to 1 or 3 channels, resizing.

Pillow's own decompression-bomb guard is replaced by an explicit ``max_pixels`` check so that a
huge header is a reject with a reason, not a warning or a crash. Every reader of a user's image
(:func:`inspect`, :func:`load`, :func:`read_rgb`, :func:`read_images`) checks the width and
height the header claims before decoding a pixel; the limit is ``ingest.max_pixels``, or its
schema default :data:`DEFAULT_MAX_PIXELS` where a command has no params file.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pipeline.config import IngestParams

Image.MAX_IMAGE_PIXELS = None  # checked explicitly against params (ingest.max_pixels)

#: Modes we know how to bring to L or RGB.
SUPPORTED_MODES = frozenset(
    {"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV",
     "I", "I;16", "I;16L", "I;16B", "I;16N"}
)
SIXTEEN_BIT_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})
RESAMPLING = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
}
#: EXIF orientations that swap width and height.
_TRANSPOSED = frozenset({5, 6, 7, 8})


class RejectedImage(Exception):
    """A file that is not a usable image; ``reason`` is one short word for the report."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class ImageInfo:
    """What ingest records of an accepted image."""

    sha256: str
    bytes: int
    width: int
    height: int
    mode: str
    format: str


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(0x0112, 1))
    except Exception:  # a broken EXIF block is no reason to drop the pixels
        return 1


#: ``ingest.max_pixels``'s default: the pixel limit of commands that have no params file.
DEFAULT_MAX_PIXELS: int = IngestParams().max_pixels


def check_pixels(img: Image.Image, max_pixels: int | None) -> None:
    """Raise :class:`RejectedImage` (too-many-pixels) if ``img``'s header claims more than
    ``max_pixels`` pixels (``None``: no limit). Pillow has read only the header at this point."""
    width, height = img.size
    if max_pixels is not None and width * height > max_pixels:
        raise RejectedImage("too-many-pixels", f"{width}x{height} > {max_pixels} pixels")


def inspect(path: str | Path, max_pixels: int) -> ImageInfo:
    """Hash and fully decode one file; raise :class:`RejectedImage` saying why it is unusable."""
    data = Path(path).read_bytes()
    if not data:
        raise RejectedImage("zero-byte")
    digest = hashlib.sha256(data).hexdigest()
    try:
        img = Image.open(Path(path))
    except UnidentifiedImageError:
        raise RejectedImage("not-an-image", "Pillow cannot identify the format") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise RejectedImage("not-an-image", str(exc)) from None
    with img:
        width, height = img.size
        check_pixels(img, max_pixels)
        if img.mode not in SUPPORTED_MODES:
            raise RejectedImage("unsupported-mode", img.mode)
        try:
            img.load()
        except (OSError, SyntaxError, ValueError) as exc:
            raise RejectedImage("truncated", str(exc)) from None
        if _orientation(img) in _TRANSPOSED:
            width, height = height, width
        return ImageInfo(digest, len(data), width, height, img.mode, img.format or "")


def to_channels(img: Image.Image, channels: int) -> Image.Image:
    """Convert any supported mode to ``L`` (1 channel) or ``RGB`` (3 channels)."""
    if img.mode in SIXTEEN_BIT_MODES:
        wide = np.asarray(img, dtype=np.float64)
        img = Image.fromarray(np.clip(np.rint(wide / 257.0), 0, 255).astype(np.uint8), "L")
    elif img.mode in {"P", "PA"}:
        img = img.convert("RGBA")
    target = "L" if channels == 1 else "RGB"
    return img if img.mode == target else img.convert(target)


def _draft_size(size: tuple[int, int], target_hw: tuple[int, int], aspect: bool) -> tuple[int, int]:
    """The smallest (w, h) a JPEG may be decoded at and still cover the resize target."""
    width, height = size
    th, tw = target_hw
    if aspect:
        scale = max(tw / width, th / height)
        return math.ceil(width * scale), math.ceil(height * scale)
    return tw, th


def load(
    path: str | Path,
    size: tuple[int, int],
    channels: int,
    resize: str = "simple",
    interpolation: str = "bilinear",
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Decode, orient, convert and resize one image to a ``(H, W, C)`` uint8 array.

    ``size`` is ``(height, width)``. An image of more than ``max_pixels`` pixels is not
    decoded: :class:`RejectedImage` (``None``: no limit, for images ingest already checked).
    ``resize="aspect"`` scales the shorter side to fit and centre-crops the longer one. JPEGs
    are decoded in draft mode (a reduced DCT scale) when the target is smaller, which is much
    faster than decoding full size and shrinking.
    """
    with Image.open(path) as img:
        check_pixels(img, max_pixels)
        transposed = _orientation(img) in _TRANSPOSED
        if img.format == "JPEG":
            stored_target = (size[1], size[0]) if transposed else size
            img.draft(img.mode, _draft_size(img.size, stored_target, resize == "aspect"))
        img = to_channels(ImageOps.exif_transpose(img), channels)
    method = RESAMPLING[interpolation]
    th, tw = size
    if resize == "aspect":
        img = ImageOps.fit(img, (tw, th), method=method)
    elif img.size != (tw, th):
        img = img.resize((tw, th), method)
    array = np.asarray(img, dtype=np.uint8)
    return array[..., None] if array.ndim == 2 else array


#: File endings taken as images by every command that lists a folder (ingest's default).
IMAGE_EXTENSIONS = frozenset(IngestParams().extensions)


def list_images(path: str | Path, pattern: str = "*") -> list[Path]:
    """``path`` itself if it is a file, else its files matching ``pattern`` that are images."""
    path = Path(path)
    if path.is_file():
        return [path]
    return sorted(p for p in path.glob(pattern)
                  if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def read_rgb(path: str | Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """An image file as uint8 RGB ``(H, W, 3)``, EXIF orientation applied; :class:`RejectedImage`
    without decoding it if it has more than ``max_pixels`` pixels."""
    with Image.open(path) as img:
        check_pixels(img, max_pixels)
        img = ImageOps.exif_transpose(img)
        return np.asarray(img.convert("RGB"))


def read_images(
    paths: list[Path], max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> tuple[list[tuple[Path, np.ndarray]], list[tuple[str, str]]]:
    """The readable images as RGB, and ``(path, reason)`` for those skipped (unreadable, or
    more than ``max_pixels`` pixels: ``too-many-pixels: WxH > N pixels``)."""
    images, skipped = [], []
    for path in paths:
        try:
            images.append((path, read_rgb(path, max_pixels)))
        except RejectedImage as exc:
            skipped.append((str(path), str(exc)))
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            skipped.append((str(path), f"{type(exc).__name__}: {exc}"))
    return images, skipped


def expand(paths: list[Path]) -> list[Path]:
    """Files as given, and the image files inside folders (recursively, sorted)."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(p for p in path.rglob("*")
                              if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS))
        else:
            out.append(path)
    return out
