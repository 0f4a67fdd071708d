"""Stage `embed`: write the data that ships inside scikit-learn out as image files."""

from __future__ import annotations

from pathlib import Path

import click

from stages.common import Stage, load_or_exit, params_option


@click.command(name="embed", cls=Stage)
@params_option
def cli(params_path: Path) -> None:
    """Write scikit-learn's digits as a class-folder dataset, its sample photos, and scenes.

    Output: ``<embed.out>/digits/<label>/digit_NNNN.png`` (1,797 8x8 greyscale images),
    ``<embed.out>/samples/*.jpg``, and ``<embed.out>/scenes/`` for detection (``embed.scenes``:
    digits pasted on scikit-image's photos, images/*.png and annotations.csv), and
    ``<embed.out>/photos/`` (scikit-image's astronaut, cat, coffee and textures, for dream and
    stylize). The default
    ``ingest.source`` reads the digits folder, and ``detect_data.source`` the scenes, like any
    user's data, so the default pipeline needs no download.
    """
    params = load_or_exit(params_path)
    from pipeline.data.embedded import write_all

    counts = write_all(Path(params.embed.out), params.embed.scenes)
    click.echo(f"embed: wrote {counts['digits']} digits, {counts['samples']} sample photos, "
               f"{counts['scenes']} detection scenes and {counts['photos']} scikit-image photos "
               f"to {params.embed.out}")


if __name__ == "__main__":
    cli()
