"""What every stage script shares: the ``--params`` option and exiting cleanly on bad params."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from pipeline.config import Params, ParamsError, load_params

F = TypeVar("F", bound=Callable[..., Any])

params_option = click.option(
    "--params", "params_path", type=click.Path(dir_okay=False, path_type=Path),
    default="params.yaml", show_default=True, help="The params file to read and validate.",
)

hdf5_option = click.option(
    "--data", type=click.Path(file_okay=False, exists=True, path_type=Path),
    default="data/hdf5", show_default=True, help="Folder written by the hdf5 stage.",
)


def training_outputs(model: str, live: str, checkpoint: str, checkpoint_help: str,
                     out_help: str = "Folder for model.keras and preprocess.json.",
                     live_help: str = "dvclive folder: metrics.json, per-epoch plots, curves.png.",
                     ) -> Callable[[F], F]:
    """The ``--out``, ``--live`` and ``--checkpoint`` options of a stage that trains a model."""
    options = [
        click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=model,
                     show_default=True, help=out_help),
        click.option("--live", "live_dir", type=click.Path(file_okay=False, path_type=Path),
                     default=live, show_default=True, help=live_help),
        click.option("--checkpoint", "checkpoint_dir",
                     type=click.Path(file_okay=False, path_type=Path), default=checkpoint,
                     show_default=True, help=checkpoint_help),
    ]

    def decorate(command: F) -> F:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def load_or_exit(path: Path) -> Params:
    """Validate the whole params file; on any error print each dotted key and exit with 2."""
    try:
        return load_params(path)
    except ParamsError as exc:
        exit_listing(f"invalid params in {path}:", exc.lines)


def exit_listing(title: str, lines: list[str], code: int = 2) -> NoReturn:
    """Print ``title`` and one indented line per problem to stderr, then exit with ``code``."""
    click.echo(title, err=True)
    for line in lines:
        click.echo(f"  {line}", err=True)
    sys.exit(code)


def fail(message: str, code: int = 1) -> None:
    """Print ``message`` as an error and exit (nothing further is written)."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def quiet_backend() -> None:
    """Silence TensorFlow's start-up chatter before Keras is imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def images_or_exit(section: str, folder: str, pattern: str) -> list[Path]:
    """The image files ``<section>.images`` and ``<section>.glob`` name; exit 1 if there are none."""
    from pipeline.io.images import list_images

    paths = list_images(folder, pattern)
    if not paths:
        exit_listing(f"{section}: no images",
                     [f"{section}.images: {folder} has no image files matching {pattern!r}"], 1)
    return paths
