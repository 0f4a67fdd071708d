"""dvclive's per-epoch history files: trimming them on resume and drawing them as a PNG."""

from __future__ import annotations

import contextlib
import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.io.atomic import atomic_path, write_text

#: The panels of a classifier's training curves (those with a .tsv are drawn).
CLASSIFIER_PANELS = ("loss", "accuracy", "rank5")


def trim_history(metrics_dir: Path, first_dropped_step: int) -> None:
    """Drop rows with ``step >= first_dropped_step`` from every dvclive ``.tsv`` under the folder."""
    for tsv in metrics_dir.rglob("*.tsv"):
        with tsv.open(newline="") as handle:
            rows = list(csv.reader(handle, delimiter="\t"))
        if not rows:
            continue
        step = rows[0].index("step")
        kept = [rows[0], *(r for r in rows[1:] if int(r[step]) < first_dropped_step)]
        write_text(tsv, "".join("\t".join(r) + "\n" for r in kept))


def read_series(tsv: Path) -> tuple[list[int], list[float]]:
    """Steps and values of one dvclive metric file."""
    with tsv.open(newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    name = tsv.stem
    return [int(r["step"]) for r in rows], [float(r[name]) for r in rows]


def plot_curves(metrics_dir: Path, target: Path,
                panels: tuple[str, ...] = CLASSIFIER_PANELS) -> None:
    """Per-epoch metrics (loss and accuracy by default), train and val, as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [name for name in panels if (metrics_dir / "train" / f"{name}.tsv").exists()]
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, name in zip(axes[0], panels, strict=True):
        for split in ("train", "val"):
            tsv = metrics_dir / split / f"{name}.tsv"
            if tsv.exists():
                steps, values = read_series(tsv)
                ax.plot([s + 1 for s in steps], values, marker="o", markersize=2, label=split)
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    with atomic_path(target, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)


@contextlib.contextmanager
def live_run(live_dir: Path, first_epoch: int) -> Iterator[Any]:
    """A dvclive ``Live`` for a run starting at ``first_epoch``: resumed with its history cut
    back to that epoch, or fresh."""
    from dvclive import Live

    with Live(str(live_dir), resume=first_epoch > 0, save_dvc_exp=False, dvcyaml=None) as live:
        if first_epoch:
            trim_history(Path(live.plots_dir) / "metrics", first_epoch)
            live.step = first_epoch
        yield live
