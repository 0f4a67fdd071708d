"""Stage `export`: the trained model as ONNX, SavedModel and LiteRT, each checked by its runtime."""

from __future__ import annotations

from pathlib import Path

import click

from stages.common import (
    Stage,
    file_option,
    folder_option,
    hdf5_option,
    load_or_exit,
    params_option,
    quiet_backend,
)


@click.command(name="export", cls=Stage)
@params_option
@hdf5_option
@folder_option("--out", "models/export", "Folder for one subfolder per format, each with export.json.")
@file_option("--metrics", "results/export/metrics.json", dest="metrics_path")
def cli(params_path: Path, data: Path, out: Path, metrics_path: Path) -> None:
    """Export ``export.model`` in each of ``export.formats`` and score each on ``export.split``.

    The preprocessing is baked into every graph: an export takes uint8 images decoded as in
    training (``export.json`` says how) and returns class probabilities, for any batch size.
    Each export runs on its own runtime (onnxruntime, ``tf.saved_model.load``, the LiteRT
    interpreter); its rank-1 must equal the Keras model's and no probability may differ by more
    than ``export.tolerance``, else the stage exits 1 and writes nothing. ``metrics.json`` holds
    the Keras rank-1 and, per format, rank-1 and the largest absolute difference.
    """
    params = load_or_exit(params_path)
    quiet_backend()
    from pipeline.export.parity import export_and_score

    metrics, parities = export_and_score(params.export, data, out, metrics_path)
    for parity in parities:
        click.echo(f"export: {parity.describe()}")
    click.echo(f"export: {metrics['split']} ({metrics['images']} images): all "
               f"{len(parities)} exports match the Keras model; written to {out}/")


if __name__ == "__main__":
    cli()
