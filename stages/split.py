"""Stage `split`: hash-stable stratified train/val/test (and train-dev) split."""

from __future__ import annotations

from pathlib import Path

import click

from stages.common import Stage, load_or_exit, params_option


@click.command(name="split", cls=Stage)
@params_option
@click.option("--manifest", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default="data/ingest/manifest.csv", show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default="data/split",
              show_default=True, help="Folder for <split>.csv and classes.json.")
@click.option("--metrics", type=click.Path(dir_okay=False, path_type=Path),
              default="results/split/counts.json", show_default=True,
              help="Images per split (DVC metrics); the per-class counts go to report.json "
              "in the same folder.")
def cli(params_path: Path, manifest: Path, out: Path, metrics: Path) -> None:
    """Assign every image to train, train_dev, val or test by its content hash and the seed.

    Adding images never moves existing ones, and duplicates always share a split. Each split's
    total goes to the metrics file, its per-class counts to ``report.json`` beside it.
    """
    params = load_or_exit(params_path)
    from pipeline.data import split
    from pipeline.io import atomic
    from pipeline.io.tables import read_csv, write_csv

    rows = read_csv(manifest)
    classes = atomic.read_json(manifest.parent / "classes.json")
    groups = split.split_rows(rows, params.base.seed, params.split)
    fields = list(rows[0].keys()) if rows else ["path", "label", "sha256"]
    for name, members in groups.items():
        write_csv(out / f"{name}.csv", fields, members)
    atomic.write_json(out / "classes.json", classes)
    atomic.write_json(metrics, {name: {"total": len(rows)} for name, rows in groups.items()})
    atomic.write_json(metrics.with_name("report.json"), split.counts(groups, classes))
    click.echo("split: " + ", ".join(f"{k} {len(v)}" for k, v in groups.items()))


if __name__ == "__main__":
    cli()
