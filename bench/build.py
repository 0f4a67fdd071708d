"""HDF5 build throughput: the hdf5 stage's parallel build against a single-process decode loop.

The baseline decodes and resizes every image in one process (``pipeline.images.load`` in a loop,
no writing). The build runs :func:`pipeline.hdf5.build` with one worker per core. The target is
build >= 0.8 x cores x baseline. Images: Flowers-17 from ../shared when present (JPEG, about
500x700, drafted), else JPEGs generated here.

    python bench/build.py
    python bench/build.py --source ../shared/data/flowers17 --size 64 --resize aspect
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from pipeline.hdf5 import build  # noqa: E402
from pipeline.images import load  # noqa: E402
from pipeline.parallel import worker_count  # noqa: E402
from pipeline.params import Hdf5Params  # noqa: E402


def rows_from(source: Path) -> list[dict[str, str]]:
    return [{"path": str(p), "label": p.parent.name}
            for p in sorted(source.glob("*/*")) if p.suffix.lower() in {".jpg", ".jpeg", ".png"}]


def generated(folder: Path, n: int = 400) -> Path:
    """Smooth random photos-like JPEGs, 500x700, in 4 classes."""
    rng = np.random.default_rng(0)
    for i in range(n):
        small = rng.integers(0, 256, (10, 14, 3), dtype=np.uint8)
        target = folder / f"c{i % 4}" / f"{i:04d}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(small).resize((700, 500), Image.Resampling.BICUBIC).save(target, quality=90)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=ROOT.parent / "shared/data/flowers17")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--resize", choices=["simple", "aspect"], default="aspect")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        source = args.source if args.source.is_dir() else generated(Path(tmp) / "gen")
        rows = rows_from(source)
        classes = sorted({r["label"] for r in rows})
        params = Hdf5Params(size=(args.size, args.size), resize=args.resize, workers=0)
        cores = worker_count(0)
        single, parallel = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            for row in rows:
                load(row["path"], params.size, 3, params.resize, params.interpolation)
            single.append(len(rows) / (time.perf_counter() - start))
            start = time.perf_counter()
            build(rows, classes, Path(tmp) / "out.h5", params, channels=3, desc="build")
            parallel.append(len(rows) / (time.perf_counter() - start))
    s, p = statistics.median(single), statistics.median(parallel)
    print(f"{len(rows)} images from {source}, -> {args.size}x{args.size} ({args.resize}), "
          f"{cores} cores, median of {args.repeats}")
    for label, median, runs in (("single-process decode loop", s, single),
                                (f"hdf5 build, {cores} workers", p, parallel)):
        print(f"  {label:<28} {median:8.0f} img/s   (runs: {', '.join(f'{v:.0f}' for v in runs)})")
    print(f"  build / single = {p / s:.2f}   target >= 0.8 x {cores} = {0.8 * cores:.1f}"
          f"   -> {'met' if p / s >= 0.8 * cores else 'NOT met'}")


if __name__ == "__main__":
    main()
