"""Automated search: Optuna's TPE against random search with the same trial budget, over seeds.

Each trial trains a scikit-learn ``MLPClassifier`` head (deterministic for its params:
``random_state`` fixed) on frozen MobileNet alpha 0.25 features of Flowers-17 (the ../shared
images and ImageNet weights, 224 px, aspect resize, image and mirror averaged) and scores it on a
fixed validation split; the test quarter is set aside and never read. Without ../shared the
benchmark says so and falls back to scikit-learn's digits (raw 8x8 pixels). The sampling is the
project's own: a :class:`pipeline.search.space.SearchSpec`, its ``TrialSeededSampler`` and
``study.ask`` / ``spec.overrides`` / ``study.tell``, as ``cvpipe search run`` does.

Random search runs once per seed, TPE once per seed and setting (``--tpe``: its
``sampler_options``); a TPE study's random start-up trials are the random study's own (same seed).
Reported: the best validation accuracy after k trials, median over the seeds at k = 5, 10 and
the budget, per sampler; and the target, "TPE reaches random search's best-of-20 within 10
trials": median over seeds of TPE's best-after-10 >= median of random's best-after-20.

    python bench/search.py
    python bench/search.py --seeds 0 1 2 --trials 20 --plot docs/images/search_tpe_vs_random.png
    python bench/search.py --tpe '{n_startup_trials: 5, multivariate: true}' --cache /tmp/f17.npz
    python bench/search.py --data digits
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import yaml  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

FLOWERS = ROOT.parent / "shared/data/flowers17"
WEIGHTS = ROOT.parent / "shared/weights/mobilenet_2_5_224_tf_no_top.h5"

#: The searched space, in the search file's spelling: the MLP head and the feature scaling.
SPACE: dict[str, Any] = {
    "lr": {"float": [1e-4, 1e-1], "log": True},
    "alpha": {"float": [1e-6, 10.0], "log": True},
    "units": {"int": [16, 512], "log": True},
    "batch_size": {"categorical": [16, 32, 64, 128, 256]},
    "scale": {"categorical": ["none", "standard", "l2"]},
    "power": {"float": [0.25, 1.0]},
}

#: TPE settings compared by default: Optuna's own (10 random trials first), then fewer random
#: trials, univariate and multivariate.
DEFAULT_TPE: list[dict[str, Any]] = [
    {},
    {"n_startup_trials": 5},
    {"n_startup_trials": 5, "multivariate": True},
    {"n_startup_trials": 3, "multivariate": True},
]


def flowers_features(size: int = 224, batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """MobileNet alpha 0.25 average-pooled features (image and mirror averaged) of every
    Flowers-17 image, and the class indices (Keras does the network, Pillow the decoding)."""
    from pipeline.io.images import load
    from pipeline.models import backbones
    from pipeline.transfer.features import feature_model, forward

    paths = sorted(p for p in FLOWERS.glob("*/*") if p.suffix.lower() in {".jpg", ".jpeg"})
    classes = sorted({p.parent.name for p in paths})
    model = feature_model(backbones.build("mobilenet", str(WEIGHTS), (size, size), 0.25), "avg")
    rows = []
    for start in range(0, len(paths), batch):
        images = np.stack([load(p, (size, size), 3, "aspect") for p in paths[start:start + batch]])
        rows.append(forward(model, backbones.preprocess_input("mobilenet", images), flip=True))
        print(f"\rfeatures {start + len(images)}/{len(paths)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    labels = np.array([classes.index(p.parent.name) for p in paths], dtype=np.int64)
    return np.concatenate(rows).astype(np.float32), labels


def dataset(kind: str, cache: Path | None) -> tuple[str, np.ndarray, np.ndarray]:
    """The name, features and labels: Flowers-17 features (from ``cache`` when it exists) or
    the digits."""
    if kind == "flowers17":
        if not (FLOWERS.is_dir() and WEIGHTS.exists()):
            print(f"skip Flowers-17: {FLOWERS} or {WEIGHTS} is absent; using the digits instead")
            kind = "digits"
        elif cache is not None and cache.exists():
            with np.load(cache) as saved:
                return "flowers17", saved["features"], saved["labels"]
        else:
            features, labels = flowers_features()
            if cache is not None:
                from pipeline.io.atomic import atomic_path

                with atomic_path(cache, suffix=".npz") as tmp:
                    np.savez(tmp, features=features, labels=labels)
            return "flowers17", features, labels
    from sklearn.datasets import load_digits

    digits = load_digits()
    return "digits", digits.data.astype(np.float32), digits.target.astype(np.int64)


def splits(features: np.ndarray, labels: np.ndarray, seed: int = 42):
    """Stratified train / validation / test (60 / 15 / 25 %); the test part is dropped here."""
    from sklearn.model_selection import train_test_split

    rest_x, _, rest_y, _ = train_test_split(features, labels, test_size=0.25, stratify=labels,
                                            random_state=seed)
    return train_test_split(rest_x, rest_y, test_size=0.2, stratify=rest_y, random_state=seed)


def accuracy(values: dict[str, Any], data, epochs: int) -> float:
    """Validation accuracy of the MLP head trained with ``values`` (scikit-learn does the
    scaling and the training; ``random_state`` is fixed, so equal values give equal scores)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import Normalizer, StandardScaler

    train_x, val_x, train_y, val_y = data

    def prepared(x: np.ndarray) -> np.ndarray:
        return np.sign(x) * np.abs(x) ** values["power"]

    train_x, val_x = prepared(train_x), prepared(val_x)
    if values["scale"] != "none":
        scaler = (StandardScaler() if values["scale"] == "standard" else Normalizer()).fit(train_x)
        train_x, val_x = scaler.transform(train_x), scaler.transform(val_x)
    model = MLPClassifier((values["units"],), alpha=values["alpha"], batch_size=values["batch_size"],
                          learning_rate_init=values["lr"], max_iter=epochs, random_state=0)
    # One BLAS thread: small matrices on a shared 2-core host run ~10x slower with more.
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(train_x, train_y)
    return float(model.score(val_x, val_y))


