"""Prediction throughput of one model three ways, in one process: Keras ``predict_on_batch``
(with the numpy preprocessing it needs), the ONNX export on onnxruntime and the LiteRT export on
the LiteRT interpreter (preprocessing in the graph), on the same uint8 batch; printed as img/s
and as ratios against Keras.

The model is a zoo architecture with random weights (the work does not depend on them) at the
default train stage's knobs (``train.arch``), or a trained model folder with ``--folder``.
onnxruntime and LiteRT run on ``--threads`` threads (default: every CPU, as TensorFlow does;
LiteRT's own default is one); rounds are interleaved, median of ``--repeats``.

    python bench/predict.py                                  # LeNet (half width), 28x28x1
    python bench/predict.py --model minivggnet --size 32 --channels 3 --batch 64
    python bench/predict.py --folder models/train
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def model_folder(args: argparse.Namespace, tmp: Path) -> Path:
    """``--folder``, or a zoo model with random weights saved like the train stage's."""
    if args.folder:
        return Path(args.folder)
    import keras

    from pipeline.config import load_params
    from pipeline.models.zoo import build
    from pipeline.train.preprocess import Preprocessor, save_spec

    keras.utils.set_random_seed(0)
    shape = (args.size, args.size, args.channels)
    model = build(args.model, shape, 10, load_params(ROOT / "params.yaml").train.arch)
    folder = tmp / "model"
    folder.mkdir()
    model.save(folder / "model.keras")
    save_spec(folder / "preprocess.json", Preprocessor(mean=(120.0,) * args.channels),
              classes=[str(c) for c in range(10)], size=[args.size, args.size],
              channels=args.channels, resize="simple", interpolation="bilinear")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="lenet", help="Zoo architecture (no --folder).")
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--folder", help="A trained model folder instead of a zoo model.")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--calls", type=int, default=20, help="Batches per timed round.")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="Threads of onnxruntime and LiteRT.")
    args = parser.parse_args()

    from pipeline.export import formats, runtimes
    from pipeline.export.parity import keras_runner

    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        source = formats.load_source(model_folder(args, tmp))
        runs = {"keras predict_on_batch": keras_runner(source)}
        for fmt, label in (("onnx", "onnxruntime"), ("litert", "LiteRT")):
            formats.export(source, fmt, tmp / fmt)
            runs[label] = runtimes.load(tmp / fmt, args.threads).run
        batch = np.random.default_rng(0).integers(0, 256, (args.batch, *source.image_shape),
                                                  dtype=np.uint8)
        reference = runs["keras predict_on_batch"](batch)
        for run in runs.values():  # warm-up, and the same answers
            np.testing.assert_allclose(run(batch), reference, atol=1e-4)
        rates: dict[str, list[float]] = {label: [] for label in runs}
        for _ in range(args.repeats):
            for label, run in runs.items():
                start = time.perf_counter()
                for _ in range(args.calls):
                    run(batch)
                rates[label].append(args.calls * args.batch / (time.perf_counter() - start))
    medians = {label: statistics.median(values) for label, values in rates.items()}
    keras_rate = medians["keras predict_on_batch"]
    what = args.folder or f"{args.model} at {args.size}x{args.size}x{args.channels}"
    print(f"{what}, batch {args.batch}, {args.calls} batches per round, median of "
          f"{args.repeats} rounds, {os.cpu_count()} CPUs, {args.threads} threads")
    for label, rate in medians.items():
        runs_text = ", ".join(f"{v:.0f}" for v in rates[label])
        print(f"  {label:<24} {rate:9.0f} img/s  x{rate / keras_rate:5.2f}   (rounds: {runs_text})")


if __name__ == "__main__":
    main()
