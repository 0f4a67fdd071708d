"""Stage `hog_svm`: HOG features and a linear SVM on the detection windows, with hard-negative mining."""

from __future__ import annotations

from pathlib import Path

import click

from stages.common import Stage, file_option, folder_option, load_or_exit, params_option


@click.command(name="hog_svm", cls=Stage)
@params_option
@folder_option("--data", "data/detect", exists=True,
               help="Folder written by detect_data (its negative training images are mined).")
@folder_option("--windows", "data/detect_windows", exists=True,
               help="Folder written by detect_windows (train.h5 is fitted).")
@folder_option("--out", "models/hog_svm", "Folder for svm.joblib, hog.json and mining.json.")
@file_option("--metrics", "results/hog_svm/metrics.json", dest="metrics_path",
             help="Headline numbers: chosen C, cross-validated accuracy, false positives.")
def cli(params_path: Path, data: Path, windows: Path, out: Path, metrics_path: Path) -> None:
    """Fit a LinearSVC on the HOG descriptors of the training windows (``hog_svm.c_values``
    cross-validated over ``hog_svm.folds``), then ``hog_svm.mining_rounds`` rounds of
    hard-negative mining: slide it over the training images that hold no object, add up to
    ``hog_svm.mining_max`` of its highest-scoring (false) windows as background, refit.

    The saved folder is a window classifier the ``detect`` stage slides like any other, with its
    model card (``card.json``, ``MODEL_CARD.md``).
    """
    params = load_or_exit(params_path)
    from pipeline.detect.boxes import read_annotations
    from pipeline.detect.hog_svm import train_with_mining
    from pipeline.detect.windows import read_image
    from pipeline.io import atomic
    from pipeline.io.hdf5 import Split

    train = Split(windows / "train.h5")
    channels = train.shape[3]
    images, _ = read_annotations(data / "train.json")
    negatives = [read_image(image.path, channels) for image in images if not image.boxes]
    model, record = train_with_mining(train.read(), train.labels, train.classes, negatives,
                                      params.hog_svm, params.base.seed, log=click.echo)
    model.save(out)
    atomic.write_json(out / "mining.json", record)
    last = record["rounds"][-1] if record["rounds"] else None
    metrics = {"c": record["initial"]["c"], "cv_accuracy": round(record["initial"]["cv_accuracy"], 4),
               "negative_images": len(negatives)}
    if last is not None:
        metrics.update(false_positives_before=record["rounds"][0]["false_positives_before"],
                       false_positives_after=last["false_positives_after"],
                       cv_accuracy_after=round(last["cv_accuracy"], 4))
    atomic.write_json(metrics_path, metrics)
    from pipeline.io import model_card

    summary = model_card.linear_summary("hog_linear_svm", model.svm, len(train.classes))
    settings = {"hog_svm": params.hog_svm.model_dump(mode="json")}
    model_card.write(out, model_card.build_from("hog_svm", summary, out, settings,
                                                windows / "train.h5", metrics))
    click.echo(f"hog_svm: saved {out}")


if __name__ == "__main__":
    cli()
