"""What a Keras stage pays to start: ``import keras`` after stages/common.py's ``quiet_backend``
(scikit-learn hidden from Keras) against the import without that, in fresh interpreters, alternated.

    python bench/keras_import.py --runs 5

Prints the median CPU-seconds (user + system) and wall seconds of each, and their ratio.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "plain": "from stages.common import hide_jax_from_tensorflow as h; h(); import keras",
    "hidden": "from stages.common import quiet_backend; quiet_backend(); import keras",
}


def one_run(code: str) -> tuple[float, float]:
    """CPU and wall seconds of one fresh interpreter running ``code``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


@click.command()
@click.option("--runs", default=5, show_default=True, help="Interpreters per variant.")
def main(runs: int) -> None:
    """Time both imports, alternated, and print medians and the ratio."""
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in VARIANTS}
    for _ in range(runs):
        for name, code in VARIANTS.items():
            times[name].append(one_run(code))
    medians = {name: (statistics.median(c for c, _ in rows), statistics.median(w for _, w in rows))
               for name, rows in times.items()}
    for name, (cpu, wall) in medians.items():
        print(f"{name:>10}: {cpu:5.2f} CPU-s  {wall:5.2f} s wall (median of {runs})")
    print(f"hidden / plain: {medians['hidden'][0] / medians['plain'][0]:.2f} CPU, "
          f"{medians['hidden'][1] / medians['plain'][1]:.2f} wall")


if __name__ == "__main__":
    main()
