"""Stage `ensemble`: average the members' probabilities and score each member and the whole."""

from __future__ import annotations

from pathlib import Path

import click

from stages.common import Stage, fail, folder_option, load_or_exit, params_option, quiet_backend


@click.command(name="ensemble", cls=Stage)
@params_option
@folder_option("--members", "models/members", "Folder holding one trained model per ensemble.members entry.")
@folder_option("--data", "data/hdf5", exists=True, help="Folder of image splits.")
@folder_option("--features", "data/features",
               "Folder of feature splits, read by logistic-regression members only.")
@folder_option("--out", "results/ensemble")
def cli(params_path: Path, members: Path, data: Path, features: Path, out: Path) -> None:
    """Score the ensemble of ``ensemble.members`` (trained by the train_member stages) and
    ``ensemble.models`` (any trained model folders) on ``evaluate.split``.

    Writes ``metrics.json`` (the ensemble's rank-1/rank-5, the best member's rank-1 and the
    gain over it), ``report.json`` (per-class report, confusion matrix, and each member's
    rank-1/rank-5 under ``members``), ``predictions.csv``, ``confusion.png`` and
    ``misclassified.png`` like the evaluate stage.
    """
    params = load_or_exit(params_path)
    folders = {name: members / name for name in params.ensemble.members}
    folders.update({path: Path(path) for path in params.ensemble.models})
    missing = [str(folder) for folder in folders.values() if not folder.is_dir()]
    if missing:
        fail(f"trained models missing: {', '.join(missing)} (train the members first: "
             "dvc repro ensemble)", 2)
    quiet_backend()
    from pipeline.evaluate.ensemble import (
        average,
        best_member,
        member_scores,
        predict_members,
        summary,
    )
    from pipeline.evaluate.evaluation import score_prediction, write_outputs

    split = params.evaluate.split
    predictions = predict_members(folders, data, features, split, params.evaluate.batch_size)
    mean = average(predictions)
    result = score_prediction(mean)
    result.update(prediction=mean, images=data / f"{split}.h5")
    scored = member_scores(predictions)
    result["metrics"] = summary(scored, result["metrics"])
    result["details"] = {"members": scored, "best_member": best_member(scored)}
    metrics = write_outputs(result, out, split, params.evaluate.misclassified)
    for name, row in scored.items():
        click.echo(f"ensemble: member {name}: rank1 {row['rank1']:.4f}")
    click.echo(f"ensemble: {len(folders)} models on {split}: rank1 {metrics['rank1']:.4f} "
               f"({metrics['rank1_gain_over_best']:+.4f} over the best member)")


if __name__ == "__main__":
    cli()
