"""Split datasets as HDF5: uint8 images chunked one per image, labels, class names, paths.

Images are decoded in parallel and written in order into a preallocated dataset, so memory stays
flat however many images there are. Each file is written under a temporary name and renamed.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np

from pipeline.atomic import atomic_path
from pipeline.images import load
from pipeline.parallel import block_length, ordered_blocks
from pipeline.params import Hdf5Params


def _decode_into(size: tuple[int, int], channels: int, resize: str, interpolation: str,
                 out: np.ndarray, paths: Sequence[str]) -> np.ndarray:
    """Decode consecutive images into ``out``; return their per-channel pixel sums.

    This runs in the workers, straight into shared memory: the writing process is on the
    critical path, and receiving pickled images or summing pixels there slowed the build
    measurably (bench/build.py).
    """
    for i, path in enumerate(paths):
        out[i] = load(path, size, channels, resize, interpolation)
    # Rows first, then pixels within a row: summing an (N, C) view directly is a strided
    # reduction about 13x slower, 7% of the decoding time at 64x64.
    per_column = out.reshape(-1, out.shape[2] * channels).sum(axis=0, dtype=np.int64)
    return per_column.reshape(-1, channels).sum(axis=0)


def build(
    rows: Sequence[Mapping[str, str]],
    classes: list[str],
    target: Path,
    params: Hdf5Params,
    channels: int,
    desc: str = "hdf5",
) -> np.ndarray:
    """Write one split's HDF5 file; return the per-channel pixel sum (float64) for the mean."""
    height, width = params.size
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted({r["label"] for r in rows} - index.keys())
    if unknown:
        raise ValueError(f"labels not in classes.json: {unknown}")
    compression = None if params.compression == "none" else params.compression
    total = np.zeros(channels, dtype=np.float64)
    with atomic_path(target) as tmp, h5py.File(tmp, "w") as f:
        images = f.create_dataset(
            "images", shape=(len(rows), height, width, channels), dtype=np.uint8,
            chunks=(1, height, width, channels) if rows else None, compression=compression,
        )
        f.create_dataset("labels", data=np.array([index[r["label"]] for r in rows], np.int32))
        f.create_dataset("paths", data=[r["path"] for r in rows], dtype=h5py.string_dtype())
        f.attrs["classes"] = json.dumps(classes)
        f.attrs["size"] = (height, width)
        f.attrs["channels"] = channels
        f.attrs["resize"] = params.resize
        f.attrs["interpolation"] = params.interpolation
        decode = functools.partial(_decode_into, tuple(params.size), channels, params.resize,
                                   params.interpolation)
        shape = (height, width, channels)
        written = 0
        for block, sums in ordered_blocks(
            decode, [r["path"] for r in rows], shape=shape, dtype=np.uint8,
            block=block_length(math.prod(shape)), workers=params.workers, desc=desc,
        ):
            images[written:written + len(block)] = block
            written += len(block)
            total += sums
    return total


def write_arrays(
    target: Path, images: np.ndarray, labels: np.ndarray, classes: list[str],
    paths: Sequence[str] | None = None,
) -> None:
    """Write in-memory uint8 ``(N, H, W, C)`` images in the same layout as :func:`build`."""
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"images must be uint8 (N, H, W, C), got {images.dtype} {images.shape}")
    n, height, width, channels = images.shape
    with atomic_path(target) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("images", data=images, chunks=(1, height, width, channels) if n else None)
        f.create_dataset("labels", data=np.asarray(labels, np.int32))
        names = list(paths) if paths is not None else [f"#{i}" for i in range(n)]
        f.create_dataset("paths", data=names, dtype=h5py.string_dtype())
        f.attrs["classes"] = json.dumps(classes)
        f.attrs["size"] = (height, width)
        f.attrs["channels"] = channels


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