def curve(sampler: str, options: dict[str, Any], seed: int, trials: int, data, epochs: int,
          memo: dict) -> list[float]:
    """Best validation accuracy after each of ``trials`` trials of one study, sampled as
    ``cvpipe search run`` samples (the spec's ``TrialSeededSampler``, ask / overrides / tell).
    ``memo`` holds scores by params: a trial is deterministic, so equal draws are trained once."""
    import optuna

    from pipeline.search.space import SearchSpec, TrialSeededSampler

    spec = SearchSpec.model_validate({"name": "bench", "sampler": sampler, "seed": seed,
                                      "sampler_options": options, "trials": trials,
                                      "space": SPACE})
    study = optuna.create_study(direction="maximize", sampler=TrialSeededSampler(spec))
    distributions = spec.distributions()
    best: list[float] = []
    for _ in range(spec.budget()):
        trial = study.ask(distributions)
        values = spec.overrides(trial.params)
        key = tuple(sorted(values.items()))
        if key not in memo:
            memo[key] = accuracy(values, data, epochs)
        study.tell(trial, memo[key])
        best.append(max(memo[key], best[-1]) if best else memo[key])
    return best


def label(sampler: str, options: dict[str, Any]) -> str:
    """``tpe {n_startup_trials: 5}``: the sampler and its options in the search file's YAML."""
    text = yaml.safe_dump(options, default_flow_style=True, width=200).strip()
    return f"{sampler} {text}" if options else sampler


