"""The input paths params name, checked by the stage that reads them (not by the schema).

The schema (:class:`~pipeline.config.Params`) checks values only, so every stage can load the
whole file even when a path it never reads (another stage's images, a weights file) is missing
or only meaningful elsewhere. A stage names the keys it reads (:func:`require_inputs`), and
``cvpipe params check`` checks them all (:func:`missing_inputs`).

Relative paths are relative to the working directory, which is the repository root whenever DVC
runs a stage, the same folder DVC resolves ``dvc.yaml`` deps against. In a ``dvc exp run
--temp``/``--queue`` copy under ``.dvc/tmp/exps`` the root is the copy: paths inside the
repository mean the same there, ``../`` ones do not (DVC stops on the dep before a stage
starts), so paths outside the repository are given as absolute paths for those runs.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.config.loading import ParamsError
from pipeline.config.params import Params

#: backbone.weights values that name no file.
WEIGHTS_KEYWORDS = ("imagenet", "none")

#: Every params key that names an input to read, with what it must be.
INPUTS = {
    "ingest.source.path": "exists",
    "srcnn_data.images": "exists",
    "detect_data.source.path": "exists",
    "dream.image": "exists",
    "stylize.content": "exists",
    "stylize.style": "exists",
    "dream.net.weights": "weights",
    "stylize.net.weights": "weights",
    "srcnn_evaluate.images": "exists",
    "backbone.weights": "weights",
}


def _value(params: Params, key: str) -> str:
    node: object = params
    for part in key.split("."):
        node = getattr(node, part)
    return str(node)


def missing_inputs(params: Params, keys: tuple[str, ...] | list[str] = tuple(INPUTS),
                   produced: tuple[str, ...] = ()) -> list[str]:
    """One line per key in ``keys`` whose path is missing, naming the dotted key.

    Paths under one of ``produced`` (folders an earlier stage writes, e.g. ``embed.out``) count
    as present: ``cvpipe params check`` runs before any stage has.
    """
    lines = []
    for key in keys:
        value = _value(params, key)
        if INPUTS[key] == "weights":
            if value in WEIGHTS_KEYWORDS or Path(value).is_file():
                continue
            lines.append(f"{key}: no such file: {value} (expected "
                         f"{', '.join(WEIGHTS_KEYWORDS)} or the path of a weights file)")
            continue
        path = Path(value)
        if path.exists() or any(path.is_relative_to(Path(p)) for p in produced):
            continue
        lines.append(f"{key}: does not exist: {value}")
    return lines


def require_inputs(params: Params, *keys: str) -> Params:
    """``params`` if every path ``keys`` name is there; else :class:`ParamsError` naming them."""
    lines = missing_inputs(params, keys)
    if lines:
        raise ParamsError(lines)
    return params
