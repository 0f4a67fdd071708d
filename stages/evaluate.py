"""Stage `evaluate`: rank-1/rank-5, per-class report and confusion matrix on the test split."""

from __future__ import annotations

from pathlib import Path

import click

from stages.common import load_or_exit, params_option, quiet_backend


@click.command(name="evaluate")
@params_option
@click.option("--model", "model_dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
              default="models/train", show_default=True, help="Folder with model.keras.")
@click.option("--data", type=click.Path(file_okay=False, exists=True, path_type=Path),
              default="data/hdf5", show_default=True,
              help="Folder of split files: data/hdf5 for Keras models, data/features for logreg.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default="results/evaluate", show_default=True)
def cli(params_path: Path, model_dir: Path, data: Path, out: Path) -> None:
    """Score the trained model on ``evaluate.split`` (the test split by default).

    Writes ``metrics.json`` (rank-1, rank-5 when there are more than 5 classes, per-class
    precision and recall; git-tracked so ``dvc metrics diff`` compares commits),
    ``report.txt``/``report.json``, ``predictions.csv`` (the confusion-matrix DVC plot) and
    ``confusion.png``.
    """
    params = load_or_exit(params_path)
    quiet_backend()
    from pipeline.evaluation import evaluate_model, write_outputs

    split = params.evaluate.split
    result = evaluate_model(model_dir, data / f"{split}.h5", params.evaluate.batch_size)
    metrics = write_outputs(result, out, split)
    for note in result["notes"]:
        click.echo(f"evaluate: {note}")
    shown = ", ".join(f"{k} {metrics[k]:.4f}" for k in ("rank1", "rank5") if k in metrics)
    click.echo(f"evaluate: {split} ({metrics['images']} images): {shown}")


if __name__ == "__main__":
    cli()
