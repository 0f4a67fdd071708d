"""Grids of titled images: the misclassified ones (true and predicted label), GAN samples."""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np

from pipeline.io.atomic import atomic_path


def misclassified(labels: np.ndarray, predicted: np.ndarray, confidence: np.ndarray,
                  limit: int) -> np.ndarray:
    """Indices of the wrong predictions, most confident first, at most ``limit``."""
    wrong = np.flatnonzero(labels != predicted)
    return wrong[np.argsort(-confidence[wrong], kind="stable")][:limit]


def grid_png(images_path: Path, indices: np.ndarray, titles: list[str], target: Path,
             title: str) -> None:
    """Draw the images at ``indices`` of an HDF5 split, one titled cell each, to a PNG.

    With no indices, the PNG says that nothing was misclassified (the output always exists).
    """
    images = np.empty((0, 1, 1, 1), np.uint8)
    if len(indices):
        with h5py.File(images_path, "r") as f:
            # Per-index reads in file order: much faster than h5py fancy indexing.
            order = np.argsort(indices)
            read = {int(indices[i]): f["images"][int(indices[i])] for i in order}
        images = np.stack([read[int(i)] for i in indices])
    titled_grid(images, titles, target, title, empty="no misclassified images")


def titled_grid(images: np.ndarray, titles: list[str], target: Path, title: str,
                empty: str = "no images") -> None:
    """uint8 images ``(N, H, W, C)``, five to a row, each with its title, as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(images)
    cols = min(5, max(n, 1))
    rows = max(1, math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.4 * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, label in zip(axes.flat, images, titles, strict=False):
        ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray",
                  interpolation="nearest")
        ax.set_title(label, fontsize=8)
    if not n:
        axes[0, 0].text(0.5, 0.5, empty, ha="center", va="center")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(target, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=80)
    plt.close(fig)
