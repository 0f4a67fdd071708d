"""Data-parallel training throughput: steps per second for 1 and 2 workers (and GPUs where there are).

The workers are what ``train.distribution`` runs (:mod:`pipeline.train.distribute`): one process
with ``none``, then N processes on localhost ports, each with its own ``TF_CONFIG``, under
``multi_worker`` (TensorFlow's ``MultiWorkerMirroredStrategy``), each reading its slice of every
global batch through the train stage's loader and ``tf.data`` pipeline. Each worker times the
epochs after a warm-up one and the time its loader spends in ``__getitem__`` (reading, decoding,
preprocessing: the time a step would wait for data if nothing overlapped it). Where TensorFlow
sees GPUs, ``mirrored`` over 1 and all of them is timed too, float32 and then with mixed precision
(``mixed_bfloat16``) and XLA; without one it says so. The data is scikit-learn's digits, tiled.

    python bench/distributed.py                          # 1 and 2 CPU workers, LeNet, 28x28
    python bench/distributed.py --workers 1 2 4 --images 4096 --batch 128 --epochs 3

On a machine with two shared cores, two workers cannot be faster than one: each has one core
where one worker had two, and they add the all-reduce of every step over localhost.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def write_digits(folder: Path, n: int, size: int) -> Path:
    """``train.h5`` of ``n`` grey ``size`` x ``size`` digits (scikit-learn's, tiled)."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    from pipeline.io.hdf5 import write_arrays

    digits = load_digits()
    grey = np.rint(digits.images * (255 / 16)).astype(np.uint8)
    big = np.stack([np.asarray(Image.fromarray(g).resize((size, size))) for g in grey])[..., None]
    reps = -(-n // len(big))
    write_arrays(folder / "train.h5", np.tile(big, (reps, 1, 1, 1))[:n],
                 np.tile(digits.target, reps)[:n], [str(i) for i in range(10)])
    return folder / "train.h5"


def worker(args: argparse.Namespace) -> dict:
    """Train ``args.epochs`` epochs under ``args.distribution``; the timings as a dict."""
    import keras

    from pipeline.config import ArchParams, TrainParams
    from pipeline.models import zoo
    from pipeline.train import distribute
    from pipeline.train.loader import HDF5Loader
    from pipeline.train.preprocess import Preprocessor
    from pipeline.train.schedules import make_optimizer
    from pipeline.train.training import compile_model

    dist = distribute.setup(args.distribution, "train", args.batch)
    keras.utils.set_random_seed(0)
    keras.config.set_dtype_policy(args.precision)
    loading = [0.0]

    class TimedLoader(HDF5Loader):
        def __getitem__(self, index: int):
            start = time.perf_counter()
            try:
                return super().__getitem__(index)
            finally:
                loading[0] += time.perf_counter() - start

    loader = TimedLoader(args.data / "train.h5", dist.replica_batch(args.batch), Preprocessor(),
                         training=True)
    steps = len(loader.split) // args.batch
    params = TrainParams(model=args.model, batch_size=args.batch, epochs=args.epochs,
                         schedule={"kind": "constant"}, lr=0.01, arch=ArchParams(width=0.5))
    with dist.scope():
        model = zoo.build(args.model, loader.split.shape[1:], 10, params.arch)
        compile_model(model, make_optimizer(params, steps), 10, args.jit)
    dist.adopt(model, loader)
    data, _ = dist.fit_data(loader, 0, args.epochs, args.batch)
    marks: list[tuple[float, float]] = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            marks.append((time.perf_counter(), loading[0]))

        def on_train_end(self, logs=None):
            marks.append((time.perf_counter(), loading[0]))

    model.fit(data, steps_per_epoch=steps, epochs=args.epochs, shuffle=False, verbose=0,
              callbacks=[Clock()])
    (t0, l0), (t1, l1) = marks[1], marks[-1]  # the epochs after the first
    measured = steps * (args.epochs - 1)
    return {"worker": dist.worker, "workers": dist.workers, "replicas": dist.replicas,
            "steps_per_s": measured / (t1 - t0), "images_per_s": measured * args.batch / (t1 - t0),
            "loader_share": (l1 - l0) / (t1 - t0)}


def launch(args: argparse.Namespace, workers: int, distribution: str, extra: list[str]) -> dict:
    """Run ``workers`` worker processes and return the chief's timings (worker 0)."""
    from pipeline.train.distribute import localhost_cluster

    cluster = localhost_cluster(workers)
    common = [sys.executable, __file__, "--as-worker", "--data", str(args.data),
              "--model", args.model, "--batch", str(args.batch), "--epochs", str(args.epochs),
              "--distribution", distribution, *extra]
    procs = []
    for index in range(workers):
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        if distribution == "multi_worker":
            env["TF_CONFIG"] = json.dumps({"cluster": cluster,
                                           "task": {"type": "worker", "index": index}})
        procs.append(subprocess.Popen(common, env=env, stdout=subprocess.PIPE, text=True))
    results = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"a worker exited {proc.returncode}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results[0]


def show(label: str, result: dict) -> None:
    print(f"{label:<34} {result['steps_per_s']:7.2f} steps/s  {result['images_per_s']:8.0f} img/s"
          f"  data {100 * result['loader_share']:4.1f}% of step time", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--model", default="lenet")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3, help="the first is a warm-up")
    parser.add_argument("--as-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--distribution", default="none", help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="float32", help=argparse.SUPPRESS)
    parser.add_argument("--jit", default="false", help=argparse.SUPPRESS)
    parser.add_argument("--gpus", type=int, default=-1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.as_worker:
        if args.gpus >= 0:
            import tensorflow as tf

            tf.config.set_visible_devices(tf.config.list_physical_devices("GPU")[:args.gpus], "GPU")
        print(json.dumps(worker(args)))
        return
    print(f"{args.model}, {args.images} images of {args.size}x{args.size}, global batch "
          f"{args.batch}, {args.epochs - 1} timed epochs; {os.cpu_count()} CPUs", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        args.data = Path(tmp)
        write_digits(args.data, args.images, args.size)
        for count in args.workers:
            kind = "none" if count == 1 else "multi_worker"
            show(f"CPU, {count} worker(s) ({kind})", launch(args, count, kind, ["--gpus", "0"]))
        gpus = subprocess.run(
            [sys.executable, "-c", "import tensorflow as tf; "
             "print(len(tf.config.list_physical_devices('GPU')))"],
            capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        count = int(gpus.stdout.strip().splitlines()[-1]) if gpus.returncode == 0 else 0
        if not count:
            print("no GPU here: the 1 and N GPU runs (mixed precision, XLA) are skipped")
            return
        for n in sorted({1, count}):
            for precision, jit in (("float32", "false"), ("mixed_bfloat16", "true")):
                show(f"{n} GPU(s), mirrored, {precision}, XLA {jit}",
                     launch(args, 1, "mirrored", ["--gpus", str(n), "--precision", precision,
                                                  "--jit", jit]))


if __name__ == "__main__":
    main()
