"""Training throughput: the pipeline's HDF5 loader against in-memory arrays and a plain generator.

For each model, three ways of training the same model with the same batch size are timed:

  (a) ``model.fit`` on in-memory float arrays (Keras's own array pipeline; the ceiling),
  (b) ``model.fit`` on :class:`pipeline.train.loader.HDF5Loader` over an HDF5 file, handed over as the
      train stage does (``fit_data``: a prefetching tf.data pipeline on TensorFlow),
  (c) ``model.fit`` on a plain Python generator reading the HDF5 file batch by batch, in order.

Runs are interleaved (a, b, c, a, b, c, ...) after one discarded warm-up round, and the median
of the repeats is reported, because throughput on a shared 2-core machine drifts by 10-50%
between runs (the first runs in a process are the slowest, whatever the mode). Ratios b/a and b/c are
printed. The data is scikit-learn's digits, enlarged to the model's input size and tiled.

    python bench/loader.py                       # ShallowNet and MiniVGGNet at 32x32
    python bench/loader.py --models shallownet --images 20000 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import h5py
import keras
import numpy as np

from pipeline.io.hdf5 import write_arrays
from pipeline.models import zoo as models
from pipeline.train.loader import HDF5Loader, fit_data
from pipeline.train.preprocess import Preprocessor


def digits_dataset(n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` RGB ``size`` x ``size`` uint8 images made from scikit-learn's digits."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    grey = np.rint(digits.images * (255 / 16)).astype(np.uint8)
    big = np.stack([np.asarray(Image.fromarray(g).resize((size, size), Image.Resampling.BILINEAR))
                    for g in grey])
    reps = -(-n // len(big))
    images = np.repeat(np.tile(big, (reps, 1, 1))[:n, :, :, None], 3, axis=3)
    labels = np.tile(digits.target, reps)[:n].astype(np.int32)
    return images, labels


def plain_generator(path: Path, batch_size: int):
    """The classic way: read the file in order, batch by batch, forever."""
    with h5py.File(path, "r") as f:
        images, labels = f["images"], f["labels"]
        n = images.shape[0]
        while True:
            for start in range(0, n, batch_size):
                yield (images[start:start + batch_size].astype(np.float32) / 255.0,
                       labels[start:start + batch_size])


def time_fit(mode: str, model_name: str, data: dict, batch_size: int, epochs: int) -> float:
    """Images per second of ``epochs`` epochs after one warm-up epoch."""
    keras.utils.set_random_seed(0)
    x, y, path = data["x"], data["y"], data["path"]
    model = models.build(model_name, x.shape[1:], 10)
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9), "sparse_categorical_crossentropy")
    steps = -(-len(y) // batch_size)
    if mode == "a":
        def fit(e):
            return model.fit(x, y, batch_size=batch_size, epochs=e, shuffle=True, verbose=0)
    elif mode == "b":
        loader = HDF5Loader(path, batch_size, Preprocessor(), training=True, seed=0)

        def fit(e):  # exactly what the train stage hands model.fit
            data, steps_per_epoch = fit_data(loader, 0, e)
            return model.fit(data, steps_per_epoch=steps_per_epoch, epochs=e, shuffle=False, verbose=0)
    else:
        generator = plain_generator(path, batch_size)

        def fit(e):
            return model.fit(generator, steps_per_epoch=steps, epochs=e, verbose=0)
    fit(1)
    start = time.perf_counter()
    fit(epochs)
    return epochs * len(y) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["shallownet", "minivggnet"])
    parser.add_argument("--images", type=int, nargs="+", default=[12000, 1500],
                        help="Images per model (one value, or one per model).")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    counts = args.images * len(args.models) if len(args.images) == 1 else args.images
    print(f"keras {keras.__version__}, backend {keras.backend.backend()}, batch {args.batch_size}, "
          f"{args.size}x{args.size}x3, {args.epochs} epochs x {args.repeats} interleaved repeats "
          "after a warm-up round")
    for model_name, n in zip(args.models, counts, strict=True):
        images, labels = digits_dataset(n, args.size)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "train.h5"
            write_arrays(path, images, labels, [str(i) for i in range(10)])
            data = {"x": images.astype(np.float32) / 255.0, "y": labels, "path": path}
            runs: dict[str, list[float]] = {"a": [], "b": [], "c": []}
            for round_ in range(args.repeats + 1):
                for mode in runs:
                    speed = time_fit(mode, model_name, data, args.batch_size, args.epochs)
                    if round_:  # round 0 warms the process up and is discarded
                        runs[mode].append(speed)
        med = {mode: statistics.median(values) for mode, values in runs.items()}
        print(f"\n{model_name}: {n} images")
        for mode, label in (("a", "model.fit on in-memory arrays"), ("b", "HDF5Loader"),
                            ("c", "plain HDF5 generator")):
            spread = ", ".join(f"{v:.0f}" for v in runs[mode])
            print(f"  ({mode}) {label:<30} {med[mode]:8.0f} img/s   (runs: {spread})")
        print(f"  b/a = {med['b'] / med['a']:.3f}   b/c = {med['b'] / med['c']:.3f}   "
              f"c/a = {med['c'] / med['a']:.3f}")


if __name__ == "__main__":
    main()
