"""Super-resolution data and measures, without Keras: luminance, bicubic degradation, training
sub-images, PSNR and SSIM.

The conventions are those of the SRCNN paper's evaluation code, so that the numbers compare with
its tables: images are cropped to a multiple of the scale (modcrop); the luminance is ITU-R
BT.601 ``Y`` in 16-235 (MATLAB's ``rgb2ycbcr``), rounded to 8 bits; the low-resolution input is a
bicubic downscale by the factor followed by a bicubic upscale back to the original size; PSNR and
SSIM are measured on ``Y`` with ``scale`` pixels shaved off each border.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


def modcrop(image: np.ndarray, scale: int) -> np.ndarray:
    """``image`` cropped (bottom and right) to a height and width divisible by ``scale``."""
    h, w = image.shape[:2]
    return image[: h - h % scale, : w - w % scale]


def luminance(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luminance in 16-235 (as MATLAB's ``rgb2ycbcr``), rounded, as float32 in 0-1."""
    from skimage.color import rgb2ycbcr

    return (np.rint(rgb2ycbcr(rgb)[..., 0]) / 255.0).astype(np.float32)


def resize(channel: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bicubic resize of one float32 channel (antialiased when shrinking, as MATLAB's imresize)."""
    img = Image.fromarray(np.ascontiguousarray(channel, dtype=np.float32), "F")
    return np.asarray(img.resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)


def degrade(channel: np.ndarray, scale: int) -> np.ndarray:
    """The network's input: ``channel`` shrunk by ``scale`` and enlarged back, both bicubic."""
    h, w = channel.shape
    small = resize(channel, w // scale, h // scale)
    return resize(small, w, h)


def border(kernels: list[int] | tuple[int, ...]) -> int:
    """Pixels lost on each side by valid convolutions with these kernel sizes (6 for 9-1-5)."""
    return sum(k - 1 for k in kernels) // 2


@dataclass(frozen=True)
class Patches:
    """Training sub-images: low-resolution inputs and the aligned high-resolution centres."""

    inputs: np.ndarray  # (N, size, size, 1) float32
    labels: np.ndarray  # (N, size - 2 * border, size - 2 * border, 1) float32


def cut_patches(hr: np.ndarray, scale: int, size: int, stride: int, edge: int) -> Patches:
    """Sub-images of one luminance image ``hr`` (float 0-1), top-left corners every ``stride``.

    The input is ``degrade(hr)[y:y+size, x:x+size]``; the label is ``hr`` at the same place with
    ``edge`` pixels cut from every side: exactly the pixels a network whose valid convolutions
    lose ``edge`` per side predicts from that input.
    """
    hr = modcrop(hr, scale)
    lr = degrade(hr, scale)
    h, w = hr.shape
    inner = size - 2 * edge
    corners = [(y, x) for y in range(0, h - size + 1, stride) for x in range(0, w - size + 1, stride)]
    inputs = np.empty((len(corners), size, size, 1), np.float32)
    labels = np.empty((len(corners), inner, inner, 1), np.float32)
    for i, (y, x) in enumerate(corners):
        inputs[i, ..., 0] = lr[y:y + size, x:x + size]
        labels[i, ..., 0] = hr[y + edge:y + edge + inner, x + edge:x + edge + inner]
    return Patches(inputs, labels)


def to_uint8(channel: np.ndarray) -> np.ndarray:
    """A 0-1 float channel as 8-bit values (rounded, clipped), as the paper's code scores them."""
    return np.clip(np.rint(channel * 255.0), 0, 255).astype(np.uint8)


def shave(image: np.ndarray, pixels: int) -> np.ndarray:
    """``image`` without ``pixels`` rows and columns at every border."""
    return image[pixels:-pixels, pixels:-pixels] if pixels else image


def psnr(reference: np.ndarray, test: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of 8-bit images: ``10 log10(255² / MSE)``."""
    from skimage.metrics import peak_signal_noise_ratio

    return float(peak_signal_noise_ratio(reference, test, data_range=255))


def ssim(reference: np.ndarray, test: np.ndarray) -> float:
    """SSIM of 8-bit grey images with Wang et al.'s settings (Gaussian window, σ = 1.5)."""
    from skimage.metrics import structural_similarity

    return float(structural_similarity(reference, test, data_range=255, gaussian_weights=True,
                                       sigma=1.5, use_sample_covariance=False))


def bicubic_rgb(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bicubic resize of a uint8 RGB image."""
    img = Image.fromarray(rgb, "RGB").resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(img)


def replace_luminance(rgb: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``rgb`` (uint8) with its BT.601 luminance replaced by ``y`` (0-1 float), colour kept."""
    from skimage.color import rgb2ycbcr, ycbcr2rgb

    ycbcr = rgb2ycbcr(rgb)
    ycbcr[..., 0] = np.clip(y * 255.0, 16.0, 235.0)
    return np.clip(np.rint(ycbcr2rgb(ycbcr) * 255.0), 0, 255).astype(np.uint8)


def write_patches(paths: list[Path], out: Path, scale: int, size: int, stride: int, edge: int,
                  val: float, seed: int, *, max_pixels: int) -> dict:
    """Cut sub-images from every readable image into ``out/train.h5`` and ``out/val.h5``.

    Images of more than ``max_pixels`` pixels (``ingest.max_pixels``) are skipped undecoded.

    Each file holds ``inputs`` and ``labels`` (float32, chunked); a seeded ``val`` fraction of the
    sub-images goes to ``val.h5``. ``patches.json`` records the geometry, the counts and the
    skipped files. Returns that record.
    """
    import h5py

    from pipeline.io.atomic import atomic_path, write_json
    from pipeline.io.errors import InputError
    from pipeline.io.images import read_images
    from pipeline.io.progress import progress

    images, skipped = read_images(paths, max_pixels)
    parts = [cut_patches(luminance(rgb), scale, size, stride, edge)
             for _, rgb in progress(images, desc="sub-images", unit="image")]
    parts = [p for p in parts if len(p.inputs)]
    if not parts:
        raise InputError(f"no image is at least {size}x{size} pixels: no sub-images")
    inputs = np.concatenate([p.inputs for p in parts])
    labels = np.concatenate([p.labels for p in parts])
    order = np.random.default_rng(seed).permutation(len(inputs))
    n_val = round(val * len(inputs))
    counts = {}
    for name, idx in (("val", np.sort(order[:n_val])), ("train", np.sort(order[n_val:]))):
        with atomic_path(out / f"{name}.h5", suffix=".h5") as tmp, h5py.File(tmp, "w") as f:
            for key, data in (("inputs", inputs[idx]), ("labels", labels[idx])):
                f.create_dataset(key, data=data, chunks=(min(64, max(len(data), 1)), *data.shape[1:]))
        counts[name] = len(idx)
    inner = slice(edge, size - edge)
    mse = float(np.mean((inputs[:, inner, inner] - labels) ** 2))
    record = {"scale": scale, "size": size, "label_size": size - 2 * edge, "stride": stride,
              "border": edge, "bicubic_psnr": round(-10.0 * np.log10(max(mse, 1e-10)), 4),
              "images": [p.name for p, _ in images], "skipped": skipped, **counts}
    write_json(out / "patches.json", record)
    return record
