"""Stage `detect`: run every detector in params over the test images and keep their boxes."""

from __future__ import annotations

from pathlib import Path

import click

from stages.common import Stage, load_or_exit, params_option, quiet_backend


@click.command(name="detect", cls=Stage)
@params_option
@click.option("--data", type=click.Path(file_okay=False, exists=True, path_type=Path),
              default="data/detect", show_default=True, help="Folder written by detect_data.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default="results/detect",
              show_default=True, help="Folder for one <detector>.json per detector.")
def cli(params_path: Path, data: Path, out: Path) -> None:
    """Run each of ``detect.detectors`` over the test split of ``detect_data``.

    A window classifier (``detect_train``'s Keras model, ``hog_svm``) is slid over an image
    pyramid (``detect.scale``, ``detect.upscale``) every ``detect.step`` pixels, the windows
    classified ``detect.batch_size`` at a time; boxes scoring at least the detector's
    ``threshold`` go through per-class non-maxima suppression (``detect.nms_iou``), at most
    ``detect.max_detections`` per image. A cascade (``cascade:NAME`` or an XML path) runs with
    ``detect.cascade``. Unreadable images are listed and skipped.
    """
    params = load_or_exit(params_path)
    quiet_backend()
    from pipeline.detect.boxes import read_annotations
    from pipeline.detect.detector import build, run, save_run

    test, labels = read_annotations(data / "test.json")
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.json"):
        if stale.stem not in params.detect.detectors:
            stale.unlink()
    for name, spec in params.detect.detectors.items():
        detector = build(spec, params.detect, labels)
        result = run(detector, [image.path for image in test], params.ingest.max_pixels, desc=name)
        save_run(result, out / f"{name}.json", detector=name, model=spec.model,
                 threshold=spec.threshold, windows=getattr(detector, "windows_seen", None))
        for path, reason in result.skipped:
            click.echo(f"skipped {path}: {reason}", err=True)
        found = sum(len(d) for d in result.detections)
        per_image = sorted(result.seconds)[len(result.seconds) // 2] if result.seconds else 0.0
        click.echo(f"detect {name}: {found:,} boxes in {len(result.paths)} images "
                   f"({per_image * 1000:.0f} ms per image)")


if __name__ == "__main__":
    cli()
