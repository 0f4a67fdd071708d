"""The default's train stage over several training seeds: test rank-1 of each, on one HDF5 folder.

Usage: python bench/seeds.py [--data data/hdf5] [--seeds 42 1 2] [--set train.epochs=12 ...]
Each run is ``python -m stages.train`` on params.yaml with ``base.seed`` (and the ``--set``
overrides) changed, in a temporary folder; the test split is scored with
:func:`pipeline.evaluate.evaluation.evaluate_model`. The split itself stays the one in ``--data``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "hdf5")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2])
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="A params override (YAML value), repeatable.")
    args = parser.parse_args()
    from pipeline.evaluate.evaluation import evaluate_model

    scores = []
    for seed in args.seeds:
        params = yaml.safe_load((ROOT / "params.yaml").read_text())
        params["base"]["seed"] = seed
        for text in args.overrides:
            key, _, value = text.partition("=")
            *parents, leaf = key.split(".")
            node = params
            for part in parents:
                node = node[part]
            node[leaf] = yaml.safe_load(value)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            (folder / "params.yaml").write_text(yaml.safe_dump(params))
            subprocess.run([sys.executable, "-m", "stages.train", "--params", str(folder / "params.yaml"),
                            "--data", str(args.data), "--out", str(folder / "model"),
                            "--live", str(folder / "live"), "--checkpoint", str(folder / "ckpt")],
                           cwd=ROOT, check=True, capture_output=True)
            rank1 = evaluate_model(folder / "model", args.data / "test.h5", 256)["metrics"]["rank1"]
        scores.append(rank1)
        print(f"seed {seed}: test rank-1 {rank1:.4f}", flush=True)
    print(f"min {min(scores):.4f}  median {statistics.median(scores):.4f}  max {max(scores):.4f}")


if __name__ == "__main__":
    main()
