"""The dream and stylize stages' runs: read the images, optimise, log every step, write results.

DeepDream (:mod:`pipeline.generative.dream`) and style transfer
(:mod:`pipeline.generative.style`) report each step; :class:`~pipeline.generative.steps_log.StepLog`
turns that into dvclive plots (each loss per step) and image plots (every ``log_every`` steps and
after each octave). The result is written as one PNG (a cached output, so ``cvpipe exp-grid``
can draw it for every experiment) beside a before/after picture, all atomically.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config.reverse import DreamParams, NetParams, StylizeParams
from pipeline.detect.drawing import crop_grid, save_image
from pipeline.io.errors import InputError
from pipeline.io.images import RejectedImage, read_rgb


def read_image(path: str | Path, key: str, max_pixels: int | None) -> np.ndarray:
    """uint8 RGB pixels of ``path``; :class:`InputError` naming ``key`` and the file if it is
    missing, unreadable or over ``max_pixels``."""
    try:
        return read_rgb(path, max_pixels)
    except FileNotFoundError:
        raise InputError(f"{key}: no such image: {path}") from None
    except RejectedImage as exc:
        raise InputError(f"{key}: {path}: {exc}") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"{key}: {path}: not a readable image ({exc})") from None


def random_weights_note(net: NetParams, key: str) -> str | None:
    """The warning to print when ``net`` has random weights."""
    if net.weights == "none":
        return (f"{key}.net.weights is none: random weights. The picture shows that the stage "
                f"runs, not what a trained network sees (give a weights file).")
    return None


def side_by_side(images: list[np.ndarray], captions: list[str], tile: int = 256):
    """The images next to each other, each fitted to a ``tile`` square, captioned."""
    return crop_grid(images, captions, cols=len(images), tile=(tile, tile))


def run_dream(params: DreamParams, out: Path, max_pixels: int | None,
              image_path: str | None = None, live: bool = True) -> dict[str, Any]:
    """DeepDream on ``params.image`` (or ``image_path``); writes ``out/dream.png``,
    ``out/before_after.png`` and, with ``live``, dvclive's per-step log and ``metrics.json``.
    Returns the headline numbers."""
    from pipeline.generative.dream import dream, fit_longer_side
    from pipeline.generative.steps_log import StepLog

    source = image_path or params.image
    image = read_image(source, "dream.image", max_pixels)
    log = StepLog(out) if live else None
    losses: list[tuple[int, float]] = []

    def on_step(octave: int, step: int, loss: float, shown: np.ndarray | None) -> None:
        losses.append((octave, float(loss)))
        if log is not None:
            log.step({"loss": loss}, shown, tag=f"octave_{octave + 1}")

    start = time.perf_counter()
    result = dream(image, params, on_step)
    seconds = time.perf_counter() - start
    save_image(out / "dream.png", _png(result))
    before = fit_longer_side(image, params.max_side)
    save_image(out / "before_after.png", side_by_side([before, result], ["before", "after"]))
    firsts = {o: v for o, v in reversed(losses)}
    lasts = {o: v for o, v in losses}
    summary = {"octaves": len(lasts), "steps": len(losses), "seconds": round(seconds, 2),
               "loss_first": _sig(firsts[0]), "loss_last": _sig(lasts[max(lasts)])}
    if log is not None:
        log.close(summary)
    return summary


def _sig(value: float) -> float:
    """``value`` to 4 significant digits (losses on random weights can be 1e-12)."""
    return float(f"{value:.4g}")


def _png(image: np.ndarray):
    from PIL import Image

    return Image.fromarray(image)


def run_stylize(params: StylizeParams, out: Path, max_pixels: int | None,
                content_path: str | None = None, style_path: str | None = None,
                live: bool = True) -> dict[str, Any]:
    """Style transfer of ``params.style`` onto ``params.content`` (or the paths given); writes
    ``out/stylized.png``, ``out/before_after.png`` (content, style, result) and, with ``live``,
    dvclive's per-step log and ``metrics.json``. Returns the headline numbers."""
    from pipeline.generative.steps_log import StepLog
    from pipeline.generative.style import resized, stylize

    content = read_image(content_path or params.content, "stylize.content", max_pixels)
    style = read_image(style_path or params.style, "stylize.style", max_pixels)
    log = StepLog(out) if live else None

    def on_step(step: int, losses: dict[str, float], shown: np.ndarray | None) -> None:
        if log is not None:
            log.step(losses, shown, tag="steps")

    result, record = stylize(content, style, params, on_step)
    save_image(out / "stylized.png", _png(result))
    size = tuple(params.image_size)
    pictures = [np.clip(resized(content, size), 0, 255).astype(np.uint8),
                np.clip(resized(style, size), 0, 255).astype(np.uint8), result]
    save_image(out / "before_after.png", side_by_side(pictures, ["content", "style", "result"]))
    first, last = record["first"], record["last"]
    summary = {"steps": record["iterations"], "seconds_per_step": round(record["seconds_per_step"], 4),
               **{f"{k}_last": _sig(last[k]) for k in ("content", "style", "tv", "total")},
               "style_fraction": _sig(last["style"] / first["style"]) if first["style"] else None}
    if log is not None:
        log.close(summary)
    return summary
