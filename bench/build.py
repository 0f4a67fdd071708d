"""HDF5 build throughput: the hdf5 stage's parallel build against a single-process decode loop.

The baseline decodes and resizes every image in one process (``pipeline.io.images.load`` in a loop,
no writing). The build runs :func:`pipeline.data.pack.build` with one worker per core. For scale, each
repeat also runs one plain loop per core over a share of the images, writing nothing: the most any
build could reach on this host at that moment. The target is
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

from pipeline.config import Hdf5Params  # noqa: E402
from pipeline.data.pack import build  # noqa: E402
from pipeline.data.parallel import worker_count  # noqa: E402
from pipeline.io.images import load  # noqa: E402


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


def _decode_all(paths: list[str], params: Hdf5Params) -> None:
    for path in paths:
        load(path, params.size, 3, params.resize, params.interpolation)


def independent_loops(paths: list[str], params: Hdf5Params, cores: int) -> float:
    """img/s of ``cores`` processes each running the single loop over its share, writing nothing:
    what this host gives ``cores`` decoders right now, the most any build can reach."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_decode_all, args=(paths[i::cores], params)) for i in range(cores)]
    start = time.perf_counter()
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
    return len(paths) / (time.perf_counter() - start)


def peak_rss_mb(rows: list[dict[str, str]], classes: list[str], params: Hdf5Params, tmp: Path) -> float:
    """Peak resident memory (MiB) of a fresh process that builds ``rows`` into HDF5."""
    import json
    import subprocess

    (tmp / "rows.json").write_text(json.dumps(rows))
    code = (
        "import json, resource, sys; from pathlib import Path\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from pipeline.data.pack import build; from pipeline.config import Hdf5Params\n"
        f"rows = json.loads(Path({str(tmp / 'rows.json')!r}).read_text())\n"
        f"build(rows, {classes!r}, Path({str(tmp / 'mem.h5')!r}), "
        f"Hdf5Params.model_validate_json({params.model_dump_json()!r}), channels=3)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=ROOT.parent / "shared/data/flowers17")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--resize", choices=["simple", "aspect"], default="aspect")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--memory", action="store_true",
                        help="Only measure peak memory of building 1x and 4x the images.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        source = args.source if args.source.is_dir() else generated(Path(tmp) / "gen")
        rows = rows_from(source)
        classes = sorted({r["label"] for r in rows})
        params = Hdf5Params(size=(args.size, args.size), resize=args.resize, workers=0)
        cores = worker_count(0)
        if args.memory:
            for factor in (1, 4):
                mb = peak_rss_mb(rows * factor, classes, params, Path(tmp))
                print(f"{len(rows) * factor} images -> peak RSS of the building process {mb:.0f} MiB")
            return
        paths = [row["path"] for row in rows]
        one_worker = params.model_copy(update={"workers": 1})
        runs: dict[str, list[float]] = {key: [] for key in LABELS}
        for repeat in range(args.repeats):
            start = time.perf_counter()
            _decode_all(paths, params)
            runs["loop"].append(len(rows) / (time.perf_counter() - start))
            runs["loops"].append(independent_loops(paths, params, cores))
            for key, settings in (("build1", one_worker), ("build", params)):
                # A new file each time, as in a stage run (DVC removes outputs first): renaming
                # onto the previous file would time ext4 freeing its blocks, which is not building.
                target = Path(tmp) / f"{key}-{repeat}.h5"
                start = time.perf_counter()
                build(rows, classes, target, settings, channels=3, desc=key)
                runs[key].append(len(rows) / (time.perf_counter() - start))
                target.unlink()
    report(runs, cores, f"{len(rows)} images from {source}, -> {args.size}x{args.size} "
                        f"({args.resize}), {cores} cores, median of {args.repeats}")


LABELS = {
    "loop": "single-process decode loop",
    "build1": "hdf5 build, 1 worker",
    "build": "hdf5 build, one worker per core",
    "loops": "independent decode loops, one per core, nothing written",
}


def report(runs: dict[str, list[float]], cores: int, title: str) -> None:
    """Print medians and per-repeat ratios. Each repeat times everything back to back and the
    ratios are taken per repeat: this host's speed drifts by 20% or more between minutes."""
    print(title)
    for key, label in LABELS.items():
        print(f"  {label:<56} {statistics.median(runs[key]):6.0f} img/s   "
              f"(runs: {', '.join(f'{v:.0f}' for v in runs[key])})")

    def ratio(top: str, bottom: str) -> tuple[float, str]:
        values = [t / b for t, b in zip(runs[top], runs[bottom], strict=True)]
        return statistics.median(values), ", ".join(f"{v:.2f}" for v in values)

    target = 0.8 * cores
    value, each = ratio("build", "loop")
    print(f"  build / decode loop     = {value:.2f} (runs: {each})   target >= 0.8 x {cores} = "
          f"{target:.1f} -> {'met' if value >= target else 'NOT met'}")
    value, each = ratio("build", "build1")
    print(f"  build / 1-worker build  = {value:.2f} (runs: {each})   the same work on 1 and {cores} cores")
    value, each = ratio("loops", "loop")
    print(f"  independent loops / loop = {value:.2f} (runs: {each})   what this host gives {cores} decoders")
    value, each = ratio("build", "loops")
    print(f"  build / independent loops = {value:.2f} (runs: {each})")


if __name__ == "__main__":
    main()
