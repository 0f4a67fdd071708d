"""Stage `hdf5`: decode, resize and pack each split into a uint8 HDF5 file."""

from __future__ import annotations

from pathlib import Path

import click

from stages.common import Stage, folder_option, load_or_exit, params_option


@click.command(name="hdf5", cls=Stage)
@params_option
@folder_option("--splits", "data/split", exists=True, help="Folder written by the split stage.")
@folder_option("--out", "data/hdf5", "Folder for <split>.h5 and mean.json (mean and std).")
def cli(params_path: Path, splits: Path, out: Path) -> None:
    """Write ``<split>.h5`` (images uint8 N,H,W,C chunked per image; labels; classes; paths).

    Images are resized to ``hdf5.image_size`` (``simple`` stretch or ``aspect`` crop) by
    ``hdf5.workers`` processes, JPEGs decoded in draft mode when shrinking. The train split's
    mean R, G, B and their std go to ``mean.json`` for mean subtraction and standardisation.
    """
    params = load_or_exit(params_path)
    from pipeline.data.pack import build, channel_stats
    from pipeline.data.split import SPLITS
    from pipeline.io import atomic
    from pipeline.io.tables import read_csv

    classes = atomic.read_json(splits / "classes.json")
    channels = params.ingest.channels
    for name in SPLITS:
        rows = read_csv(splits / f"{name}.csv")
        total = build(rows, classes, out / f"{name}.h5", params.hdf5, channels, desc=name)
        if name == "train":
            pixels = len(rows) * params.hdf5.image_size[0] * params.hdf5.image_size[1]
            atomic.write_json(out / "mean.json",
                              {**channel_stats(total, pixels), "images": len(rows)})
        click.echo(f"hdf5: {name}: {len(rows)} images -> {out / f'{name}.h5'}")


if __name__ == "__main__":
    cli()
