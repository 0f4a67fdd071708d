"""DiffAugment on a tenth of MNIST: the DCGAN's GAN score with and without it, in one process.

Reads MNIST's IDX files (``../shared/data/mnist``), keeps a seeded 10% of the training images as
the DCGAN's data and trains a scorer (``mnist_convnet``, 1 epoch on all 60,000 training images,
its test accuracy printed). Then it trains the ``dcgan`` of params.yaml, with the overrides below,
twice from the same seed and for the same steps: ``diff_augment: []`` and the paper's
``[color, translation, cutout]``. Each generator's samples are scored by
:func:`pipeline.generative.gan_score.score` (mean confidence, classes hit, entropy of the class
histogram), with the real test digits for scale. CPU seconds are the process's, per run.

    python bench/diff_augment.py                          # 30 epochs of 94 steps, half width
    python bench/diff_augment.py --epochs 15 --samples 500
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

POLICIES = ([], ["color", "translation", "cutout"])


def mnist(source: Path, split: str):
    """Images ``(N, 28, 28, 1)`` uint8 and labels of an MNIST split."""
    from pipeline.data.idx import MNIST_FILES, read_idx

    images, labels = (read_idx(source / name) for name in MNIST_FILES[split])
    return images[..., None], labels.astype(int)


def scorer(folder: Path, images, labels, test_images, test_labels, seed: int) -> float:
    """Train ``mnist_convnet`` for one epoch and save it as a classifier folder; test accuracy."""
    import keras

    from pipeline.models.mnist_convnet import mnist_convnet
    from pipeline.train.preprocess import Preprocessor, save_spec

    keras.utils.set_random_seed(seed)
    model = mnist_convnet((28, 28, 1), 10)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(images / 255.0, labels, batch_size=128, epochs=1, verbose=0)
    folder.mkdir(parents=True)
    model.save(folder / "model.keras")
    save_spec(folder / "preprocess.json", Preprocessor(scale=True),
              classes=[str(d) for d in range(10)], size=[28, 28], channels=1, resize="simple",
              interpolation="bilinear")
    return float(model.evaluate(test_images / 255.0, test_labels, verbose=0)[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", type=Path, default=ROOT.parent / "shared" / "data" / "mnist")
    parser.add_argument("--fraction", type=float, default=0.1, help="Share of training images.")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--generator", type=int, nargs="+", default=[64, 32])
    parser.add_argument("--discriminator", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    import numpy as np
    import yaml

    from pipeline.config import validate
    from pipeline.generative.gan_score import score
    from pipeline.generative.gan_training import train
    from pipeline.io.hdf5 import write_arrays

    shipped = (ROOT / "params.yaml").read_text()  # read once, with the schema, for both runs
    images, labels = mnist(args.mnist, "train")
    test_images, test_labels = mnist(args.mnist, "test")
    keep = np.sort(np.random.default_rng(args.seed).permutation(len(images))[
        :round(len(images) * args.fraction)])
    classes = [str(d) for d in range(10)]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_arrays(work / "data" / "train.h5", images[keep], labels[keep], classes)
        write_arrays(work / "data" / "test.h5", test_images, test_labels, classes)
        accuracy = scorer(work / "scorer", images, labels, test_images, test_labels, args.seed)
        print(f"scorer: mnist_convnet, 1 epoch on {len(images):,} images, test accuracy "
              f"{accuracy:.4f}; DCGAN data: {len(keep):,} training images", flush=True)
        rows = []
        for policy in POLICIES:
            params = yaml.safe_load(shipped)
            params["base"]["seed"] = args.seed
            params["dcgan"].update(image_size=[28, 28], generator_filters=args.generator,
                                   discriminator_filters=args.discriminator, epochs=args.epochs,
                                   batch_size=args.batch_size, diff_augment=policy)
            run = work / ("augmented" if policy else "plain")
            start = time.process_time()
            train(validate(params), work / "data", run / "model", run / "live", run / "ckpt")
            seconds = time.process_time() - start
            result, _, _ = score(run / "model", work / "scorer", args.samples, args.seed, 256,
                                 0.01, None if rows else work / "data" / "test.h5")
            if not rows:
                real = result["real"]
                rows.append(("real test digits", real, 0.0))
            rows.append((f"diff_augment [{', '.join(policy)}]", result["generated"], seconds))
    print(f"\n{args.samples} samples; DCGAN 28x28, generator {args.generator}, discriminator "
          f"{args.discriminator}, batch {args.batch_size}, {args.epochs} epochs, seed {args.seed}")
    print(f"{'':44} {'confidence':>10} {'classes':>8} {'entropy':>8} {'CPU s':>7}")
    for name, stats, seconds in rows:
        print(f"{name:44} {stats['mean_confidence']:>10.4f} {stats['classes_hit']:>5}/10 "
              f"{stats['entropy_bits']:>8.3f} {seconds:>7.0f}")
        print(f"{'':44} per class {list(stats['histogram'].values())}")


if __name__ == "__main__":
    main()
