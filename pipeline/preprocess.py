"""Batch preprocessors: random or centred patch crop, mean subtraction, scaling.

The same :class:`Preprocessor` is stored beside a trained model (``preprocess.json``) so that
evaluation and prediction see exactly what training saw.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import atomic


@dataclass(frozen=True)
class Preprocessor:
    """From uint8 ``(N, H, W, C)`` batches to the float32 the model takes.

    Order: crop (random with an ``rng``, else centred), then subtract ``mean`` (per channel, in
    0-255 units), then divide by 255 if ``scale``.
    """

    scale: bool = True
    mean: tuple[float, ...] | None = None
    crop: tuple[int, int] | None = None

    def crop_batch(self, batch: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """A ``crop``-sized patch of each image: random offsets with ``rng``, else the centre."""
        if self.crop is None:
            return batch
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

    def normalise(self, batch: np.ndarray) -> np.ndarray:
        """Mean subtraction and scaling, as float32."""
        out = batch.astype(np.float32, copy=True)
        if self.mean is not None:
            out -= np.asarray(self.mean, dtype=np.float32)
        if self.scale:
            out *= np.float32(1.0 / 255.0)
        return out

    def __call__(self, batch: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        return self.normalise(self.crop_batch(batch, rng))

    def output_shape(self, image_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The ``(H, W, C)`` the model sees for stored images of ``image_shape``."""
        h, w, c = image_shape
        return (*self.crop, c) if self.crop else (h, w, c)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessor:
        mean = data.get("mean")
        crop = data.get("crop")
        return cls(
            scale=bool(data.get("scale", True)),
            mean=tuple(float(m) for m in mean) if mean is not None else None,
            crop=(int(crop[0]), int(crop[1])) if crop else None,
        )


def save_spec(path: Path, preprocessor: Preprocessor, **image: Any) -> None:
    """Write ``preprocess.json``: the preprocessor plus how images were decoded (size, classes…)."""
    atomic.write_json(path, {"preprocess": preprocessor.to_dict(), **image})


def load_spec(path: Path) -> tuple[Preprocessor, dict[str, Any]]:
    """Read ``preprocess.json`` back: the preprocessor and the image settings."""
    data = atomic.read_json(path)
    return Preprocessor.from_dict(data.pop("preprocess")), data
