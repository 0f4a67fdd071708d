"""Stage `detect_train`: train a zoo model on the detection windows (the `train` library)."""

from __future__ import annotations

from pathlib import Path

import click

from stages.common import folder_option, load_or_exit, quiet_backend, training_stage


@training_stage("detect_train", ("models/detect_train", "results/detect_train",
                                 "models/detect_train_checkpoint"),
                "Persistent folder for resuming after a kill, and the best epoch's model.",
                data=folder_option("--data", "data/detect_windows", exists=True,
                                   help="Folder written by detect_windows."))
def cli(params_path: Path, data: Path, out: Path, live_dir: Path, checkpoint_dir: Path) -> None:
    """Train ``detect_train.model`` on the windows exactly as ``train`` trains on images.

    ``detect_train`` has every key of ``train`` (model, arch, epochs, optimizer, schedule,
    augmentation, ...); the result is a window classifier whose class 0 is the background, which
    the ``detect`` stage slides over images.
    """
    params = load_or_exit(params_path)
    quiet_backend()
    from pipeline.train.training import train

    train(params.model_copy(update={"train": params.detect_train}), data, out, live_dir,
          checkpoint_dir, section="detect_train")
    click.echo(f"detect_train: saved {out / 'model.keras'}")


if __name__ == "__main__":
    cli()
