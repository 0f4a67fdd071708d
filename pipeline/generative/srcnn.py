"""SRCNN (Dong et al., 2014): build, train on sub-images, restore images, and score against bicubic.

The network sees the luminance of a bicubic-upscaled image and predicts the sharp luminance of its
centre: three valid convolutions (9-1-5 with 64 and 32 filters in the paper), ReLU between, mean
squared error. Colour channels are upscaled bicubically, as in the paper.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import keras
import numpy as np

from pipeline.config import Params
from pipeline.generative import superres
from pipeline.io.atomic import atomic_path, read_json, write_json
from pipeline.io.errors import InputError
from pipeline.io.images import DEFAULT_MAX_PIXELS, list_images, read_images
from pipeline.io.progress import progress
from pipeline.train.schedules import learning_rate, optimizer_named

MODEL = "model.keras"
META = "srcnn.json"


def build(filters: tuple[int, int] = (64, 32), kernels: tuple[int, int, int] = (9, 1, 5)) -> keras.Model:
    """The fully convolutional 3-layer SRCNN on one channel; any input size."""
    inputs = keras.Input((None, None, 1), name="luminance")
    x = keras.layers.Conv2D(filters[0], kernels[0], activation="relu", name="patch_extraction")(inputs)
    x = keras.layers.Conv2D(filters[1], kernels[1], activation="relu", name="nonlinear_mapping")(x)
    outputs = keras.layers.Conv2D(1, kernels[2], name="reconstruction")(x)
    return keras.Model(inputs, outputs, name="srcnn")


def psnr(y_true: Any, y_pred: Any) -> Any:
    """PSNR in dB of a batch with values in 0-1 (a Keras metric)."""
    mse = keras.ops.mean(keras.ops.square(y_true - y_pred))
    return -10.0 * keras.ops.log(keras.ops.maximum(mse, 1e-10)) / np.log(10.0)


def _read(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with h5py.File(path, "r") as f:
        return f["inputs"][:], f["labels"][:]


def train(params: Params, data_dir: Path, model_dir: Path, live_dir: Path,
          checkpoint_dir: Path) -> keras.Model:
    """Fit SRCNN on ``data_dir/train.h5`` (monitoring ``val.h5``), resuming after a kill."""
    from pipeline.train.lifecycle import TrainingRun

    sp = params.srcnn
    run = TrainingRun("srcnn", checkpoint_dir, live_dir, params.base.seed, sp.deterministic)
    meta = read_json(data_dir / "patches.json")
    edge = superres.border(sp.kernels)
    if meta["border"] != edge:
        raise InputError(f"{data_dir} was cut for a network losing {meta['border']} pixels per "
                         f"side; srcnn.kernels {list(sp.kernels)} lose {edge}: re-run srcnn_data")
    x, y = _read(data_dir / "train.h5")
    val = _read(data_dir / "val.h5") if (data_dir / "val.h5").exists() else None
    has_val = val is not None and len(val[0]) > 0
    model = build(sp.filters, sp.kernels)
    steps = -(-len(x) // sp.batch_size)
    model.compile(optimizer_named(sp.optimizer, learning_rate(sp, steps)), "mse", metrics=[psnr])
    print(f"srcnn: {model.count_params():,} parameters, {len(x):,} sub-images "
          f"({x.shape[1]} px in, {y.shape[1]} px out), x{meta['scale']}")
    run.identify({"srcnn": sp.model_dump(mode="json")}, model, data_dir / "train.h5")
    initial_epoch = run.resume()
    # bicubic_psnr: the sub-images' baseline
    with run.logging(initial_epoch, parameters=int(model.count_params()),
                     bicubic_psnr=meta["bicubic_psnr"]):
        model.fit(x, y, batch_size=sp.batch_size, epochs=sp.epochs, initial_epoch=initial_epoch,
                  validation_data=val if has_val else None, shuffle=True, verbose=0,
                  callbacks=run.callbacks("val_loss", has_val=has_val, panels=("loss", "psnr"),
                                          images=len(x)))
    run.save(model, model_dir / MODEL)
    write_json(model_dir / META, {"scale": meta["scale"], "border": edge, "channel": "Y (BT.601)",
                                  "filters": list(sp.filters), "kernels": list(sp.kernels)})
    run.finish()
    return model


def load(model_dir: Path) -> tuple[keras.Model, dict[str, Any]]:
    """A trained SRCNN and its metadata (``scale``, ``border``); :class:`InputError` if absent."""
    model_dir = Path(model_dir)
    for name in (MODEL, META):
        if not (model_dir / name).is_file():
            raise InputError(f"no {name} in {model_dir} (the srcnn stage writes it)")
    model = keras.models.load_model(model_dir / MODEL, compile=False)
    return model, read_json(model_dir / META)


def restore(model: keras.Model, channel: np.ndarray, edge: int) -> np.ndarray:
    """The network applied to a whole bicubic-upscaled luminance (0-1), same size out.

    The input is padded by ``edge`` repeated border pixels so that the valid convolutions return
    every pixel (the paper's test code filters with replicated borders too).
    """
    padded = np.pad(channel, edge, mode="edge")[None, ..., None]
    out = model.predict_on_batch(padded)
    return np.clip(keras.ops.convert_to_numpy(out)[0, ..., 0], 0.0, 1.0)


def upscale(model: keras.Model, rgb: np.ndarray, scale: int, edge: int) -> np.ndarray:
    """``rgb`` (uint8) enlarged ``scale`` times: bicubic, then SRCNN on the luminance."""
    h, w = rgb.shape[:2]
    big = superres.bicubic_rgb(rgb, w * scale, h * scale)
    return superres.replace_luminance(big, restore(model, superres.luminance(big), edge))


@dataclass(frozen=True)
class Upscaled:
    """One enlarged image: where it came from and went, and both sizes as ``(width, height)``."""

    source: Path
    target: Path
    before: tuple[int, int]
    after: tuple[int, int]


@dataclass(frozen=True)
class UpscaleRun:
    """What :func:`upscale_files` did: the factor used, the model's own, each image, the skipped."""

    scale: int
    trained_scale: int
    written: list[Upscaled]
    skipped: list[tuple[str, str]]


def upscale_files(source: Path, out: Path, model_dir: Path, scale: int | None = None,
                  max_pixels: int = DEFAULT_MAX_PIXELS) -> UpscaleRun:
    """Enlarge the image ``source`` into the file ``out``, or every image of the folder ``source``
    into the folder ``out`` (one PNG each), with the SRCNN in ``model_dir``.

    ``scale`` defaults to the factor the model was trained for. Unreadable images, and those of
    more than ``max_pixels`` pixels (not decoded), are skipped and listed; :class:`InputError`
    if none is readable or ``out``'s extension is no format.
    """
    from PIL import Image

    source, out = Path(source), Path(out)
    if not source.is_dir() and out.suffix.lower() not in Image.registered_extensions():
        raise InputError(f"{out}: {out.suffix or 'no extension'} is not an image format "
                         "(OUT's extension picks it, e.g. .png)")
    paths = list_images(source)
    if not paths:
        raise InputError(f"{source} has no image files")
    network, meta = load(model_dir)
    factor = scale or int(meta["scale"])
    images, skipped = read_images(paths, max_pixels)
    if not images:
        raise InputError(f"no readable image in {source}", [f"{p}: {why}" for p, why in skipped])
    written = []
    for path, rgb in images:
        target = out / f"{path.stem}.png" if source.is_dir() else out
        result = upscale(network, rgb, factor, int(meta["border"]))
        with atomic_path(target, suffix=target.suffix) as tmp:
            Image.fromarray(result).save(tmp)
        written.append(Upscaled(path, target, (rgb.shape[1], rgb.shape[0]),
                                (result.shape[1], result.shape[0])))
    return UpscaleRun(factor, int(meta["scale"]), written, skipped)


def score_image(model: keras.Model, rgb: np.ndarray, scale: int, edge: int) -> dict[str, Any]:
    """PSNR/SSIM of bicubic and SRCNN against one ground-truth image, and the pictures to show."""
    rgb = superres.modcrop(rgb, scale)
    truth = superres.luminance(rgb)
    bicubic = superres.degrade(truth, scale)
    restored = restore(model, bicubic, edge)
    gt8, bic8, sr8 = (superres.shave(superres.to_uint8(c), scale) for c in (truth, bicubic, restored))
    h, w = rgb.shape[:2]
    bicubic_rgb = superres.bicubic_rgb(superres.bicubic_rgb(rgb, w // scale, h // scale), w, h)
    return {
        "bicubic_psnr": superres.psnr(gt8, bic8), "srcnn_psnr": superres.psnr(gt8, sr8),
        "bicubic_ssim": superres.ssim(gt8, bic8), "srcnn_ssim": superres.ssim(gt8, sr8),
        "pictures": {"bicubic": bicubic_rgb,
                     "srcnn": superres.replace_luminance(bicubic_rgb, restored), "truth": rgb},
        "gain_map": (bic8.astype(np.float32) - gt8) ** 2 - (sr8.astype(np.float32) - gt8) ** 2,
    }


def evaluate(model_dir: Path, paths: list[Path], scale: int,
             max_pixels: int = DEFAULT_MAX_PIXELS) -> dict[str, Any]:
    """Score every readable image of at most ``max_pixels`` pixels (the others are skipped);
    means over images as in the paper's tables."""
    images, skipped = read_images(paths, max_pixels)
    if not images:
        raise InputError("no readable test images", [f"{path}: {why}" for path, why in skipped])
    model, meta = load(model_dir)
    rows, shown = [], []
    for path, rgb in progress(images, desc="srcnn_evaluate", unit="image"):
        result = score_image(model, rgb, scale, int(meta["border"]))
        rows.append({"image": path.name, **{k: round(v, 4) for k, v in result.items()
                                             if k.endswith(("psnr", "ssim"))}})
        shown.append((path.name, result))
    keys = ("bicubic_psnr", "srcnn_psnr", "bicubic_ssim", "srcnn_ssim")
    mean = {k: round(float(np.mean([r[k] for r in rows])), 4) for k in keys}
    mean["psnr_gain"] = round(mean["srcnn_psnr"] - mean["bicubic_psnr"], 4)
    return {"scale": scale, "trained_scale": meta["scale"], "images": len(rows), **mean,
            "per_image": rows, "skipped": skipped, "shown": shown}


def crops_png(shown: list[tuple[str, dict[str, Any]]], side: int, target: Path) -> None:
    """Side-by-side crops (bicubic, SRCNN, ground truth) where SRCNN gains most, one row each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.ndimage import uniform_filter

    fig, axes = plt.subplots(len(shown), 3, figsize=(7.5, 2.7 * len(shown)), squeeze=False)
    for row, (name, result) in zip(axes, shown, strict=True):
        gain = result["gain_map"]
        s = min(side, *gain.shape)
        score = uniform_filter(gain, size=s, mode="constant")
        cy, cx = np.unravel_index(int(np.argmax(score)), score.shape)
        edge = (result["pictures"]["truth"].shape[0] - gain.shape[0]) // 2
        top = int(np.clip(cy + edge - s // 2, 0, result["pictures"]["truth"].shape[0] - s))
        left = int(np.clip(cx + edge - s // 2, 0, result["pictures"]["truth"].shape[1] - s))
        titles = {"bicubic": f"bicubic {result['bicubic_psnr']:.2f} dB",
                  "srcnn": f"SRCNN {result['srcnn_psnr']:.2f} dB", "truth": f"{name} (truth)"}
        for ax, (key, title) in zip(row, titles.items(), strict=True):
            ax.imshow(result["pictures"][key][top:top + s, left:left + s], interpolation="nearest")
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    with atomic_path(target, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
