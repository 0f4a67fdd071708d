"""Stage `detect_evaluate`: score every detector's boxes on the test split and draw them."""

from __future__ import annotations

from pathlib import Path

import click

from stages.common import Stage, folder_option, load_or_exit, params_option


@click.command(name="detect_evaluate", cls=Stage)
@params_option
@folder_option("--data", "data/detect", exists=True, help="Folder written by detect_data.")
@folder_option("--detections", "results/detect", exists=True, help="Folder written by detect.")
@folder_option("--out", "results/detect_evaluate",
               "Folder for metrics.json, report.json, pr/<detector>.csv and images/.")
def cli(params_path: Path, data: Path, detections: Path, out: Path) -> None:
    """Score each of ``detect.detectors`` with pycocotools and draw what it found.

    Per detector: AP at IoU 0.5 and COCO mAP@[.5:.95], recall at the equal-error point (IoU >=
    0.5, and by the UIUC cars' own rule with ``detect_evaluate.criterion: uiuc``) and time per
    image go to metrics.json (per class and the rest: report.json); the precision-recall curve
    to pr/<detector>.csv (``dvc plots show``). images/ holds ``detect_evaluate.draw`` test
    images with ground truth and detections, and grids of the worst false positives and of
    the misses, all at the detector's best-F threshold.
    """
    params = load_or_exit(params_path)
    from pipeline.detect.boxes import read_annotations
    from pipeline.detect.detector import load_run
    from pipeline.detect.report import headline, score
    from pipeline.io import atomic

    test, labels = read_annotations(data / "test.json")
    ev = params.detect_evaluate
    rule = None
    if ev.criterion == "uiuc":
        rule = "uiuc_scale" if params.detect_data.source.uiuc_test == "multi" else "uiuc"
    records = {}
    for name in params.detect.detectors:
        path = detections / f"{name}.json"
        if not path.is_file():
            from pipeline.io.errors import InputError

            raise InputError(f"{path}: no detections of detector {name!r} (run the detect stage)")
        run, _ = load_run(path)
        records[name] = score(name, test, labels, run, out, rule, ev.draw, ev.grid)
        line = headline({name: records[name]})[name]
        click.echo(f"detect_evaluate {name}: " + ", ".join(f"{k} {v}" for k, v in line.items()))
    atomic.write_json(out / "report.json", records)
    atomic.write_json(out / "metrics.json", headline(records))


if __name__ == "__main__":
    cli()
