"""One picture of many experiments: the same output image of each, side by side, captioned with
the params that differ.

The image of each experiment is read from DVC's cache at that experiment's commit
(``dvc.api.open``), so the output must be cached (``cache: true`` in ``dvc.yaml``); the list of
experiments is ``dvc exp show``'s. Pillow tiles them (:func:`pipeline.detect.drawing.crop_grid`).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.detect.drawing import crop_grid, save_image
from pipeline.io.errors import InputError
from pipeline.search.experiments import experiments


def _order(value: object) -> tuple[int, float, str]:
    """Sort key: numbers by value (1e4 before 5e4 before 1e5), then anything else as text."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return (1, 0.0, str(value))
    return (0, float(value), "")


def _caption(params: dict, keys: Sequence[str]) -> str:
    return "  ".join(f"{key.rsplit('.', 1)[-1]}={params.get(key)}" for key in keys)


def exp_grid(repo: Path, path: str, keys: Sequence[str], out: Path, names: Sequence[str] = (),
             cols: int = 4, tile: tuple[int, int] = (160, 160)) -> list[str]:
    """Tile ``path`` of every experiment (or of those in ``names``) into ``out``, sorted by the
    params ``keys`` and captioned with them; return the experiments drawn, in order."""
    import dvc.api

    rows = [r for r in experiments(repo) if r.get("rev") and (not names or r["name"] in names)]
    if not rows:
        raise InputError(f"{repo}: no experiments to draw" + (f" among {', '.join(names)}"
                                                             if names else ""))
    missing = [key for key in keys if all(key not in r["params"] for r in rows)]
    if missing:
        raise InputError(f"no experiment has the param {missing[0]}")
    rows.sort(key=lambda r: tuple(_order(r["params"].get(k)) for k in keys))
    tiles, captions, drawn = [], [], []
    for row in rows:
        try:
            with dvc.api.open(path, repo=str(repo), rev=row["rev"], mode="rb") as f:
                image = np.asarray(Image.open(io.BytesIO(f.read())).convert("RGB"))
        except Exception as exc:  # not cached at that commit, or never written
            raise InputError(f"{path} of experiment {row['name']}: {exc}") from None
        tiles.append(image)
        captions.append(_caption(row["params"], keys) or row["name"])
        drawn.append(row["name"])
    save_image(out, crop_grid(tiles, captions, cols=cols, tile=tile))
    return drawn
