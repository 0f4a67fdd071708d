"""Backbone features of a split, streamed into HDF5: ``features`` (N, D), ``labels``, ``paths``.

Batches are read from the split's HDF5 file one ahead of the model (a worker thread), run through
the backbone, and written straight to the output, so memory stays flat as the dataset grows.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h5py
import numpy as np

from pipeline.io.atomic import atomic_path
from pipeline.io.hdf5 import Split
from pipeline.train.preprocess import Preprocessor


def feature_model(backbone, pooling: str, layer: str | None = None):
    """The backbone, cut at ``layer``'s output when given (any layer with a 4-D output; else a
    params error naming ``extract_features.layer``), followed by ``pooling`` (avg, max or
    flatten): one vector per image."""
    import keras
    from keras import layers

    from pipeline.transfer.layers import feature_layers, require_layer

    output, name = backbone.output, f"{backbone.name}_{pooling}"
    if layer is not None:
        require_layer(layer, feature_layers(backbone), "extract_features.layer", backbone.name)
        output, name = backbone.get_layer(layer).output, f"{backbone.name}_{layer}_{pooling}"
    pool = {"avg": layers.GlobalAveragePooling2D, "max": layers.GlobalMaxPooling2D,
            "flatten": layers.Flatten}[pooling]()
    return keras.Model(backbone.input, pool(output), name=name)


def extract(
    model, split_path: Path, target: Path, preprocessor: Preprocessor, batch_size: int,
    dtype: str = "float32", flip: bool = False, attrs: dict | None = None, progress: bool = True,
) -> int:
    """Write ``model``'s outputs for every image of ``split_path`` to ``target`` (atomically).

    With ``flip`` each row is the mean of the image's and its mirror image's features.
    Returns the number of images.
    """
    from pipeline.io.progress import progress as progress_bar
    from pipeline.train.loader import HDF5Loader

    split = Split(split_path)
    width = int(np.prod(model.output_shape[1:]))
    with atomic_path(target) as tmp, h5py.File(tmp, "w") as f:
        out = f.create_dataset("features", shape=(len(split), width), dtype=dtype,
                               chunks=(min(len(split), 256), width) if len(split) else None)
        f.create_dataset("labels", data=split.labels.astype(np.int32))
        f.create_dataset("paths", data=split.paths(), dtype=h5py.string_dtype())
        f.attrs["classes"] = json.dumps(split.classes)
        for key, value in (attrs or {}).items():
            f.attrs[key] = value
        if len(split) == 0:
            return 0
        # Streamed (never read whole into memory), so memory stays flat however large the split.
        loader = HDF5Loader(split_path, batch_size, preprocessor, memory_limit_mb=0)
        bar = progress_bar(desc=f"features {split_path.stem}", total=len(split), enabled=progress)
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(loader.__getitem__, 0)
            start = 0
            for index in range(len(loader)):
                images, _ = pending.result()
                if index + 1 < len(loader):
                    pending = pool.submit(loader.__getitem__, index + 1)
                rows = forward(model, images, flip)
                out[start:start + len(rows)] = rows.reshape(len(rows), -1).astype(dtype)
                start += len(rows)
                bar.update(len(rows))
        bar.close()
        loader.close()
    return len(split)


def forward(model, images: np.ndarray, flip: bool) -> np.ndarray:
    import keras

    rows = keras.ops.convert_to_numpy(model.predict_on_batch(images))
    if flip:
        mirrored = keras.ops.convert_to_numpy(model.predict_on_batch(images[:, :, ::-1].copy()))
        rows = (rows + mirrored) / 2
    return rows


class FeatureSplit:
    """Read side of a features file: ``features``, ``labels``, ``classes``, ``paths``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        with h5py.File(self.path, "r") as f:
            self.features: np.ndarray = f["features"][:].astype(np.float32)
            self.labels: np.ndarray = f["labels"][:]
            self.classes: list[str] = json.loads(f.attrs["classes"])
            self.attrs = {k: f.attrs[k] for k in f.attrs if k != "classes"}
            self.paths = [p.decode() if isinstance(p, bytes) else p for p in f["paths"][:]]

    def __len__(self) -> int:
        return len(self.labels)
