"""Stage `srcnn`: train SRCNN (9-1-5, mean squared error) on the sub-images."""

from __future__ import annotations

from pathlib import Path

import click

from stages.common import folder_option, load_or_exit, quiet_backend, training_stage


@training_stage("srcnn", ("models/srcnn", "results/srcnn", "models/srcnn_checkpoint"),
                data=folder_option("--data", "data/srcnn", exists=True,
                                   help="Folder written by srcnn_data."),
                out_help="Folder for model.keras and srcnn.json (scale, border).",
                live_help="dvclive folder: loss and PSNR per epoch, curves.png.")
def cli(params_path: Path, data: Path, out: Path, live_dir: Path, checkpoint_dir: Path) -> None:
    """Fit SRCNN with ``model.fit`` on data/srcnn/train.h5, monitoring val.h5.

    Loss (MSE) and PSNR per epoch go to dvclive and ``curves.png``. Saves ``model.keras`` and
    ``srcnn.json`` (scale, border). A killed run continues from its last finished epoch.
    """
    params = load_or_exit(params_path)
    quiet_backend()
    from pipeline.generative.srcnn import train

    train(params, data, out, live_dir, checkpoint_dir)
    click.echo(f"srcnn: saved {out / 'model.keras'}")


if __name__ == "__main__":
    cli()