def plot(path: Path, curves: dict[str, dict[int, list[float]]], title: str) -> None:
    """Median best-so-far over the seeds per sampler (thin lines: each seed); matplotlib Agg."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pipeline.io.atomic import atomic_path

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for index, (name, by_seed) in enumerate(curves.items()):
        # random: black, dashed and on top, so that TPE's curves, equal at first, do not hide it
        color, style, z = ("black", "--", 3) if name == "random" else (f"C{index - 1}", "-", 2)
        runs = np.array(list(by_seed.values()))
        k = np.arange(1, runs.shape[1] + 1)
        for run in runs:
            ax.step(k, run, where="post", color=color, alpha=0.2, linewidth=0.8, linestyle=style)
        ax.step(k, np.median(runs, axis=0), where="post", color=color, linewidth=2, zorder=z,
                linestyle=style, label=f"{name} (median)")
    ax.set_xlabel("trials")
    ax.set_ylabel("best validation accuracy so far")
    ax.set_title(title)
    ax.set_xticks(range(0, runs.shape[1] + 1, 5))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", choices=("flowers17", "digits"), default="flowers17",
                        help="Flowers-17 MobileNet features (default; digits when ../shared lacks "
                        "them) or scikit-learn's digits.")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--trials", type=int, default=20, help="Trials per study (the budget).")
    parser.add_argument("--at", type=int, default=10,
                        help="TPE's trials for the target (against random's --trials).")
    parser.add_argument("--epochs", type=int, default=30, help="MLP max_iter of every trial.")
    parser.add_argument("--tpe", action="append", type=yaml.safe_load, metavar="YAML",
                        help="TPE sampler_options, a YAML mapping; repeatable (default: the four "
                        "in DEFAULT_TPE).")
    parser.add_argument("--cache", type=Path, help="An .npz of the Flowers-17 features: read "
                        "when it exists, else written (extraction takes about a minute).")
    parser.add_argument("--plot", type=Path, help="Write the best-so-far curves to this PNG.")
    args = parser.parse_args()
    tpe = args.tpe or DEFAULT_TPE
    if not all(isinstance(options, dict) for options in tpe):
        parser.error("--tpe takes a YAML mapping, e.g. '{n_startup_trials: 5}'")
    if not 1 <= args.at <= args.trials:
        parser.error("--at must be between 1 and --trials")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name, features, labels = dataset(args.data, args.cache)
    data = splits(features, labels)
    print(f"{name}: {features.shape[1]} features, {len(data[2])} train, {len(data[3])} validation "
          f"images (test quarter set aside); {args.trials} trials x seeds {args.seeds}; "
          f"MLP max_iter {args.epochs}")
    memo: dict = {}
    curves: dict[str, dict[int, list[float]]] = {}
    for sampler, options in [("random", {}), *(("tpe", o) for o in tpe)]:
        name_s = label(sampler, options)
        curves[name_s] = {}
        for seed in args.seeds:
            curves[name_s][seed] = run = curve(sampler, options, seed, args.trials, data,
                                               args.epochs, memo)
            print(f"  {name_s}, seed {seed}: " + " ".join(f"{v:.3f}" for v in run), flush=True)
    report(curves, args.trials, args.at)
    if args.plot:
        plot(args.plot, curves, f"{name}: MLP head, {len(args.seeds)} seeds")
        print(f"wrote {args.plot}")


def report(curves: dict[str, dict[int, list[float]]], trials: int, at: int) -> None:
    """The markdown table (median over seeds of the best after k trials; per seed in brackets)
    and the target for each TPE setting."""
    ks = sorted({k for k in (5, at, trials) if k <= trials})

    def best(run: list[float], k: int) -> float:
        return run[k - 1]

    print()
    print("| sampler | " + " | ".join(f"best of {k} (median; seeds)" for k in ks) + " |")
    print("| --- |" + " --- |" * len(ks))
    for name, by_seed in curves.items():
        cells = []
        for k in ks:
            values = [best(run, k) for run in by_seed.values()]
            cells.append(f"{statistics.median(values):.4f} ("
                         + ", ".join(f"{v:.3f}" for v in values) + ")")
        print(f"| {name} | " + " | ".join(cells) + " |")
    random = curves["random"]
    goal = statistics.median(best(run, trials) for run in random.values())
    print()
    for name, by_seed in curves.items():
        if name == "random":
            continue
        reached = statistics.median(best(run, at) for run in by_seed.values())
        seeds = ", ".join(
            f"seed {seed} {best(run, at):.4f} vs {best(random[seed], trials):.4f}"
            f" ({'met' if best(run, at) >= best(random[seed], trials) else 'not met'})"
            for seed, run in by_seed.items())
        first = [next((i + 1 for i, v in enumerate(run) if v >= goal), None) for run in by_seed.values()]
        middle = statistics.median(math.inf if n is None else n for n in first)
        print(f"{name}: best of {at} {reached:.4f} (median) vs random's best of {trials} {goal:.4f}: "
              f"{'met' if reached >= goal else 'NOT met'}; per seed: {seeds}; trials to reach "
              f"{goal:.4f}: {first} (median {middle:g}; None: not in {trials})")


if __name__ == "__main__":
    main()
