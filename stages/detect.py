"""Stage `detect`: run every detector in params over the test images (or one over new images)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from stages.common import Stage, fail, folder_option, load_or_exit, params_option, quiet_backend


@click.command(name="detect", cls=Stage)
@params_option
@click.argument("model", required=False)
@click.argument("images", nargs=-1, type=click.Path(exists=True, path_type=Path))
@folder_option("--data", "data/detect", "Folder written by detect_data (stage mode).")
@folder_option("--out", None,
               "Stage mode: folder for one <detector>.json per detector [default: "
               "results/detect]. With MODEL: folder the drawn images go to [default: detections].")
@click.option("--threshold", type=float, default=None,
              help="With MODEL: lowest score kept [default: the threshold detect.detectors gives "
              "that model, else 0: log-odds 0 for Keras models, p = 0.5].")
@click.option("--label", default="object", show_default=True,
              help="With a cascade MODEL: the label of its boxes.")
@click.option("--json", "as_json", is_flag=True, help="With MODEL: print JSON instead of lines.")
def cli(params_path: Path, model: str | None, images: tuple[Path, ...], data: Path,
        out: Path | None, threshold: float | None, label: str, as_json: bool) -> None:
    """Without arguments (the DVC stage): run each of ``detect.detectors`` over the test split
    of ``detect_data`` and keep the boxes. With MODEL and IMAGES (files or folders): detect in
    new images, print the boxes and draw them into --out.

    A window classifier (``detect_train``'s Keras model, ``hog_svm``) is slid over an image
    pyramid (``detect.scale``, ``detect.upscale``) every ``detect.step`` pixels, the windows
    classified ``detect.batch_size`` at a time; boxes scoring at least the threshold go
    through per-class non-maxima suppression (``detect.nms_iou``), at most
    ``detect.max_detections`` per image. A cascade (``cascade:NAME`` for one that ships with
    OpenCV, e.g. cascade:haarcascade_frontalface_default.xml, or an XML path) runs with
    ``detect.cascade``. Unreadable images are listed and skipped.

    Example: cvpipe detect models/hog_svm photo.jpg more_photos/ --json
    """
    params = load_or_exit(params_path)
    quiet_backend()
    if model is None:
        _stage(params, data, out or Path("results/detect"))
    elif not images:
        fail("give IMAGES (files or folders) after MODEL", 2)
    else:
        _new_images(params, model, list(images), out or Path("detections"), threshold, label,
                    as_json)


def _stage(params, data: Path, out: Path) -> None:
    from pipeline.detect.boxes import read_annotations
    from pipeline.detect.classifiers import build
    from pipeline.detect.detector import run, save_run

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


def _new_images(params, model: str, images: list[Path], out: Path, threshold: float | None,
                label: str, as_json: bool) -> None:
    from pipeline.config.detect import DetectorParams
    from pipeline.detect.classifiers import build
    from pipeline.detect.detector import draw_run, run
    from pipeline.io.images import expand

    if threshold is None:
        known = [d.threshold for d in params.detect.detectors.values() if d.model == model]
        threshold = known[0] if known else 0.0
    detector = build(DetectorParams(model=model, threshold=threshold), params.detect, [label])
    result = run(detector, expand(images), params.ingest.max_pixels)
    for path, reason in result.skipped:
        click.echo(f"skipped {path}: {reason}", err=True)
    if not result.paths:
        fail("no readable image", 2)
    drawn = draw_run(result, out)
    if as_json:
        click.echo(json.dumps([
            {"path": path, "drawn": str(picture),
             "detections": [{"label": d.label, "score": round(d.score, 6),
                             "box": [round(v, 1) for v in d.xyxy]} for d in found]}
            for path, found, picture in zip(result.paths, result.detections, drawn, strict=True)
        ], indent=2))
        return
    for path, found, picture in zip(result.paths, result.detections, drawn, strict=True):
        boxes = "  ".join(f"{d.label} {d.score:.2f} [{', '.join(f'{v:.0f}' for v in d.xyxy)}]"
                          for d in found) or "no boxes"
        click.echo(f"{path}\t{boxes}\t-> {picture}")


if __name__ == "__main__":
    cli()
