"""Stage `train`: fit a model from the zoo on the HDF5 splits, logging to dvclive."""

from __future__ import annotations

from pathlib import Path

import click

from stages.common import fail, load_or_exit, quiet_backend, training_stage


@training_stage("train", ("models/train", "results/train", "models/checkpoint"),
                "Persistent folder for resuming after a kill, and the best epoch's model.")
@click.option("--member", default=None, metavar="NAME",
              help="Train ensemble member NAME: the params with ensemble.members.NAME merged in.")
def cli(params_path: Path, data: Path, out: Path, live_dir: Path, checkpoint_dir: Path,
        member: str | None) -> None:
    """Train ``train.model`` with ``model.fit`` on the shuffled HDF5 loader.

    Validates on the val split each epoch; loss, accuracy and learning rate per epoch go to
    dvclive (``dvc plots show``) and ``curves.png``. Saves ``model.keras`` (last epoch, or the
    best one with early stopping's restore_best), ``best.keras`` (best ``checkpoint_monitor``)
    and the preprocessing they were trained with. If a previous run was killed, this run
    continues from its last finished epoch unless params or data changed.
    """
    params = load_or_exit(params_path)
    if member is not None:
        from pipeline.config import member_params

        if member not in params.ensemble.members:
            fail(f"no ensemble member {member!r} in {params_path} "
                 f"(ensemble.members: {', '.join(params.ensemble.members) or 'none'})", 2)
        params = member_params(params, member)
    quiet_backend()
    from pipeline.train.training import train

    train(params, data, out, live_dir, checkpoint_dir)
    click.echo(f"train: saved {out / 'model.keras'}")


if __name__ == "__main__":
    cli()
