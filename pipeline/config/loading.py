"""Reading and validating a params file, with one line per bad dotted key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from pipeline.config.base import KeyedError, RenamedKeyError
from pipeline.config.params import Params


class ParamsError(Exception):
    """``params.yaml`` is unreadable or invalid; ``lines`` name each dotted key and the reason."""

    def __init__(self, lines: list[str]):
        super().__init__("\n".join(lines))
        self.lines = lines


def _describe(error: dict[str, Any]) -> str:
    """One line per pydantic error: ``dotted.key: reason, got value``."""
    key = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key"
    message = error["msg"].removeprefix("Value error, ")
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, KeyedError):
        return message
    if isinstance(cause, RenamedKeyError):
        prefix = f"{key}." if key else ""
        return f"{prefix}{cause.old}: renamed to {prefix}{cause.new}"
    if error["type"] == "missing":
        return f"{key}: required"
    got = f", got {error['input']!r}" if not isinstance(error.get("input"), dict) else ""
    return f"{key}: {message}{got}" if key else f"{message}{got}"


def validate(data: Any) -> Params:
    """Validate an already-parsed params mapping."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ParamsError([f"the params file must be a mapping, got {type(data).__name__}"])
    try:
        return Params.model_validate(data)
    except ValidationError as exc:
        raise ParamsError([_describe(e) for e in exc.errors()]) from None


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate a params file; raise :class:`ParamsError` naming each bad key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ParamsError([f"cannot read {path}: {exc.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ParamsError([f"{path} is not valid YAML: {exc}"]) from None
    return validate(data)


