"""DeepDream and style transfer speed and memory: the ``dream`` and ``stylize`` loops against a
bare compiled input gradient of the same loss on the same model and image size, the style loss
after some steps (Adam and L-BFGS), and the peak memory against the image size.

* dream (one octave, ``--iterations`` steps) against ``gradients.compile_input_grad`` of the same
  ``dream_loss`` plus the same numpy update (gradient over its mean absolute value), per step;
* stylize (Adam) against a compiled gradient of the same total loss (content + Gram style + TV,
  each layer divided by its mean size on the content) plus a numpy Adam and clip, per step;
  target for both: stage / bare >= 0.9 (the stage's loop adds at most ~10 %);
* the style loss after ``--loss-iterations`` steps as a fraction of its start;
* the peak RSS (``resource.getrusage``) of a fresh process running ``--memory-steps`` steps of
  each at every ``--sizes``.

All timings run in one process, interleaved, ``--repeats`` times; medians are compared. The
network is MobileNet alpha 0.25 with the ../shared ImageNet weights when present, else random
weights of the same shape. Images: scikit-image's chelsea (dream) and astronaut (content), and
the ../shared Starry Night (style; scikit-image's coffee without it).

    python bench/reverse.py
    python bench/reverse.py --size 192 --iterations 20 --repeats 15
    python bench/reverse.py --no-memory --loss-iterations 100
    python bench/reverse.py --sizes 64 128 256 --memory-steps 2
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

WEIGHTS = ROOT.parent / "shared/weights/mobilenet_2_5_224_tf_no_top.h5"
STYLE = ROOT.parent / "shared/data/paintings/starry_night.jpg"


def weights() -> str:
    return str(WEIGHTS) if WEIGHTS.exists() else "none"


def images() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uint8 RGB chelsea, astronaut and the style painting."""
    from PIL import Image
    from skimage import data

    style = np.asarray(Image.open(STYLE).convert("RGB")) if STYLE.exists() else data.coffee()
    return data.chelsea(), data.astronaut(), style


def dream_params(size: int, iterations: int, jitter: int):
    from pipeline.config.reverse import DreamParams, NetParams

    return DreamParams(net=NetParams(weights=weights()), max_side=size, octaves=1,
                       iterations=iterations, jitter=jitter)


def stylize_params(size: int, iterations: int, optimizer: str = "adam"):
    from pipeline.config.reverse import NetParams, StylizeParams

    return StylizeParams(net=NetParams(weights=weights()), image_size=(size, size),
                         iterations=iterations, optimizer=optimizer)


def bare_dream(params, image: np.ndarray):
    """``run(n)``: n bare steps (compiled gradient + numpy update) on the image the stage sees."""
    from pipeline.generative.dream import dream_loss, fit_longer_side
    from pipeline.generative.feature_net import feature_model
    from pipeline.generative.gradients import compile_input_grad

    model = feature_model(params.net, list(params.layers))
    grad = compile_input_grad(dream_loss(model, dict(params.layers)))
    start = fit_longer_side(image, params.max_side).astype(np.float32)
    step = params.step * 255.0

    def run(n: int) -> float:
        x = start
        loss = 0.0
        for _ in range(n):
            loss, g = grad(x[None])
            norm = float(np.mean(np.abs(g), dtype=np.float64))
            if norm > 0:
                x = x + (step / norm) * g[0]
        return loss

    return run


def bare_stylize(params, content: np.ndarray, style: np.ndarray):
    """``run(n) -> (first, last, seconds)``: the total loss at the start and after n bare Adam steps
    (compiled gradient of the same total loss, a numpy Adam as Keras's, clip to 0..255), and the
    seconds of the n steps after the first evaluation (which the stage's record leaves out too)."""
    import keras
    from keras import ops

    from pipeline.generative.feature_net import feature_model
    from pipeline.generative.gradients import compile_input_grad
    from pipeline.generative.style import content_loss, gram_matrix, resized, total_variation_loss

    keras.utils.set_random_seed(params.seed)
    size = tuple(params.image_size)
    base, texture = resized(content, size), resized(style, size)
    layers = dict(params.style_layers)
    model = feature_model(params.net, list(dict.fromkeys([params.content_layer, *layers])))
    out = model(base[None])
    norms = {k: float(np.abs(ops.convert_to_numpy(out[k])).mean()) or 1.0
             for k in {params.content_layer, *layers}}
    target = ops.convert_to_numpy(out[params.content_layer]) / norms[params.content_layer]
    out = model(texture[None])
    grams = {k: ops.convert_to_numpy(gram_matrix(out[k] / norms[k])) for k in layers}
    wsum = sum(layers.values())

    def total(image):
        feats = model(image)
        style_term = 0.0
        for k, w in layers.items():
            h, wd, c = feats[k].shape[1:]
            diff = grams[k] - gram_matrix(feats[k] / norms[k])
            style_term = style_term + w * ops.sum(ops.square(diff)) / (4.0 * c**2 * (h * wd) ** 2)
        return (params.content_weight * content_loss(target, feats[params.content_layer]
                                                     / norms[params.content_layer])
                + params.style_weight * style_term / wsum
                + params.tv_weight * total_variation_loss(image))

    grad = compile_input_grad(total)
    b1, b2, eps, lr = 0.9, 0.999, 1e-7, params.lr

    def run(n: int) -> tuple[float, float, float]:
        x = base[None].copy()
        m, v = np.zeros_like(x), np.zeros_like(x)
        first, g = grad(x)
        start = time.perf_counter()  # as the stage's seconds_per_step: after the first evaluation
        value = first
        for t in range(1, n + 1):
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            x = np.clip(x - lr * np.sqrt(1 - b2**t) / (1 - b1**t) * m / (np.sqrt(v) + eps), 0, 255)
            value, g = grad(x)
        return first, value, time.perf_counter() - start

    return run


