"""Stage `split`: hash-stable stratified train/val/test (and train-dev) split."""

from __future__ import annotations

from pathlib import Path

import click

from stages.common import Stage, file_option, folder_option, load_or_exit, params_option


@click.command(name="split", cls=Stage)
@params_option
@file_option("--manifest", "data/ingest/manifest.csv", exists=True)
@folder_option("--out", "data/split", "Folder for <split>.csv and classes.json.")
@file_option("--metrics", "results/split/counts.json",
             "Images per split and leaked_groups (DVC metrics); the per-class counts "
             "and fractions go to report.json in the same folder, the groups and what "
             "crosses splits to leakage.json.")
def cli(params_path: Path, manifest: Path, out: Path, metrics: Path) -> None:
    """Assign every image to train, train_dev, val or test by its content hash and the seed.

    Adding images never moves existing ones, and duplicates always share a split. With
    ``split.group``, every group (a patient, a session) lands in one split, placed by
    ``split.group.method`` (adding images may then move some groups). Each split's total and
    ``leaked_groups`` go to the metrics file, its per-class counts and fractions to
    ``report.json`` beside it, and the groups and identical images found in more than one
    split to ``leakage.json``.
    """
    params = load_or_exit(params_path)
    from pipeline.data import groups, split
    from pipeline.io import atomic
    from pipeline.io.tables import read_csv, write_csv

    rows = read_csv(manifest)
    classes = atomic.read_json(manifest.parent / "classes.json")
    root = groups.source_folder(params.ingest.source)
    parts, leakage = groups.split_manifest(rows, params.base.seed, params.split, root, manifest)
    fields = list(rows[0].keys()) if rows else ["path", "label", "sha256"]
    for name, members in parts.items():
        write_csv(out / f"{name}.csv", fields, members)
    atomic.write_json(out / "classes.json", classes)
    atomic.write_json(metrics, {**{name: {"total": len(rows)} for name, rows in parts.items()},
                                "leaked_groups": leakage["leaked_groups"]})
    atomic.write_json(metrics.with_name("report.json"), split.counts(parts, classes))
    atomic.write_json(metrics.with_name("leakage.json"), leakage)
    click.echo("split: " + ", ".join(f"{k} {len(v)}" for k, v in parts.items())
               + f"; {leakage['groups']} groups ({leakage['group_by']}), "
               f"{leakage['leaked_groups']} across splits")


if __name__ == "__main__":
    cli()
