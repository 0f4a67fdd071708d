"""Sliding-window detector throughput: windows per second of ``WindowDetector.detect`` (pyramid,
window cutting, batching, scoring, NMS) against classifying the very same windows

* with a bare batched ``model.predict_on_batch`` on windows already cut and preprocessed in
  memory (target: detector >= 0.8x), and
* one window at a time, the textbook loop (target: detector >= 10x).

All three run in one process on the same random image and untrained model (the content does
not change the work); each is timed ``--repeats`` times and the medians are compared.

    python bench/detect.py
    python bench/detect.py --model lenet --window 40 100 --image 240 320 --batch 512
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="lenet", help="Zoo architecture (default lenet).")
    parser.add_argument("--window", type=int, nargs=2, default=(16, 16), metavar=("H", "W"))
    parser.add_argument("--image", type=int, nargs=2, default=(192, 192), metavar=("H", "W"))
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--step", type=int, default=4)
    parser.add_argument("--scale", type=float, default=1.25)
    parser.add_argument("--single", type=int, default=300,
                        help="Windows classified one at a time (a sample; the rate is per window).")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from pipeline.config.training import ArchParams
    from pipeline.detect.classifiers import KerasWindows
    from pipeline.detect.detector import Scan, WindowDetector, scan_windows
    from pipeline.models import zoo
    from pipeline.train.preprocess import Preprocessor

    window = tuple(args.window)
    model = zoo.build(args.model, (*window, 1), 4, ArchParams(width=0.5))
    classifier = KerasWindows(model, Preprocessor(scale=True), window, 1,
                              ["background", "a", "b", "c"], args.batch)
    image = np.random.default_rng(0).integers(0, 256, (*args.image, 1), dtype=np.uint8)
    # threshold 2: no window passes, so NMS does not depend on the random scores
    scan = Scan(threshold=2.0, scale=args.scale, step=args.step, batch_size=args.batch)
    detector = WindowDetector(classifier, scan)
    windows = np.concatenate([w for w, _ in scan_windows(image, window, scan)])
    n = len(windows)
    # the bare loop: batches of --batch, the last one as it is (no padding)
    batches = [classifier.preprocessor(windows[i:i + args.batch]) for i in range(0, n, args.batch)]

    def run_detector() -> None:
        detector.detect(image)

    def run_bare() -> None:
        for batch in batches:
            model.predict_on_batch(batch)

    sample = classifier.preprocessor(windows[:args.single])

    def run_single() -> None:
        for one in sample:
            model.predict_on_batch(one[None])

    for warm in (run_detector, run_bare, run_single):
        warm()
    timings: dict[str, list[float]] = {"detector": [], "bare": [], "single": []}
    for _ in range(args.repeats):
        for name, fn in (("detector", run_detector), ("bare", run_bare), ("single", run_single)):
            start = time.perf_counter()
            fn()
            timings[name].append(time.perf_counter() - start)
    rate = {
        "detector": n / statistics.median(timings["detector"]),
        "bare": n / statistics.median(timings["bare"]),
        "single": len(sample) / statistics.median(timings["single"]),
    }
    print(f"{args.model} on {window[0]}x{window[1]} windows, image {args.image[0]}x{args.image[1]}, "
          f"step {args.step}, scale {args.scale}: {n:,} windows, batch {args.batch}, "
          f"median of {args.repeats}")
    for name, value in rate.items():
        print(f"  {name:<9} {value:>10,.0f} windows/s")
    print(f"  detector / bare predict_on_batch: {rate['detector'] / rate['bare']:.2f}x (target >= 0.8)")
    print(f"  detector / one window at a time:  {rate['detector'] / rate['single']:.1f}x (target >= 10)")


if __name__ == "__main__":
    main()