def keras_adam_step(size: int):
    """``run(n) -> seconds`` of n updates by ``keras.optimizers.Adam`` ``apply`` on a
    ``keras.Variable``, the clip, and the copy back to numpy: what the stage's update cost
    before it was written in numpy (it was a third of each step at 128 px)."""
    import keras
    from keras import ops

    from pipeline.generative.gradients import no_grad

    rng = np.random.default_rng(0)
    pixels = keras.Variable(rng.uniform(0, 255, (size, size, 3)).astype(np.float32), name="pixels")
    optimizer = keras.optimizers.Adam(learning_rate=5.0)
    g = rng.normal(size=(size, size, 3)).astype(np.float32)

    def run(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            with no_grad():
                optimizer.apply([ops.convert_to_tensor(g)], [pixels])
                pixels.assign(ops.clip(pixels.value, 0.0, 255.0))
            np.asarray(ops.convert_to_numpy(pixels.value), np.float32)
        return time.perf_counter() - start

    return run


def timings(args: argparse.Namespace) -> None:
    from pipeline.generative.dream import dream
    from pipeline.generative.style import stylize

    chelsea, astronaut, painting = images()
    n, size = args.iterations, args.size
    dp = dream_params(size, n, args.jitter)
    sp = stylize_params(size, n)
    run_dream_bare = bare_dream(dp, chelsea)
    run_style_bare = bare_stylize(sp, astronaut, painting)
    run_adam = keras_adam_step(size)
    # warm-up: traces every compiled function once
    dream(chelsea, dp)
    run_dream_bare(2)
    stylize(astronaut, painting, stylize_params(size, 2))
    first_bare, _, _ = run_style_bare(2)
    run_adam(3)

    t: dict[str, list[float]] = {k: [] for k in ("dream", "dream_bare", "stylize", "stylize_call",
                                                 "stylize_bare", "adam")}
    stage_first = 0.0

    def time_dream() -> None:
        start = time.perf_counter()
        dream(chelsea, dp)
        t["dream"].append((time.perf_counter() - start) / n)

    def time_dream_bare() -> None:
        start = time.perf_counter()
        run_dream_bare(n)
        t["dream_bare"].append((time.perf_counter() - start) / n)

    def time_stylize() -> None:
        nonlocal stage_first
        start = time.perf_counter()
        _, record = stylize(astronaut, painting, sp)
        t["stylize_call"].append((time.perf_counter() - start) / n)
        t["stylize"].append(record["seconds_per_step"])
        stage_first = record["first"]["total"]

    def time_stylize_bare() -> None:
        t["stylize_bare"].append(run_style_bare(n)[2] / n)

    def time_adam() -> None:
        t["adam"].append(run_adam(n) / n)

    for i in range(args.repeats):  # the order flips every repeat: a burst of load hits both
        pairs = [(time_dream, time_dream_bare), (time_stylize, time_stylize_bare, time_adam)]
        for pair in pairs:
            for fn in (pair if i % 2 == 0 else pair[::-1]):
                gc.collect()  # the garbage of the last call is not the next one's cost
                fn()
    med = {k: statistics.median(v) for k, v in t.items()}
    h, w = chelsea.shape[:2]
    dh, dw = round(h * size / max(h, w)), round(w * size / max(h, w))
    print(f"mobilenet alpha 0.25, weights {dp.net.weights}; {n} steps a run, median of "
          f"{args.repeats} (ms per step; runs in brackets)")

    def line(label: str, key: str) -> None:
        runs = ", ".join(f"{v * 1000:.1f}" for v in t[key])
        print(f"  {label:<46} {med[key] * 1000:8.2f} ms   ({runs})")

    print(f"dream, one octave at {dh}x{dw}, layers {dict(dp.layers)}, jitter {dp.jitter}:")
    line("dream() (whole call / steps)", "dream")
    line("bare compiled gradient + numpy update", "dream_bare")
    ratio = med["dream_bare"] / med["dream"]
    print(f"  dream / bare = {ratio:.3f}x   target >= 0.9 -> {'met' if ratio >= 0.9 else 'NOT met'}")
    print(f"stylize, Adam at {size}x{size}, content {sp.content_layer}, style "
          f"{list(sp.style_layers)}:")
    line("stylize() loop (seconds_per_step: after step 0)", "stylize")
    line("stylize() whole call / steps (build, trace)", "stylize_call")
    line("bare compiled gradient + numpy Adam + clip, ditto", "stylize_bare")
    line("  for scale: a keras.optimizers.Adam update alone", "adam")
    ratio = med["stylize_bare"] / med["stylize"]
    print(f"  stylize loop / bare = {ratio:.3f}x   target >= 0.9 -> "
          f"{'met' if ratio >= 0.9 else 'NOT met'}")
    print(f"  (whole call / bare = {med['stylize_bare'] / med['stylize_call']:.3f}x; same loss at the "
          f"start: stage {stage_first:.6g}, bare {first_bare:.6g})")


def losses(args: argparse.Namespace) -> None:
    from pipeline.generative.style import stylize

    _, astronaut, painting = images()
    n, size = args.loss_iterations, args.loss_size
    style_name = STYLE.stem if STYLE.exists() else "coffee"
    print(f"style loss after {n} steps at {size}x{size} (astronaut in the style of {style_name}, "
          f"style_weight 1e5, from the content):")
    for optimizer in ("adam", "lbfgs"):
        start = time.perf_counter()
        _, record = stylize(astronaut, painting, stylize_params(size, n, optimizer))
        seconds = time.perf_counter() - start
        first, last = record["first"], record["last"]
        print(f"  {optimizer:<6} {record['iterations']:3d} steps: style {first['style']:.4g} -> "
              f"{last['style']:.4g} = {last['style'] / first['style']:.4f} of its start; content "
              f"0 -> {last['content']:.4g}; total {first['total']:.4g} -> {last['total']:.4g} "
              f"({seconds:.1f} s, {record['seconds_per_step'] * 1000:.0f} ms a step)")


CHILD = """
import os, re, resource, sys
os.environ['TF_CPP_MIN_LOG_LEVEL'] = '2'
sys.path.insert(0, {bench!r}); sys.path.insert(0, {root!r})
from reverse import dream_params, images, stylize_params
from pipeline.generative.dream import dream
from pipeline.generative.feature_net import feature_model
from pipeline.generative.style import stylize
which, size, steps = {which!r}, {size}, {steps}
chelsea, astronaut, painting = images()
def status(key):
    return int(re.search(key + r":\\s+(\\d+)", open('/proc/self/status').read()).group(1)) / 1024
before = status('VmRSS')
try:  # resets VmHWM (Linux): the peak of the run alone
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')
except OSError:
    pass
if which == 'dream':
    dream(chelsea, dream_params(size, steps, 8))
elif which == 'stylize':
    stylize(astronaut, painting, stylize_params(size, steps))
else:
    p = stylize_params(size, steps)
    feature_model(p.net, [p.content_layer, *p.style_layers])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, before, status('VmHWM'))
"""


def peak_rss_mb(which: str, size: int, steps: int) -> tuple[float, float, float]:
    """Peak resident memory (MiB, ``ru_maxrss``) of a fresh process running ``steps`` steps of
    ``which``, its RSS after the imports, and its peak during the run (``VmHWM`` after a
    reset; the whole process's peak where that cannot be reset)."""
    code = CHILD.format(bench=str(ROOT / "bench"), root=str(ROOT), which=which, size=size, steps=steps)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    peak, before, run = (float(v) for v in done.stdout.strip().splitlines()[-1].split())
    return peak, before, run


def memory(args: argparse.Namespace) -> None:
    base, imported, build = peak_rss_mb("model", 64, 1)
    print(f"peak RSS of a fresh process (ru_maxrss, MiB) running {args.memory_steps} steps; in "
          f"brackets the run's own peak above the {imported:.0f} MiB resident after the imports. "
          f"Importing alone peaks at {base:.0f} (a process that only builds the network; the build "
          f"adds +{build - imported:.0f}).")
    print(f"  {'size px':>8} {'dream':>14} {'stylize':>14}")
    for size in args.sizes:
        start = time.perf_counter()
        cells = []
        for which in ("dream", "stylize"):
            peak, before, run = peak_rss_mb(which, size, args.memory_steps)
            cells.append(f"{peak:.0f} (+{run - before:.0f})")
        print(f"  {size:>8} {cells[0]:>14} {cells[1]:>14}   ({time.perf_counter() - start:.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=128, help="Timing image side (px).")
    parser.add_argument("--iterations", type=int, default=10, help="Steps per timed run.")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--jitter", type=int, default=8, help="dream.jitter of the timed dream.")
    parser.add_argument("--loss-iterations", type=int, default=50)
    parser.add_argument("--loss-size", type=int, default=128)
    parser.add_argument("--sizes", type=int, nargs="+", default=(64, 128, 256, 512))
    parser.add_argument("--memory-steps", type=int, default=3)
    parser.add_argument("--no-memory", action="store_true", help="Skip the peak-memory table.")
    args = parser.parse_args()
    begin = time.perf_counter()
    timings(args)
    losses(args)
    if not args.no_memory:
        memory(args)
    print(f"({time.perf_counter() - begin:.0f} s in all)")


if __name__ == "__main__":
    main()
