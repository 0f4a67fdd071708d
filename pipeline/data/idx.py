"""IDX files (MNIST's format) read into arrays and written out as an image dataset with its split."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.io.errors import InputError
from pipeline.io.tables import write_csv

#: IDX type codes this reader accepts (unsigned bytes only, as MNIST uses).
_UBYTE = 0x08


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (optionally gzipped) as a uint8 array of its declared shape."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != _UBYTE:
        raise InputError(f"{path} is not an unsigned-byte IDX file")
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims)
    if body.size != int(np.prod(shape)):
        raise InputError(f"{path}: header says {shape}, found {body.size} values")
    return body.reshape(shape)


MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def export_mnist(source: Path, out: Path) -> int:
    """Write MNIST's IDX files as ``out/<split>/<label>/<index>.png`` and ``out/manifest.csv``.

    The manifest has columns ``path,label,split``: the official 60k/10k train/test split travels
    with the images, and the split stage keeps it (``split: test`` rows stay in test). ``out``
    must be empty or missing (:class:`InputError` otherwise).
    """
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out} is not an empty folder")
    rows = []
    for split, (images_name, labels_name) in MNIST_FILES.items():
        images = read_idx(source / images_name)
        labels = read_idx(source / labels_name)
        if len(images) != len(labels):
            raise InputError(f"{source}: {split}: {len(images)} images but {len(labels)} labels")
        for index, (image, label) in enumerate(zip(images, labels, strict=True)):
            relative = Path(split) / str(int(label)) / f"{index:05d}.png"
            (out / relative.parent).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image, "L").save(out / relative)
            rows.append({"path": relative.as_posix(), "label": int(label), "split": split})
    write_csv(out / "manifest.csv", ["path", "label", "split"], rows)
    return len(rows)
