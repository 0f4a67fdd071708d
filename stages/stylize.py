"""Stage `stylize`: neural style transfer (Gatys et al.), every step's losses logged."""

from __future__ import annotations

from pathlib import Path

import click

from stages.common import Stage, folder_option, load_or_exit, note, params_option, quiet_backend


@click.command(name="stylize", cls=Stage)
@params_option
@click.argument("content", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.argument("style", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.argument("output", required=False, type=click.Path(dir_okay=False, path_type=Path))
@folder_option("--out", "results/stylize",
               "Stage mode: folder for stylized.png, before_after.png, metrics.json and the "
               "per-step plots.")
def cli(params_path: Path, content: Path | None, style: Path | None, output: Path | None,
        out: Path) -> None:
    """Paint the content image in the style image's textures by optimising its pixels.

    The loss is ``stylize.content_weight`` times the content loss at ``stylize.content_layer``,
    plus ``stylize.style_weight`` times the Gram-matrix style loss over
    ``stylize.style_layers`` (each with its weight), plus ``stylize.tv_weight`` times the total
    variation, on ``stylize.net``; ``stylize.iterations`` steps of Adam or L-BFGS
    (``stylize.optimizer``) from the content or noise (``stylize.init``), at
    ``stylize.image_size``; ``stylize.preserve_colors`` keeps the content's colours. Without
    arguments (the DVC stage) it uses ``stylize.content`` and ``stylize.style`` and logs each
    loss per step with dvclive. With CONTENT STYLE OUTPUT it writes the result to OUTPUT.

    Example: cvpipe stylize photo.jpg painting.jpg stylized.png
    """
    given = [content, style, output]
    if any(given) and not all(given):
        raise click.UsageError("give CONTENT, STYLE and OUTPUT, or none of them (the stage)")
    params = load_or_exit(params_path, inputs=("stylize.net.weights",)
                          + (() if content else ("stylize.content", "stylize.style")))
    quiet_backend()
    from pipeline.generative.reverse_runs import random_weights_note, run_stylize, stylize_file

    note(random_weights_note(params.stylize.net, "stylize"))
    if content is not None:
        summary = stylize_file(params.stylize, content, style, output, params.ingest.max_pixels)
        click.echo(f"stylize: {content} in the style of {style} -> {output} "
                   f"({summary['steps']} steps, style loss x{summary['style_fraction']})")
        return
    summary = run_stylize(params.stylize, out, params.ingest.max_pixels)
    click.echo(f"stylize: {summary['steps']} steps ({summary['seconds_per_step'] * 1000:.0f} ms "
               f"each), style loss x{summary['style_fraction']} of its start; "
               f"{out / 'stylized.png'}")


if __name__ == "__main__":
    cli()
