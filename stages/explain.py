"""Stage `explain`: Grad-CAM heatmaps of a trained model's most confident mistakes and of one
correct image per class, drawn over the images."""

from __future__ import annotations

from pathlib import Path

import click

from stages.common import Stage, folder_option, hdf5_option, load_or_exit, params_option, quiet_backend


@click.command(name="explain", cls=Stage)
@params_option
@hdf5_option
@folder_option("--out", "results/explain", "Folder for images/, grid.png, report.json and metrics.json.")
def cli(params_path: Path, data: Path, out: Path) -> None:
    """Where ``explain.model`` looked: Grad-CAM (Selvaraju et al.) on ``explain.split``.

    The ``explain.mistakes`` most confident wrong predictions and the ``explain.per_class`` most
    confident right ones of each class are explained for the class predicted, at
    ``explain.layer`` (null: the last layer with a 4-D output, inside a nested backbone too).
    Writes one overlay per image to ``images/`` (``mistake_01_true-3_pred-8_0.97.png``), all of
    them in ``grid.png``, one row per image in ``report.json``, and ``metrics.json``: counts, the
    share of heat on the brighter-than-average pixels beside their share of the area, and the
    drop of the predicted class's probability with the hottest 10% of pixels blacked out beside
    the drop for as many random pixels.
    """
    params = load_or_exit(params_path)
    quiet_backend()
    from pipeline.explain.explanations import explain

    metrics = explain(params.explain, data, out, params.base.seed)
    click.echo(f"explain: {metrics['images']} images of {params.explain.split} at "
               f"{metrics['layer']}: {metrics['mistakes_explained']} of "
               f"{metrics['mistakes_found']} mistakes, {metrics['correct_explained']} correct")
    if metrics["drop_hot"] is not None:
        click.echo(f"explain: hottest 10% blacked out: p drops {metrics['drop_hot']:.3f} "
                   f"(random 10%: {metrics['drop_random']:.3f}); heat on bright pixels "
                   f"{metrics['heat_on_bright'] or 0:.2f} of the map, {metrics['bright_area']:.2f} "
                   f"of the area; written to {out}/")


if __name__ == "__main__":
    cli()
