"""The model zoo builds and trains a step; optimizers and schedules come from params and round-trip."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import keras
import numpy as np
import pytest

from pipeline.config import ArchParams, Params, TrainParams, validate
from pipeline.models import zoo as models
from pipeline.train.schedules import StepDecay, Warmup, learning_rate, make_optimizer
from tests.conftest import ROOT, venv_env

TINY = ArchParams(width=0.25, stages=[1, 1], filters=[8, 16, 32])
SHAPES = {"lenet": (28, 28, 1), "mnist_convnet": (28, 28, 1), "alexnet": (67, 67, 3)}


@pytest.mark.parametrize("name", sorted(models.ARCHITECTURES))
def test_every_model_builds_and_trains_one_step(name: str) -> None:
    shape = SHAPES.get(name, (32, 32, 3))
    model = models.build(name, shape, 7, TINY)
    model.compile("sgd", "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).random((4, *shape), dtype=np.float32)
    before = [w.copy() for w in model.get_weights()]
    loss = model.train_on_batch(x, np.arange(4) % 7)
    assert np.isfinite(loss)
    assert model.output_shape == (None, 7)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))


def test_published_sizes() -> None:
    assert models.build("mnist_convnet", (28, 28, 1), 10).count_params() == 34_826  # keras.io
    assert models.build("lenet", (28, 28, 1), 10).count_params() == 1_256_080


def test_knobs_change_the_model() -> None:
    plain = models.build("minivggnet", (32, 32, 3), 10, ArchParams())
    wide = models.build("minivggnet", (32, 32, 3), 10, ArchParams(width=2.0))
    assert wide.count_params() > 3 * plain.count_params()
    reg = models.build("lenet", (28, 28, 1), 10, ArchParams(l2=0.01, activation="elu"))
    assert len(reg.losses) == 4  # an L2 penalty per kernel: 2 convolutions, FC(500), softmax
    acts = {layer.activation.__name__ for layer in reg.layers
            if isinstance(layer, keras.layers.Activation)}
    assert acts == {"elu"}
    no_bn = models.build("minivggnet", (32, 32, 3), 10, ArchParams(batch_norm=False))
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in no_bn.layers)
    deep = models.build("resnet", (32, 32, 3), 10, ArchParams(stages=[2, 2, 2]))
    assert deep.count_params() > models.build("resnet", (32, 32, 3), 10,
                                              ArchParams(stages=[1, 1, 1])).count_params()


def test_resnet_filters_must_match_stages() -> None:
    with pytest.raises(Exception, match=r"filters needs len\(stages\) \+ 1 = 4 values, got 2"):
        ArchParams(stages=[1, 1, 1], filters=[8, 16])


@pytest.mark.parametrize("name,cls", [
    ("sgd", "SGD"), ("adagrad", "Adagrad"), ("rmsprop", "RMSprop"), ("adam", "Adam"),
    ("nadam", "Nadam"), ("adamw", "AdamW"),
])
def test_optimizers_by_name(name: str, cls: str) -> None:
    params = TrainParams(optimizer=name, lr=0.02, nesterov=True, weight_decay=0.01)
    opt = make_optimizer(params, steps_per_epoch=10)
    assert type(opt).__name__ == cls
    assert float(opt.learning_rate) == pytest.approx(0.02)
    if name == "sgd":
        assert opt.nesterov and opt.momentum == pytest.approx(0.9)
    if name == "adamw":
        assert opt.weight_decay == pytest.approx(0.01)


def rate(schedule, step: int) -> float:
    return float(keras.ops.convert_to_numpy(schedule(step)))


def test_step_decay_with_warmup() -> None:
    params = TrainParams(lr=0.1, epochs=30, schedule={"kind": "step", "factor": 0.5, "every": 10,
                                                       "warmup_epochs": 2})
    schedule = learning_rate(params, steps_per_epoch=5)
    assert rate(schedule, 0) == pytest.approx(0.01)       # warm-up: (0 + 1) / 10 of the peak
    assert rate(schedule, 9) == pytest.approx(0.1)
    assert rate(schedule, 10) == pytest.approx(0.1)
    assert rate(schedule, 49) == pytest.approx(0.1)
    assert rate(schedule, 50) == pytest.approx(0.05)      # epoch 10
    assert rate(schedule, 100) == pytest.approx(0.025)    # epoch 20


@pytest.mark.parametrize("kind", ["polynomial", "cosine"])
def test_decays_reach_end_lr(kind: str) -> None:
    params = TrainParams(lr=0.1, epochs=10, schedule={"kind": kind, "end_lr": 0.001})
    schedule = learning_rate(params, steps_per_epoch=4)
    assert rate(schedule, 0) == pytest.approx(0.1)
    assert 0.001 < rate(schedule, 20) < 0.1
    assert rate(schedule, 40) == pytest.approx(0.001, rel=1e-3)


def test_constant_with_warmup_then_flat() -> None:
    schedule = learning_rate(TrainParams(lr=0.2, schedule={"warmup_epochs": 1}), steps_per_epoch=4)
    assert [round(rate(schedule, s), 6) for s in (0, 3, 4, 100)] == [0.05, 0.2, 0.2, 0.2]
    assert learning_rate(TrainParams(lr=0.2, schedule={"kind": "constant"}), steps_per_epoch=4) == 0.2


def test_schedules_serialize_round_trip() -> None:
    for schedule in (StepDecay(0.1, 0.5, 20, 3),
                     Warmup(0.1, 5, keras.optimizers.schedules.CosineDecay(0.1, 50))):
        config = keras.optimizers.schedules.serialize(schedule)
        again = keras.optimizers.schedules.deserialize(config)
        assert [rate(again, s) for s in (0, 4, 25, 60)] == [rate(schedule, s) for s in (0, 4, 25, 60)]


def test_train_params_round_trip_through_yaml_dump() -> None:
    params = Params(train=TrainParams(optimizer="adamw", weight_decay=0.05,
                                      schedule={"kind": "cosine", "warmup_epochs": 2}))
    assert validate(params.model_dump(mode="json")) == params


BACKEND_STEP = """
import numpy as np, keras
from pipeline.models import zoo as models
m = models.build("lenet", (28, 28, 1), 3)
m.compile("sgd", "sparse_categorical_crossentropy")
print("LOSS", float(m.train_on_batch(np.zeros((2, 28, 28, 1), "float32"), np.array([0, 1]))))
print("BACKEND", keras.backend.backend())
"""


@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
def test_one_step_on_each_installed_backend(backend: str) -> None:
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    done = subprocess.run([sys.executable, "-c", BACKEND_STEP], cwd=ROOT,
                          env={**venv_env(), "KERAS_BACKEND": backend}, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"BACKEND {backend}" in done.stdout and "LOSS" in done.stdout
