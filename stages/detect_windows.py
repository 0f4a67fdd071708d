"""Stage `detect_windows`: cut training windows from annotated images into the HDF5 layout."""

from __future__ import annotations

from pathlib import Path

import click

from stages.common import Stage, folder_option, load_or_exit, params_option


@click.command(name="detect_windows", cls=Stage)
@params_option
@folder_option("--data", "data/detect", exists=True, help="Folder written by detect_data.")
@folder_option("--out", "data/detect_windows",
               "Folder for train.h5, val.h5, test.h5, mean.json and windows.json.")
def cli(params_path: Path, data: Path, out: Path) -> None:
    """Cut ``detect_windows.window``-sized windows: each box (and jittered copies) as its class,
    random windows overlapping no box as the background class (class 0).

    The files have the layout the hdf5 stage writes, so the ``train`` library (the
    ``detect_train`` stage) and ``evaluate`` read them unchanged. Training images whose path
    hashes below ``detect_windows.val`` validate; the test images' boxes (one copy each) and
    background windows make test.h5.
    """
    params = load_or_exit(params_path)
    from pipeline.detect.boxes import read_annotations
    from pipeline.detect.windows import write

    train, labels = read_annotations(data / "train.json")
    test, _ = read_annotations(data / "test.json")
    record = write(train, test, labels, params.detect_windows, params.base.seed, out)
    counts = ", ".join(f"{split} {sum(by_class.values()):,}"
                       for split, by_class in record["windows"].items())
    click.echo(f"detect_windows: {counts} windows of {record['window'][0]}x{record['window'][1]} "
               f"({len(record['classes'])} classes) in {out}")


if __name__ == "__main__":
    cli()
