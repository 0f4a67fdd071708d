"""Stage `ingest`: check every source image; write the manifest and the rejects report."""

from __future__ import annotations

from pathlib import Path

import click

from stages.common import Stage, fail, folder_option, load_or_exit, params_option


@click.command(name="ingest", cls=Stage)
@params_option
@folder_option("--out", "data/ingest", "Folder for manifest.csv and classes.json.")
@folder_option("--reports", "results/ingest",
               "Folder for rejects.csv, duplicates.csv, summary.json and report.json.")
def cli(params_path: Path, out: Path, reports: Path) -> None:
    """Read the images named by ``ingest.source`` and keep the usable ones.

    Every candidate is hashed and fully decoded. Unreadable or odd files (zero-byte, truncated,
    not an image, too many pixels, unsupported mode) are listed with their reason in
    ``rejects.csv``, and so are names that are not UTF-8 (undecodable-name) and identical
    images with different labels (conflicting-labels, see ``ingest.duplicate_labels``); the
    stage fails only when they exceed ``ingest.max_reject_fraction``. Exact duplicates (same
    SHA-256) go to ``duplicates.csv``. The manifest and the reports are written as one set:
    a failed run leaves the previous set; a refused one writes the reports and no manifest.
    """
    params = load_or_exit(params_path, inputs=("ingest.source.path",))
    from pipeline.data.ingest import TooManyRejects, check_rejects, ingest, write_outputs
    from pipeline.io.errors import InputError

    result = ingest(params.ingest, group_column=params.split.group.column)
    refused: TooManyRejects | InputError | None = None
    try:
        check_rejects(result, params.ingest)
    except (TooManyRejects, InputError) as exc:
        refused = exc
    write_outputs(result, out, reports, manifest=refused is None)
    summary = result.summary()
    click.echo(
        f"ingest: {summary['accepted']} images in {summary['classes']} classes accepted, "
        f"{summary['rejected']} rejected, {summary['duplicate_groups']} duplicate groups "
        f"(reports in {reports})"
    )
    if isinstance(refused, TooManyRejects):
        fail(str(refused))
    if refused is not None:
        raise refused


if __name__ == "__main__":
    cli()
