"""Stage `srcnn_evaluate`: PSNR and SSIM of SRCNN against bicubic on held-out images."""

from __future__ import annotations

from pathlib import Path

import click

from stages.common import (
    Stage,
    exit_listing,
    folder_option,
    images_or_exit,
    load_or_exit,
    params_option,
    quiet_backend,
)


@click.command(name="srcnn_evaluate", cls=Stage)
@params_option
@folder_option("--model", "models/srcnn", dest="model_dir", exists=True,
               help="Folder written by the srcnn stage.")
@folder_option("--out", "results/srcnn_evaluate",
               "Folder for metrics.json, report.json, per_image.csv and crops.png.")
def cli(params_path: Path, model_dir: Path, out: Path) -> None:
    """Degrade each image of ``srcnn_evaluate.images`` by ``srcnn_evaluate.scale`` and restore it.

    As in the paper: modcrop, bicubic down and up, PSNR and SSIM on the BT.601 luminance with
    ``scale`` pixels shaved at each border; means over images (metrics.json, with the number
    of images skipped, unreadable or over ``ingest.max_pixels``; report.json lists them).
    crops.png puts bicubic, SRCNN and the ground truth side by side where SRCNN gains most.
    """
    params = load_or_exit(params_path, inputs=("srcnn_evaluate.images",))
    quiet_backend()
    from pipeline.generative import srcnn
    from pipeline.io.atomic import write_json
    from pipeline.io.errors import InputError
    from pipeline.io.tables import write_csv

    ev = params.srcnn_evaluate
    paths = images_or_exit("srcnn_evaluate", ev.images, ev.glob)
    try:
        result = srcnn.evaluate(model_dir, paths, ev.scale, params.ingest.max_pixels)
    except InputError as exc:
        exit_listing("srcnn_evaluate: nothing to score", [str(exc), *exc.lines])
    for path, reason in result["skipped"]:
        click.echo(f"skipped {path}: {reason}", err=True)
    srcnn.crops_png(result.pop("shown"), ev.crop, out / "crops.png")
    write_csv(out / "per_image.csv",
              ["image", "bicubic_psnr", "srcnn_psnr", "bicubic_ssim", "srcnn_ssim"],
              result["per_image"])
    skipped = [{"path": str(path), "reason": reason} for path, reason in result["skipped"]]
    write_json(out / "metrics.json", {**{k: v for k, v in result.items() if k != "per_image"},
                                      "skipped": len(skipped)})
    write_json(out / "report.json", {"skipped": skipped})
    click.echo(f"srcnn_evaluate: x{ev.scale} on {result['images']} images: bicubic "
               f"{result['bicubic_psnr']:.2f} dB, SRCNN {result['srcnn_psnr']:.2f} dB "
               f"({result['psnr_gain']:+.2f}); SSIM {result['bicubic_ssim']:.4f} -> "
               f"{result['srcnn_ssim']:.4f}")


if __name__ == "__main__":
    cli()
