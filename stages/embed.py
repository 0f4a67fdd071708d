"""Stage `embed`: write the data that ships inside scikit-learn out as image files."""

from __future__ import annotations

from pathlib import Path

import click

from stages.common import Stage, load_or_exit, params_option


@click.command(name="embed", cls=Stage)
@params_option
def cli(params_path: Path) -> None:
    """Write scikit-learn's digits as a class-folder dataset, and its sample photos.

    Output: ``<embed.out>/digits/<label>/digit_NNNN.png`` (1,797 8x8 greyscale images) and
    ``<embed.out>/samples/*.jpg``. The default ``ingest.source`` reads the digits folder like any
    user's folder, so the default pipeline needs no download.
    """
    params = load_or_exit(params_path)
    from pipeline.data.embedded import write_all

    counts = write_all(Path(params.embed.out))
    click.echo(f"embed: wrote {counts['digits']} digits and {counts['samples']} sample photos "
               f"to {params.embed.out}")


if __name__ == "__main__":
    cli()
