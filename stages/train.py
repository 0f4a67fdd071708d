"""Stage `train`: fit a model from the zoo on the HDF5 splits, logging to dvclive."""

from __future__ import annotations

from pathlib import Path

import click

from stages.common import load_or_exit, params_option, quiet_backend


@click.command(name="train")
@params_option
@click.option("--data", type=click.Path(file_okay=False, exists=True, path_type=Path),
              default="data/hdf5", show_default=True, help="Folder written by the hdf5 stage.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default="models/train",
              show_default=True, help="Folder for model.keras and preprocess.json.")
@click.option("--live", "live_dir", type=click.Path(file_okay=False, path_type=Path),
              default="results/train", show_default=True,
              help="dvclive folder: metrics.json and per-epoch plots.")
def cli(params_path: Path, data: Path, out: Path, live_dir: Path) -> None:
    """Train ``train.model`` with ``model.fit`` on the shuffled HDF5 loader.

    Validates on the val split each epoch; loss and accuracy per epoch go to dvclive
    (``dvc plots show``). Saves ``model.keras`` and the preprocessing it was trained with.
    """
    params = load_or_exit(params_path)
    quiet_backend()
    from pipeline.training import train

    train(params, data, out, live_dir)
    click.echo(f"train: saved {out / 'model.keras'}")


if __name__ == "__main__":
    cli()
