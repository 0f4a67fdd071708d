"""Feature extraction throughput: the extract_features stage's streaming HDF5 -> backbone -> HDF5
loop against a bare ``model.predict`` on the same images preloaded and preprocessed in memory.

Target: extraction >= 0.9 x bare predict. ``--memory`` reports the peak memory of extracting
from 1x and 4x the images instead (it should stay flat). Images: random 224x224 RGB (the content
does not change the work). The backbone is MobileNet alpha 0.25 with the ../shared ImageNet
weights when present, else random weights of the same shape.

    python bench/extract.py
    python bench/extract.py --backbone mobilenetv2 --alpha 1.0 --images 192
    python bench/extract.py --memory
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from pipeline.io.hdf5 import write_arrays  # noqa: E402

WEIGHTS = ROOT.parent / "shared/weights/mobilenet_2_5_224_tf_no_top.h5"


def dataset(path: Path, n: int, size: int) -> Path:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    write_arrays(path, images, np.arange(n) % 2, ["a", "b"])
    return path


def model_for(args: argparse.Namespace):
    from pipeline.models import backbones
    from pipeline.transfer.features import feature_model

    weights = str(WEIGHTS) if args.backbone == "mobilenet" and WEIGHTS.exists() else "none"
    body = backbones.build(args.backbone, weights, (args.size, args.size), args.alpha)
    return feature_model(body, "avg"), weights


def peak_rss_mb(args: argparse.Namespace, source: Path, target: Path) -> float:
    """Peak resident memory (MiB) of a fresh process extracting ``source``."""
    code = (
        "import resource, sys, os; from pathlib import Path\n"
        "os.environ['TF_CPP_MIN_LOG_LEVEL'] = '2'\n"
        f"sys.path.insert(0, {str(ROOT / 'bench')!r}); sys.path.insert(0, {str(ROOT)!r})\n"
        "import argparse; from extract import model_for\n"
        "from pipeline.transfer.features import extract; from pipeline.train.preprocess import Preprocessor\n"
        f"args = argparse.Namespace(backbone={args.backbone!r}, alpha={args.alpha}, "
        f"size={args.size})\n"
        "model, _ = model_for(args)\n"
        f"pre = Preprocessor(size=({args.size}, {args.size}), rgb=True, "
        f"backbone={args.backbone!r})\n"
        f"extract(model, Path({str(source)!r}), Path({str(target)!r}), pre, {args.batch}, "
        "progress=False)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="mobilenet")
    parser.add_argument("--alpha", type=float, default=0.25)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--images", type=int, default=480)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory", action="store_true",
                        help="Only measure peak memory of extracting 1x and 4x the images.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.memory:
            for factor in (1, 4):
                source = dataset(Path(tmp) / f"x{factor}.h5", args.images * factor, args.size)
                mb = peak_rss_mb(args, source, Path(tmp) / "features.h5")
                print(f"{args.images * factor} images -> peak RSS of the extracting process "
                      f"{mb:.0f} MiB")
            return
        from pipeline.io.hdf5 import Split
        from pipeline.train.preprocess import Preprocessor
        from pipeline.transfer.features import extract

        source = dataset(Path(tmp) / "images.h5", args.images, args.size)
        model, weights = model_for(args)
        pre = Preprocessor(size=(args.size, args.size), rgb=True, backbone=args.backbone)
        arrays = pre(Split(source).read())
        model.predict(arrays[: args.batch * 2], batch_size=args.batch, verbose=0)  # warm-up
        bare, ours = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            model.predict(arrays, batch_size=args.batch, verbose=0)
            bare.append(args.images / (time.perf_counter() - start))
            start = time.perf_counter()
            extract(model, source, Path(tmp) / "features.h5", pre, args.batch, progress=False)
            ours.append(args.images / (time.perf_counter() - start))
    a, b = statistics.median(bare), statistics.median(ours)
    print(f"{args.backbone} (alpha {args.alpha}, weights {weights}) at {args.size}px, "
          f"{args.images} images, batch {args.batch}, median of {args.repeats}")
    for label, median, runs in (("bare model.predict, in memory", a, bare),
                                ("extract_features, HDF5 -> HDF5", b, ours)):
        print(f"  {label:<32} {median:7.1f} img/s   (runs: {', '.join(f'{v:.1f}' for v in runs)})")
    print(f"  extract / predict = {b / a:.3f}   target >= 0.9 -> {'met' if b / a >= 0.9 else 'NOT met'}")


if __name__ == "__main__":
    main()
