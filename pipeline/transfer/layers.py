"""Backbone layers named in params: which names are valid, and a params error that lists them.

``extract_features.layer`` takes any layer with a 4-D ``(batch, H, W, C)`` output, and
``finetune.unfreeze_from`` any layer at all; a name the backbone lacks is a
:class:`~pipeline.config.ParamsError` (exit 2) naming the key, the closest names
(:func:`difflib.get_close_matches`) and the valid ones, abbreviated when there are many.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

#: How many valid names a message lists in full; beyond it, the first few and the last ones.
LISTED = 12


def feature_layers(model) -> list[str]:
    """Names of ``model``'s layers with one 4-D output (inputs excepted), in network order."""
    names = []
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        try:
            shape = layer.output.shape
        except (AttributeError, ValueError):  # several outputs, or never called
            continue
        if len(shape) == 4:
            names.append(layer.name)
    return names


def require_layer(wanted: str, valid: Sequence[str], key: str, owner: str) -> None:
    """Nothing when ``wanted`` is in ``valid``; else :class:`ParamsError` naming ``key``, the
    network ``owner``, the closest names and (some of) the valid ones."""
    if wanted in valid:
        return
    from pipeline.config import ParamsError

    close = difflib.get_close_matches(wanted, valid, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ParamsError([f"{key}: {owner} has no layer {wanted!r}{hint} Valid: {listing(valid)}"])


def listing(names: Sequence[str], limit: int = LISTED) -> str:
    """``names`` joined by commas; past ``limit``, the first four, ``...``, the last ones and
    the count."""
    if len(names) <= limit:
        return ", ".join(names)
    tail = limit - 4
    return f"{', '.join(names[:4])}, ..., {', '.join(names[-tail:])} ({len(names)} in all)"
