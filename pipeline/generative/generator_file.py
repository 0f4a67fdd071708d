"""Where the DCGAN stage keeps its generator; found without loading Keras."""

from __future__ import annotations

from pathlib import Path

from pipeline.io.errors import InputError

GENERATOR = "generator.keras"


def generator_path(model: str | Path) -> Path:
    """``model``'s generator file: ``model`` itself, or ``generator.keras`` in the folder the
    dcgan stage wrote; :class:`InputError` naming the folder if there is none."""
    model = Path(model)
    path = model / GENERATOR if model.is_dir() else model
    if not path.is_file():
        raise InputError(f"no {GENERATOR} in {model} (the dcgan stage writes it)")
    return path
