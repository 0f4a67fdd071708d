"""Stage `detect_data`: check annotated images (CSV, VOC, COCO, UIUC) and split them by image."""

from __future__ import annotations

from pathlib import Path

import click

from stages.common import Stage, folder_option, load_or_exit, params_option


@click.command(name="detect_data", cls=Stage)
@params_option
@folder_option("--out", "data/detect", "Folder for train.json and test.json (COCO format).")
@folder_option("--reports", "results/detect_data", "Folder for rejects.csv and summary.json.")
def cli(params_path: Path, out: Path, reports: Path) -> None:
    """Read ``detect_data.source`` and check every image and box.

    Unreadable images, and boxes of zero size or wholly outside their image, reject the image;
    boxes reaching past the border are clipped; boxes of a label outside ``detect_data.labels``
    are ignored. All are listed in rejects.csv with the reason. More than
    ``detect_data.max_reject_fraction`` of the images rejected stops the stage (exit 2) after
    the reports are written. The rest are split into train and test by a hash of each file
    (``detect_data.test_fraction``), unless the source defines its test set (uiuc).
    """
    params = load_or_exit(params_path, inputs=("detect_data.source.path",))
    from pipeline.detect.annotations import check_rejects, load, write

    dd = params.detect_data
    data = load(dd, params.base.seed, params.ingest.max_pixels, check_fraction=False)
    out.mkdir(parents=True, exist_ok=True)
    reports.mkdir(parents=True, exist_ok=True)
    write(data, out, reports)
    for path, reason, detail in [*data.rejects, *data.ignored][:20]:
        click.echo(f"skipped {path}: {reason}" + (f" ({detail})" if detail else ""), err=True)
    check_rejects(data, dd.max_reject_fraction)
    summary = data.summary()
    click.echo(
        f"detect_data: train {summary['train']['images']} images ({summary['train']['boxes']} boxes, "
        f"{summary['train']['negatives']} negative), test {summary['test']['images']} images "
        f"({summary['test']['boxes']} boxes), labels {', '.join(data.labels)}; "
        f"{summary['rejected']} rejected, {summary['ignored_boxes']} boxes ignored -> {out}")


if __name__ == "__main__":
    cli()
