"""Stage `srcnn_data`: cut SRCNN training sub-images from a folder of images into HDF5."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.io.errors import InputError
from stages.common import Stage, exit_listing, folder_option, images_or_exit, load_or_exit, params_option


@click.command(name="srcnn_data", cls=Stage)
@params_option
@folder_option("--out", "data/srcnn", "Folder for train.h5, val.h5 and patches.json.")
def cli(params_path: Path, out: Path) -> None:
    """Cut ``srcnn_data.patch_size``-pixel sub-images every ``srcnn_data.stride`` pixels.

    Each image's luminance is cropped to a multiple of ``srcnn_data.scale``, shrunk by it and
    enlarged back (bicubic both ways): that is the input. The label is the sharp image's centre
    that the network's valid convolutions predict (21 px of a 33 px input for 9-1-5). Unreadable
    images, and those over ``ingest.max_pixels`` (not decoded), are skipped and listed in
    patches.json.
    """
    params = load_or_exit(params_path, inputs=("srcnn_data.images",))
    from pipeline.generative.superres import border, write_patches

    sd = params.srcnn_data
    paths = images_or_exit("srcnn_data", sd.images, sd.glob)
    try:
        record = write_patches(paths, out, sd.scale, sd.patch_size, sd.stride,
                               border(params.srcnn.kernels), sd.val, params.base.seed,
                               max_pixels=params.ingest.max_pixels)
    except InputError as exc:
        exit_listing("srcnn_data: nothing to train on", [str(exc), *exc.lines])
    for path, reason in record["skipped"]:
        click.echo(f"skipped {path}: {reason}", err=True)
    click.echo(f"srcnn_data: {record['train']:,} train and {record['val']:,} val sub-images "
               f"from {len(record['images'])} images (x{sd.scale}) in {out}")


if __name__ == "__main__":
    cli()
