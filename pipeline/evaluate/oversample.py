"""Oversampling at evaluation: predict several crops of each image and average them.

The 10-crop of Krizhevsky et al.: the four corners and the centre, plus their horizontal mirrors.
A model trained on random ``crop``-sized patches is scored on crops of that size; a model trained
on whole images is scored on crops of ``fraction`` of the stored size, resized back to its input.
With ``fraction`` 1 the views are the whole image and its mirror.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from pipeline.io.progress import progress
from pipeline.train.preprocess import Preprocessor

if TYPE_CHECKING:
    import keras

    from pipeline.io.hdf5 import Split


def crop_size(preprocessor: Preprocessor, image_hw: tuple[int, int],
              fraction: float) -> tuple[int, int]:
    """The patch size: the training crop if there was one, else ``fraction`` of the image."""
    if preprocessor.crop is not None:
        return preprocessor.crop
    h, w = image_hw
    return max(1, round(h * fraction)), max(1, round(w * fraction))


def crop_offsets(image_hw: tuple[int, int], size: tuple[int, int]) -> list[tuple[int, int]]:
    """Top-left corners of the corner and centre crops, each distinct one once (a crop the size
    of the image is a single view)."""
    (h, w), (ch, cw) = image_hw, size
    if ch > h or cw > w:
        raise ValueError(f"crop {size} is larger than the images ({h}, {w})")
    corners = [(0, 0), (0, w - cw), (h - ch, 0), (h - ch, w - cw), ((h - ch) // 2, (w - cw) // 2)]
    return list(dict.fromkeys(corners))


def view_count(image_hw: tuple[int, int], size: tuple[int, int], flip: bool) -> int:
    """How many views :func:`crop_views` makes: 10 (5 with no flip), 2 for whole-image crops."""
    return len(crop_offsets(image_hw, size)) * (2 if flip else 1)


def crop_views(batch: np.ndarray, size: tuple[int, int], flip: bool) -> list[np.ndarray]:
    """Corner and centre ``size`` crops of a ``(N, H, W, C)`` batch, then their mirrors."""
    ch, cw = size
    views = [batch[:, t:t + ch, s:s + cw] for t, s in crop_offsets(batch.shape[1:3], size)]
    if flip:
        views += [view[:, :, ::-1] for view in views]
    return views


def view_preprocessor(preprocessor: Preprocessor, image_hw: tuple[int, int]) -> Preprocessor:
    """What turns an already-cropped view into the model's input: no crop, the model's size."""
    size = preprocessor.size or (None if preprocessor.crop is not None else tuple(image_hw))
    return replace(preprocessor, crop=None, size=size)


def predict_views(model: keras.Model, preprocessor: Preprocessor, split: Split, batch_size: int,
                  fraction: float, flip: bool) -> tuple[np.ndarray, int]:
    """Mean probabilities over the views of every image of ``split``, read in contiguous blocks,
    and the number of views."""
    image_hw = split.shape[1:3]
    size = crop_size(preprocessor, image_hw, fraction)
    prepare = view_preprocessor(preprocessor, image_hw)
    n_views = view_count(image_hw, size, flip)
    step = max(1, batch_size // n_views)
    out = []
    with progress(desc=f"oversample {n_views} views", total=len(split)) as bar:
        for start in range(0, len(split), step):
            batch = split.read(start, start + step)
            views = np.concatenate([prepare(v) for v in crop_views(batch, size, flip)])
            probs = np.asarray(model.predict_on_batch(views), dtype=np.float64)
            out.append(probs.reshape(n_views, len(batch), -1).mean(axis=0))
            bar.update(len(batch))
    return np.concatenate(out), n_views
