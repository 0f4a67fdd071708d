"""Split datasets as HDF5: uint8 images chunked one per image, labels, class names, paths.

:func:`create_split` lays out a file (h5py does the work); :func:`write_arrays` writes images that
are already in memory, and :mod:`pipeline.data.pack` decodes a split's images into one. Every file
is written under a temporary name and renamed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from pipeline.io.atomic import atomic_path


def create_split(f: h5py.File, shape: tuple[int, int, int, int], labels: Sequence[int],
                 classes: list[str], paths: Sequence[str], compression: str | None = None,
                 **attrs: str) -> h5py.Dataset:
    """Lay out one split in the open file ``f``; return its (empty) ``images`` dataset.

    ``shape`` is ``(N, H, W, C)``; images are uint8 and chunked one per image. ``attrs`` (for
    example how the images were resized) are stored beside the classes, size and channels.
    """
    n, height, width, channels = shape
    images = f.create_dataset("images", shape=shape, dtype=np.uint8,
                              chunks=(1, height, width, channels) if n else None,
                              compression=compression)
    f.create_dataset("labels", data=np.asarray(labels, np.int32))
    f.create_dataset("paths", data=list(paths), dtype=h5py.string_dtype())
    f.attrs["classes"] = json.dumps(classes)
    f.attrs["size"] = (height, width)
    f.attrs["channels"] = channels
    for key, value in attrs.items():
        f.attrs[key] = value
    return images


def write_arrays(
    target: Path, images: np.ndarray, labels: np.ndarray, classes: list[str],
    paths: Sequence[str] | None = None,
) -> None:
    """Write in-memory uint8 ``(N, H, W, C)`` images in the layout of :func:`create_split`."""
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"images must be uint8 (N, H, W, C), got {images.dtype} {images.shape}")
    names = list(paths) if paths is not None else [f"#{i}" for i in range(len(images))]
    with atomic_path(target) as tmp, h5py.File(tmp, "w") as f:
        create_split(f, images.shape, labels, classes, names)[...] = images


class Split:
    """Read-side view of one split file: ``len``, ``classes``, ``labels``, slices of images."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        with h5py.File(self.path, "r") as f:
            self.classes: list[str] = json.loads(f.attrs["classes"])
            self.labels: np.ndarray = f["labels"][:]
            self.shape: tuple[int, ...] = tuple(f["images"].shape)
            self.decoding: dict[str, str] = {
                key: str(f.attrs[key]) for key in ("resize", "interpolation") if key in f.attrs
            }

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape))

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Images ``start:stop`` as one contiguous read."""
        with h5py.File(self.path, "r") as f:
            return f["images"][start:stop]

    def paths(self) -> list[str]:
        with h5py.File(self.path, "r") as f:
            return [p.decode() if isinstance(p, bytes) else p for p in f["paths"][:]]
