"""Stage `evaluate`: rank-1/rank-5 (plain and 10-crop), reports, confusion matrix, diagnosis."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.transfer.logreg import MODEL
from stages.common import Stage, folder_option, load_or_exit, params_option, quiet_backend


@click.command(name="evaluate", cls=Stage)
@params_option
@folder_option("--model", "models/train", dest="model_dir", exists=True,
               help="Folder with model.keras (or model.joblib from train_logreg).")
@folder_option("--data", "data/hdf5", exists=True,
               help="Folder of split files: data/hdf5 for Keras models, data/features for logreg.")
@folder_option("--images", None, exists=True,
               help="Folder of image splits the misclassified grid is drawn from "
               "[default: --data, for Keras models; no grid for logreg without it].")
@folder_option("--out", "results/evaluate")
def cli(params_path: Path, model_dir: Path, data: Path, images: Path, out: Path) -> None:
    """Score the trained model on ``evaluate.split`` (the test split by default).

    Writes ``metrics.json`` (the headline: rank-1, rank-5 when there are more than 5 classes,
    the 10-crop scores under ``oversampled`` and the bias/variance gaps under ``diagnosis``;
    git-tracked so ``dvc metrics diff`` compares commits), ``report.json`` (per-class
    precision/recall/F1, the confusion matrix, each split's error under ``diagnosis``),
    ``report.txt``, ``predictions.csv`` (the confusion-matrix DVC plot), ``confusion.png``,
    ``misclassified.png`` and ``diagnosis.md`` (Ng's bias/variance table).
    """
    params = load_or_exit(params_path)
    quiet_backend()
    from pipeline.evaluate.evaluation import evaluate, write_outputs

    settings = params.evaluate
    if images is None and not (model_dir / MODEL).exists():
        images = data
    result = evaluate(model_dir, data, images, settings)
    metrics = write_outputs(result, out, settings.split, settings.misclassified)
    for note in result["notes"]:
        click.echo(f"evaluate: {note}")
    shown = ", ".join(f"{k} {metrics[k]:.4f}" for k in ("rank1", "rank5") if k in metrics)
    click.echo(f"evaluate: {settings.split} ({metrics['images']} images): {shown}")
    if "oversampled" in metrics:
        over = metrics["oversampled"]
        click.echo(f"evaluate: oversampled ({over['views']} views) rank1 {over['rank1']:.4f} "
                   f"({over['rank1_gain']:+.4f})")
    if "diagnosis" in result:
        click.echo((out / "diagnosis.md").read_text().rstrip())


if __name__ == "__main__":
    cli()
