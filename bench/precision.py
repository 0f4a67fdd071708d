"""Training throughput and accuracy under float32 and mixed bfloat16, with and without XLA, in one
process: LeNet and MiniVGGNet (the default ``train.arch``, half width) on scikit-learn's 1,797
digits (what ``pipeline/data/embedded.py`` writes), enlarged to 28x28 grey, 80/20 split.

Each of the four settings per model (precision x ``jit_compile``) starts from the same seed and
trains the same epochs with ``model.fit`` (SGD, the default lr and cosine schedule,
:func:`pipeline.train.schedules.make_optimizer`), the four taking turns epoch by epoch so that
other work on the machine slows them alike. img/s is the training split (whole batches) over the
median epoch time, the first epoch (tracing, compiling) left out; img/CPU-s the same over the
process's CPU time, which other work on a shared machine disturbs less. Ratios are against
float32 without XLA; accuracy is on the held-out fifth. The policy is set as the train stage sets it
(:func:`pipeline.train.lifecycle.configure_backend`).

    python bench/precision.py                      # both models, 3 epochs
    python bench/precision.py --models lenet --epochs 6
    python bench/precision.py --models minivggnet --width 2 --xla off   # 16x the default's work
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

SETTINGS = [("none", False), ("none", True), ("bfloat16", False), ("bfloat16", True)]


def digits(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Train and test images (float 0-1, ``(n, size, size, 1)``) and labels, split 80/20."""
    from PIL import Image
    from sklearn.datasets import load_digits

    data = load_digits()
    grey = np.rint(data.images * (255 / 16)).astype(np.uint8)
    big = np.stack([np.asarray(Image.fromarray(g).resize((size, size), Image.BILINEAR))
                    for g in grey])[..., None].astype(np.float32) / 255.0
    order = np.random.default_rng(0).permutation(len(big))
    cut = int(0.8 * len(big))
    train, test = order[:cut], order[cut:]
    return big[train], data.target[train], big[test], data.target[test]


def compiled(model_name: str, precision: str, jit: bool, steps: int, epochs: int, batch: int,
             width: float | None):
    """A model built under ``precision``'s policy from seed 0 and compiled; its layers keep the
    policy, so models of several precisions can be trained side by side."""
    import keras

    from pipeline.config import TrainParams
    from pipeline.models import zoo
    from pipeline.train.lifecycle import configure_backend
    from pipeline.train.schedules import make_optimizer

    configure_backend(0, deterministic=False, mixed_precision=precision)
    params = TrainParams(model=model_name, epochs=epochs, batch_size=batch)
    arch = params.arch if width is None else params.arch.model_copy(update={"width": width})
    model = zoo.build(model_name, (28, 28, 1), 10, arch)
    model.compile(make_optimizer(params, steps), "sparse_categorical_crossentropy",
                  metrics=["accuracy"], jit_compile=jit)
    keras.config.set_dtype_policy("float32")
    return model


def compare(model_name: str, data, epochs: int, batch: int, width: float | None = None,
            settings: list[tuple[str, bool]] = SETTINGS) -> dict:
    """The four settings trained epoch by epoch in turn (so that load from other processes falls
    on all of them alike): epoch times and test accuracy of each."""
    x, y, x_test, y_test = data
    keep = len(x) // batch * batch  # whole batches only: one traced (or compiled) step shape
    x, y = x[:keep], y[:keep]
    models = {s: compiled(model_name, *s, keep // batch, epochs, batch, width) for s in settings}
    times: dict = {s: [] for s in settings}
    cpu: dict = {s: [] for s in settings}
    for epoch in range(epochs):
        for setting, model in models.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            model.fit(x, y, batch_size=batch, initial_epoch=epoch, epochs=epoch + 1,
                      shuffle=True, verbose=0)
            times[setting].append(time.perf_counter() - start)
            cpu[setting].append(time.process_time() - start_cpu)
    return {s: {"rate": keep / statistics.median(times[s][1:]), "times": times[s],
                "cpu_rate": keep / statistics.median(cpu[s][1:]),
                "accuracy": float(m.evaluate(x_test, y_test, batch_size=256, verbose=0)[1])}
            for s, m in models.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["lenet", "minivggnet"])
    parser.add_argument("--epochs", type=int, default=3, help="At least 2 (the first is not timed).")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--width", type=float, help="arch.width instead of the default's 0.5.")
    parser.add_argument("--xla", choices=["both", "off"], default="both",
                        help="off: only the two settings without XLA.")
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2")
    data = digits(28)
    used = len(data[0]) // args.batch * args.batch
    print(f"{used} train / {len(data[2])} test digits at 28x28x1, batch {args.batch}, "
          f"{args.epochs} epochs (the first untimed), {os.cpu_count()} CPUs")
    for name in args.models:
        settings = [s for s in SETTINGS if args.xla == "both" or not s[1]]
        results = compare(name, data, args.epochs, args.batch, args.width, settings)
        base = results[("none", False)]
        print(name if args.width is None else f"{name}, width {args.width}")
        for (precision, jit), r in results.items():
            label = f"{'float32' if precision == 'none' else precision}, XLA {'on' if jit else 'off'}"
            epochs = ", ".join(f"{t:.2f}" for t in r["times"])
            print(f"  {label:<20} {r['rate']:6.0f} img/s x{r['rate'] / base['rate']:5.2f}  "
                  f"{r['cpu_rate']:6.0f} img/CPU-s x{r['cpu_rate'] / base['cpu_rate']:5.2f}  "
                  f"test accuracy {r['accuracy']:.4f}  (epoch s: {epochs})", flush=True)


if __name__ == "__main__":
    main()
