"""The dream and stylize stages' runs: read the images, optimise, log every step, write results.

DeepDream (:mod:`pipeline.generative.dream`) and style transfer
(:mod:`pipeline.generative.style`) report each step; :class:`~pipeline.generative.steps_log.StepLog`
turns that into dvclive plots (each loss per step) and image plots (every ``log_every`` steps and
after each octave). The result is written as one PNG (a cached output, so ``cvpipe exp-grid``
can draw it for every experiment) beside a before/after picture, all atomically. The log is
opened at the first step, so input refused before it leaves the stage's folder as it was.
:func:`dream_file` and :func:`stylize_file` (the ``cvpipe dream|stylize ... OUTPUT`` commands)
write the one result file and nothing else.
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


class _StepLogOnFirstStep:
    """A :class:`~pipeline.generative.steps_log.StepLog` in ``out`` opened at the first step, so
    that input refused before it (a layer the network lacks, an image too small) leaves ``out``
    as it was; ``out`` None logs nothing."""

    def __init__(self, out: Path | None):
        self.out = out
        self.log = None

    def step(self, losses: dict[str, float], image: np.ndarray | None, tag: str) -> None:
        if self.out is None:
            return
        if self.log is None:
            from pipeline.generative.steps_log import StepLog

            self.log = StepLog(self.out)
        self.log.step(losses, image, tag=tag)

    def close(self, summary: dict[str, Any]) -> None:
        if self.log is not None:
            self.log.close(summary)


def _dream(params: DreamParams, image: np.ndarray, log: _StepLogOnFirstStep
           ) -> tuple[np.ndarray, dict[str, Any]]:
    """The dreamed image of ``image`` and the headline numbers, each step logged to ``log``."""
    from pipeline.generative.dream import dream

    losses: list[tuple[int, float]] = []

    def on_step(octave: int, step: int, loss: float, shown: np.ndarray | None) -> None:
        losses.append((octave, float(loss)))
        log.step({"loss": loss}, shown, tag=f"octave_{octave + 1}")

    start = time.perf_counter()
    result = dream(image, params, on_step)
    seconds = time.perf_counter() - start
    firsts = {o: v for o, v in reversed(losses)}
    lasts = {o: v for o, v in losses}
    summary = {"octaves": len(lasts), "steps": len(losses), "seconds": round(seconds, 2),
               "loss_first": _sig(firsts[0]), "loss_last": _sig(lasts[max(lasts)])}
    return result, summary


def run_dream(params: DreamParams, out: Path, max_pixels: int | None) -> dict[str, Any]:
    """The dream stage: DeepDream on ``params.image``; writes ``out/dream.png``,
    ``out/before_after.png``, dvclive's per-step log and ``metrics.json``. Returns the headline
    numbers. Bad input (:class:`InputError`) writes nothing."""
    image = read_image(params.image, "dream.image", max_pixels)
    from pipeline.generative.dream import fit_longer_side  # Keras loads once the image is read

    log = _StepLogOnFirstStep(out)
    result, summary = _dream(params, image, log)
    save_image(out / "dream.png", _png(result))
    before = fit_longer_side(image, params.max_side)
    save_image(out / "before_after.png", side_by_side([before, result], ["before", "after"]))
    log.close(summary)
    return summary


def dream_file(params: DreamParams, image_path: str | Path, output: str | Path,
               max_pixels: int | None) -> dict[str, Any]:
    """``cvpipe dream IMAGE OUTPUT``: the dreamed ``image_path`` written to ``output`` (a PNG,
    atomically, its folder made if need be) and nothing else. Returns the headline numbers."""
    image = read_image(image_path, "IMAGE", max_pixels)
    result, summary = _dream(params, image, _StepLogOnFirstStep(None))
    save_image(output, _png(result))
    return summary


def _sig(value: float) -> float:
    """``value`` to 4 significant digits (losses on random weights can be 1e-12)."""
    return float(f"{value:.4g}")


def _png(image: np.ndarray):
    from PIL import Image

    return Image.fromarray(image)


def _stylize(params: StylizeParams, content: np.ndarray, style: np.ndarray,
             log: _StepLogOnFirstStep) -> tuple[np.ndarray, dict[str, Any]]:
    """The stylized image and the headline numbers, each step's losses logged to ``log``."""
    from pipeline.generative.style import stylize

    def on_step(step: int, losses: dict[str, float], shown: np.ndarray | None) -> None:
        log.step(losses, shown, tag="steps")

    result, record = stylize(content, style, params, on_step)
    first, last = record["first"], record["last"]
    summary = {"steps": record["iterations"], "seconds_per_step": round(record["seconds_per_step"], 4),
               **{f"{k}_last": _sig(last[k]) for k in ("content", "style", "tv", "total")},
               "style_fraction": _sig(last["style"] / first["style"]) if first["style"] else None}
    return result, summary


def run_stylize(params: StylizeParams, out: Path, max_pixels: int | None) -> dict[str, Any]:
    """The stylize stage: ``params.style`` onto ``params.content``; writes ``out/stylized.png``,
    ``out/before_after.png`` (content, style, result), dvclive's per-step log and
    ``metrics.json``. Returns the headline numbers. Bad input (:class:`InputError`) writes
    nothing."""
    content = read_image(params.content, "stylize.content", max_pixels)
    style = read_image(params.style, "stylize.style", max_pixels)
    from pipeline.generative.style import resized  # Keras loads once the images are read

    log = _StepLogOnFirstStep(out)
    result, summary = _stylize(params, content, style, log)
    save_image(out / "stylized.png", _png(result))
    size = tuple(params.image_size)
    pictures = [np.clip(resized(content, size), 0, 255).astype(np.uint8),
                np.clip(resized(style, size), 0, 255).astype(np.uint8), result]
    save_image(out / "before_after.png", side_by_side(pictures, ["content", "style", "result"]))
    log.close(summary)
    return summary


def stylize_file(params: StylizeParams, content_path: str | Path, style_path: str | Path,
                 output: str | Path, max_pixels: int | None) -> dict[str, Any]:
    """``cvpipe stylize CONTENT STYLE OUTPUT``: the result written to ``output`` (a PNG,
    atomically, its folder made if need be) and nothing else. Returns the headline numbers."""
    content = read_image(content_path, "CONTENT", max_pixels)
    style = read_image(style_path, "STYLE", max_pixels)
    result, summary = _stylize(params, content, style, _StepLogOnFirstStep(None))
    save_image(output, _png(result))
    return summary
