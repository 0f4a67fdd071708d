"""Batch preprocessors: random or centred patch crop, resizing to a backbone's input, mean
subtraction, per-channel standardisation, global contrast normalisation (GCN, per image),
scaling, or a pretrained backbone's own ``preprocess_input``. NumPy does the arithmetic.

The same :class:`Preprocessor` is stored beside a trained model (``preprocess.json``) so that
evaluation and prediction see exactly what training saw.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.io import atomic


@dataclass(frozen=True)
class Preprocessor:
    """From uint8 ``(N, H, W, C)`` batches to the float32 the model takes.

    Order: crop (random with an ``rng``, else centred), then resize to ``size`` and repeat a
    grey channel to RGB when ``rgb``, then either the ``backbone``'s ``preprocess_input`` or:
    with ``gcn``, each image minus its own mean, divided by its own std over all pixels and
    channels (at least ``gcn_eps``, in 0-255 units); then subtract ``mean`` and divide by
    ``std`` (per channel, 0-255 units) where given; last, divide by 255 if ``scale``. The
    params never ask for GCN and a mean together, nor for scaling a unit-free result.
    """

    scale: bool = True
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    gcn: bool = False
    gcn_eps: float = 1e-8
    crop: tuple[int, int] | None = None
    size: tuple[int, int] | None = None
    rgb: bool = False
    backbone: str | None = None

    def crop_batch(self, batch: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """The geometry: a ``crop``-sized patch of each image (random offsets with ``rng``, else
        the centre), then resized to ``size`` and made RGB as asked."""
        if self.crop is not None:
            batch = self._crop(batch, rng)
        return self._fit(batch)

    def _crop(self, batch: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        ch, cw = self.crop
        n, h, w = batch.shape[:3]
        if ch > h or cw > w:
            raise ValueError(f"crop {self.crop} is larger than the images ({h}, {w})")
        if rng is None:
            top, left = (h - ch) // 2, (w - cw) // 2
            return batch[:, top:top + ch, left:left + cw]
        tops = rng.integers(0, h - ch + 1, size=n)
        lefts = rng.integers(0, w - cw + 1, size=n)
        return np.stack([img[t:t + ch, s:s + cw] for img, t, s in zip(batch, tops, lefts,
                                                                       strict=True)])

    def _fit(self, batch: np.ndarray) -> np.ndarray:
        """Resize to ``size`` (bilinear) and repeat a single channel to RGB, as asked."""
        if self.rgb and batch.shape[-1] == 1:
            batch = np.repeat(batch, 3, axis=-1)
        if self.size is not None and tuple(batch.shape[1:3]) != tuple(self.size):
            import keras

            resized = keras.ops.image.resize(batch.astype(np.float32), self.size)
            batch = np.clip(keras.ops.convert_to_numpy(resized), 0, 255)
        return batch

    def normalise(self, batch: np.ndarray) -> np.ndarray:
        """The backbone's ``preprocess_input``, or GCN or mean subtraction and standardisation,
        then scaling; float32."""
        if self.backbone is not None:
            from pipeline.models.backbones import preprocess_input

            return preprocess_input(self.backbone, batch)
        out = batch.astype(np.float32, copy=True)
        if self.gcn:
            axes = tuple(range(1, out.ndim))
            out -= out.mean(axis=axes, keepdims=True)
            spread = np.sqrt(np.square(out).mean(axis=axes, keepdims=True))
            out /= np.maximum(spread, np.float32(self.gcn_eps))
        if self.mean is not None:
            out -= np.asarray(self.mean, dtype=np.float32)
        if self.std is not None:
            out /= np.asarray(self.std, dtype=np.float32)
        if self.scale:
            out *= np.float32(1.0 / 255.0)
        return out

    def __call__(self, batch: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        return self.normalise(self.crop_batch(batch, rng))

    def output_shape(self, image_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The ``(H, W, C)`` the model sees for stored images of ``image_shape``."""
        h, w, c = image_shape
        h, w = self.size or self.crop or (h, w)
        return (h, w, 3 if self.rgb else c)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessor:
        """The preprocessor ``to_dict`` wrote; keys an older spec lacks take their defaults."""
        mean, std = data.get("mean"), data.get("std")
        crop, size = data.get("crop"), data.get("size")
        return cls(
            scale=bool(data.get("scale", True)),
            mean=tuple(float(m) for m in mean) if mean is not None else None,
            std=tuple(float(s) for s in std) if std is not None else None,
            gcn=bool(data.get("gcn", False)),
            gcn_eps=float(data.get("gcn_eps", 1e-8)),
            crop=(int(crop[0]), int(crop[1])) if crop else None,
            size=(int(size[0]), int(size[1])) if size else None,
            rgb=bool(data.get("rgb", False)),
            backbone=data.get("backbone"),
        )


def save_spec(path: Path, preprocessor: Preprocessor, **image: Any) -> None:
    """Write ``preprocess.json``: the preprocessor plus how images were decoded (size, classes…)."""
    atomic.write_json(path, {"preprocess": preprocessor.to_dict(), **image})


def load_spec(path: Path) -> tuple[Preprocessor, dict[str, Any]]:
    """Read ``preprocess.json`` back: the preprocessor and the image settings."""
    data = atomic.read_json(path)
    return Preprocessor.from_dict(data.pop("preprocess")), data
