"""Stage `dream`: DeepDream on an image, octave by octave, every step logged."""

from __future__ import annotations

from pathlib import Path

import click

from stages.common import Stage, folder_option, load_or_exit, note, params_option, quiet_backend


@click.command(name="dream", cls=Stage)
@params_option
@click.argument("image", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.argument("output", required=False, type=click.Path(dir_okay=False, path_type=Path))
@folder_option("--out", "results/dream",
               "Stage mode: folder for dream.png, before_after.png, "
               "metrics.json and the per-step plots.")
def cli(params_path: Path, image: Path | None, output: Path | None, out: Path) -> None:
    """Gradient ascent on an image to excite ``dream.layers`` of ``dream.net`` (DeepDream).

    The image (longer side ``dream.max_side``) is dreamed on at ``dream.octaves`` scales, each
    ``dream.octave_scale`` times the last, smallest first, ``dream.iterations`` steps of
    ``dream.step`` each (randomly shifted by up to ``dream.jitter`` pixels; an octave stops once
    the loss passes ``dream.max_loss``); after each upscale the detail lost by shrinking is added
    back. Without arguments (the DVC stage) it dreams on ``dream.image`` and logs each step's
    loss and the image every ``dream.log_every`` steps with dvclive. With IMAGE OUTPUT it
    writes the dreamed IMAGE to OUTPUT (a PNG) and nothing else.

    Example: cvpipe dream photo.jpg dreamed.png --params params.yaml
    """
    if (image is None) != (output is None):
        raise click.UsageError("give both IMAGE and OUTPUT, or neither (the stage)")
    params = load_or_exit(params_path, inputs=("dream.net.weights",)
                          + (() if image else ("dream.image",)))
    quiet_backend()
    from pipeline.generative.reverse_runs import dream_file, random_weights_note, run_dream

    note(random_weights_note(params.dream.net, "dream"))
    if image is not None:
        summary = dream_file(params.dream, image, output, params.ingest.max_pixels)
        click.echo(f"dream: {image} -> {output} ({summary['steps']} steps, {loss(summary)})")
        return
    summary = run_dream(params.dream, out, params.ingest.max_pixels)
    click.echo(f"dream: {summary['octaves']} octaves, {summary['steps']} steps in "
               f"{summary['seconds']:.1f} s, {loss(summary)}; {out / 'dream.png'}")


def loss(summary: dict) -> str:
    """The loss at the first and the last step."""
    return f"loss {summary['loss_first']:.4g} -> {summary['loss_last']:.4g}"


if __name__ == "__main__":
    cli()
