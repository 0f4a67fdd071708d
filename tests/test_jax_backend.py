"""The input-gradient path under JAX: ``pipeline.generative.gradients`` (``jax.value_and_grad``,
``jax.jit``) against central differences, a DeepDream octave and two style-transfer steps, run by
a subprocess with ``KERAS_BACKEND=jax`` (Keras fixes its backend when it is imported) and
TensorFlow hidden from it. MobileNet alpha 0.25 with random weights; skipped when JAX is not
importable (it comes with the ``dev`` dependency group)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, venv_env

#: Exit status of the script when ``import jax`` fails (its first argument).
NO_JAX = 77

SCRIPT = r"""
import json, sys
# TensorFlow hidden: the JAX path must not need it (keras.utils.set_random_seed would import it,
# seconds, to seed it too).
sys.modules["tensorflow"] = None
try:
    import jax
except ImportError as exc:
    print(f"jax is not importable: {exc}")
    sys.exit(int(sys.argv[1]))
import keras
import numpy as np

from pipeline.config.reverse import DreamParams, StylizeParams
from pipeline.generative.dream import dream
from pipeline.generative.gradients import compile_input_grad, value_and_input_grad
from pipeline.generative.style import stylize

out = {"backend": keras.backend.backend(), "jax": jax.__version__}

# A tiny conv model: the gradient against central differences along random directions.
keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, activation="tanh"),
                          keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(1)])
fn = lambda x: keras.ops.sum(keras.ops.square(model(x)))
rng = np.random.default_rng(0)
x = rng.uniform(-1.0, 1.0, (1, 8, 8, 3)).astype(np.float32)
value, grad = value_and_input_grad(fn, x)
compiled_value, compiled_grad = compile_input_grad(fn)(x)
f = lambda z: float(np.asarray(fn(z.astype(np.float32))))
h, pairs = 1e-2, []
for _ in range(4):
    d = rng.normal(size=x.shape)
    d /= np.linalg.norm(d)
    pairs.append([(f(x + h * d) - f(x - h * d)) / (2 * h), float(np.sum(grad * d))])
out.update(value=value, direct_value=f(x), compiled_value=compiled_value,
           grad_shape=list(grad.shape), compiled_gap=float(np.abs(compiled_grad - grad).max()),
           grad_scale=float(np.abs(grad).max()), directional=pairs)

# One DeepDream octave of two steps on a 48-pixel image. Layers of the first blocks: the network
# is cut after them, so XLA compiles a small graph.
LAYERS = {"conv_pw_2_relu": 1.0, "conv_pw_3_relu": 1.0}
image = (rng.uniform(0, 255, (12, 12, 3))).astype(np.uint8).repeat(4, 0).repeat(4, 1)
losses = []
dreamed = dream(image, DreamParams(layers=LAYERS, max_side=48, octaves=1, iterations=2, jitter=0),
                lambda octave, step, loss, shown: losses.append(loss))
out.update(dream_losses=losses, dream_shape=list(dreamed.shape),
           dream_change=float(np.abs(dreamed.astype(float) - image).mean()))

# Two Adam steps of style transfer.
content = rng.uniform(0, 255, (40, 40, 3)).astype(np.uint8)
style = np.tile(np.array([[0, 255], [255, 0]], np.uint8)[..., None], (20, 20, 3))
result, record = stylize(content, style, StylizeParams(
    image_size=(40, 40), iterations=2, content_layer="conv_pw_3_relu", style_layers=LAYERS))
out.update(style_totals=[step["total"] for step in record["steps"]],
           style_shape=list(result.shape), tensorflow=sys.modules.get("tensorflow") is not None)
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def under_jax() -> dict:
    """What the script measured under the JAX backend."""
    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed (uv sync --group dev)")
    # XLA's CPU backend without LLVM optimisation: the same numbers, but the ~24 small programs
    # that draw MobileNet's random weights (one per weight shape) compile in a fifth of the time.
    env = {**venv_env(), "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": "--xla_backend_optimization_level=0"}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(NO_JAX)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    if done.returncode == NO_JAX:
        pytest.skip(done.stdout.strip())
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_it_ran_under_jax_without_tensorflow(under_jax: dict) -> None:
    assert under_jax["backend"] == "jax" and not under_jax["tensorflow"]


def test_value_and_input_grad_match_central_differences(under_jax: dict) -> None:
    assert under_jax["value"] == pytest.approx(under_jax["direct_value"], rel=1e-5)
    assert under_jax["compiled_value"] == pytest.approx(under_jax["value"], rel=1e-5)
    assert under_jax["grad_shape"] == [1, 8, 8, 3] and under_jax["grad_scale"] > 0
    assert under_jax["compiled_gap"] <= 1e-5 * under_jax["grad_scale"]
    for numeric, analytic in under_jax["directional"]:
        assert analytic == pytest.approx(numeric, rel=2e-2, abs=1e-3 * under_jax["grad_scale"])


def test_a_deepdream_octave_raises_the_loss(under_jax: dict) -> None:
    first, second = under_jax["dream_losses"]
    assert second > first > 0
    assert under_jax["dream_shape"] == [48, 48, 3] and under_jax["dream_change"] > 0.5


def test_two_stylize_steps_lower_the_loss(under_jax: dict) -> None:
    totals = under_jax["style_totals"]
    assert len(totals) == 3 and totals[-1] < totals[0]
    assert under_jax["style_shape"] == [40, 40, 3]
