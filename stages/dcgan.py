"""Stage `dcgan`: train a DCGAN on a split of the HDF5 dataset, with a sample grid each epoch."""

from __future__ import annotations

from pathlib import Path

import click

from stages.common import fail, load_or_exit, quiet_backend, training_stage


@training_stage("dcgan", ("models/dcgan", "results/dcgan", "models/dcgan_checkpoint"),
                out_help="Folder for generator.keras, discriminator.keras, dcgan.json.",
                live_help="dvclive folder: losses per epoch, curves.png, samples.png and one "
                "sample grid per epoch under plots/images/samples.")
def cli(params_path: Path, data: Path, out: Path, live_dir: Path, checkpoint_dir: Path) -> None:
    """Train ``dcgan`` (Radford et al.'s architecture, Adam 2e-4, beta_1 0.5) with ``model.fit``.

    Reads ``<data>/<dcgan.split>.h5`` (any split file; images are resized to ``dcgan.image_size`` and
    converted to ``dcgan.channels``), scaled to -1..1. Logs d_loss, g_loss and the
    discriminator's mean probability on real and generated images per epoch; draws a grid of
    samples for the same noise after every epoch. A killed run continues from its last finished
    epoch. Sample from the result with `cvpipe generate models/dcgan N OUT`.
    """
    params = load_or_exit(params_path)
    split = data / f"{params.dcgan.split}.h5"
    if not split.is_file():
        fail(f"dcgan.split: no {split} (the hdf5 stage writes train, val, test and train_dev)", 2)
    quiet_backend()
    from pipeline.generative.gan_training import train

    train(params, data, out, live_dir, checkpoint_dir)
    click.echo(f"dcgan: saved {out / 'generator.keras'}; samples in {live_dir / 'samples.png'}")


if __name__ == "__main__":
    cli()
