"""Model, optimizer and precision knobs of train (and finetune's phases): each one builds and
trains, reaches Keras, and bad combinations exit 2 naming the dotted key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from pipeline.config import ArchParams, ParamsError, PhaseParams, TrainParams, validate
from tests.conftest import ROOT, invoke_training_stage
from tests.test_training import digits_data, run_in_process

keras = pytest.importorskip("keras")


@pytest.fixture(autouse=True)
def float32_after() -> Iterator[None]:
    """Every test leaves Keras's global dtype policy as it found it (float32)."""
    yield
    keras.config.set_dtype_policy("float32")


def shipped() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def errors_with(section: str, **values) -> list[str]:
    data = shipped()
    data[section].update(values)
    with pytest.raises(ParamsError) as info:
        validate(data)
    return info.value.lines


def one_step(model, x: np.ndarray, y: np.ndarray, optimizer=None) -> float:
    model.compile(optimizer or keras.optimizers.SGD(0.01), "sparse_categorical_crossentropy",
                  jit_compile=False)
    return float(model.train_on_batch(x, y))


def tiny_batch(n: int = 8, size: int = 12) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.random((n, size, size, 1), dtype=np.float32), rng.integers(0, 3, n)


def test_activations_and_initializers_build_and_train() -> None:
    from pipeline.models import zoo
    from pipeline.models.blocks import Maxout

    x, y = tiny_batch()
    cases = {
        "sigmoid": ArchParams(width=0.25, activation="sigmoid", initializer="lecun_uniform"),
        "leaky": ArchParams(width=0.25, activation="leaky_relu", leaky_slope=0.05),
        "elu": ArchParams(width=0.25, activation="elu", elu_alpha=0.5),
        "maxout": ArchParams(width=0.25, activation="maxout", maxout_pieces=3),
    }
    built = {name: zoo.build("lenet", (12, 12, 1), 3, arch) for name, arch in cases.items()}
    for name, model in built.items():
        assert np.isfinite(one_step(model, x, y)), name
    kinds = {name: [layer for layer in model.layers
                    if isinstance(layer, keras.layers.Activation | keras.layers.LeakyReLU
                                  | keras.layers.ELU | Maxout)]
             for name, model in built.items()}
    assert {layer.activation.__name__ for layer in kinds["sigmoid"]} == {"sigmoid"}
    assert {layer.negative_slope for layer in kinds["leaky"]} == {0.05}
    assert {layer.alpha for layer in kinds["elu"]} == {0.5}
    assert [layer.pieces for layer in kinds["maxout"]] == [3, 3, 3]  # two convolutions, FC
    convs = [layer for layer in built["sigmoid"].layers if isinstance(layer, keras.layers.Conv2D)]
    assert type(convs[0].kernel_initializer).__name__ == "LecunUniform"
    # maxout's layers compute three pieces per unit; the units after it are as many as before
    plain = zoo.build("lenet", (12, 12, 1), 3, ArchParams(width=0.25))
    widths = [[layer.units if hasattr(layer, "units") else layer.filters for layer in m.layers
               if isinstance(layer, keras.layers.Conv2D | keras.layers.Dense)]
              for m in (plain, built["maxout"])]
    assert widths[1][:-1] == [3 * w for w in widths[0][:-1]] and widths[1][-1] == 3


def test_maxout_layer(tmp_path: Path) -> None:
    from pipeline.models.blocks import Maxout

    x = np.arange(2 * 3 * 3 * 12, dtype=np.float32).reshape(2, 3, 3, 12) % 7
    out = keras.ops.convert_to_numpy(Maxout(3)(x))
    assert out.shape == (2, 3, 3, 4)
    np.testing.assert_array_equal(out, x.reshape(2, 3, 3, 4, 3).max(-1))
    assert Maxout(2).compute_output_shape((None, 10)) == (None, 5)
    with pytest.raises(ValueError, match="10 channels are not a multiple of 3 pieces"):
        Maxout(3)(np.zeros((1, 10), np.float32))
    inputs = keras.Input((6,))
    model = keras.Model(inputs, Maxout(2)(keras.layers.Dense(4)(inputs)))
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras", compile=False)
    batch = np.ones((2, 6), np.float32)
    np.testing.assert_allclose(again.predict_on_batch(batch), model.predict_on_batch(batch))


def test_optimizer_knobs_reach_keras() -> None:
    from pipeline.train.schedules import make_optimizer

    plain = make_optimizer(TrainParams(), 10)
    assert (plain.clipnorm, plain.clipvalue, plain.use_ema,
            plain.gradient_accumulation_steps) == (None, None, False, None)
    opt = make_optimizer(TrainParams(optimizer="adadelta", clipnorm=1.5, ema=True,
                                     ema_momentum=0.9, accumulate_steps=4), 10)
    assert isinstance(opt, keras.optimizers.Adadelta)
    assert (opt.clipnorm, opt.use_ema, opt.ema_momentum, opt.gradient_accumulation_steps) == (
        1.5, True, 0.9, 4)
    phase = make_optimizer(PhaseParams(optimizer="sgd", clipvalue=0.25), 10)
    assert isinstance(phase, keras.optimizers.SGD) and phase.clipvalue == 0.25


def test_clipping_and_accumulation_change_the_updates() -> None:
    """clipvalue bounds each weight's step by lr * v; with accumulate_steps 2 the weights move
    every second batch, by the mean of the two gradients."""
    from pipeline.train.schedules import make_optimizer

    def linear():
        keras.utils.set_random_seed(0)
        inputs = keras.Input((4,))
        return keras.Model(inputs, keras.layers.Dense(1, use_bias=False)(inputs))

    x, y = np.full((4, 4), 100.0, np.float32), np.zeros((4, 1), np.float32)
    clipped = linear()
    before = clipped.get_weights()[0]
    clipped.compile(make_optimizer(TrainParams(optimizer="sgd", momentum=0.0, lr=1.0,
                                               clipvalue=0.01), 10), "mse", jit_compile=False)
    clipped.train_on_batch(x, y)
    np.testing.assert_allclose(np.abs(clipped.get_weights()[0] - before), 0.01, rtol=1e-5)

    model = linear()
    start = model.get_weights()[0]
    model.compile(make_optimizer(TrainParams(optimizer="sgd", momentum=0.0, lr=1e-6,
                                             accumulate_steps=2), 10), "mse", jit_compile=False)
    model.train_on_batch(x, y)
    np.testing.assert_array_equal(model.get_weights()[0], start)
    model.train_on_batch(x, y)
    assert not np.allclose(model.get_weights()[0], start)


@pytest.mark.slow
def test_ema_is_what_train_saves_and_bfloat16_trains_saves_and_evaluates(tmp_path: Path) -> None:
    from pipeline.evaluate.evaluation import evaluate_model
    from tests.test_training import final_weights

    digits_data(tmp_path / "data", 256, size=12)
    run = {"model": "shallownet", "epochs": 1, "batch_size": 32, "jit_compile": "false"}
    run_in_process(tmp_path, "plain", **run)
    run_in_process(tmp_path, "ema", ema=True, ema_momentum=0.5, **run)
    plain, ema = final_weights(tmp_path / "plain" / "model"), final_weights(tmp_path / "ema" / "model")
    assert any(not np.allclose(a, b) for a, b in zip(plain, ema, strict=True))

    metrics = run_in_process(tmp_path, "bf16", mixed_precision="bfloat16", **run)
    assert np.isfinite(metrics["train"]["loss"])
    keras.config.set_dtype_policy("float32")  # a fresh evaluate process: the saved layers say
    model = keras.models.load_model(tmp_path / "bf16" / "model" / "model.keras", compile=False)
    assert model.layers[1].dtype_policy.name == "mixed_bfloat16"
    assert model.get_layer("predictions").dtype_policy.name == "float32"
    scored = evaluate_model(tmp_path / "bf16" / "model", tmp_path / "data" / "val.h5", 64)
    assert 0.0 <= scored["metrics"]["rank1"] <= 1.0


def test_mixed_policies_keep_float32_variables_and_softmax() -> None:
    from pipeline.models import zoo
    from pipeline.train.lifecycle import configure_backend

    x, y = tiny_batch()
    for precision, compute in (("bfloat16", "bfloat16"), ("float16", "float16")):
        configure_backend(0, deterministic=False, mixed_precision=precision)
        model = zoo.build("lenet", (12, 12, 1), 3, ArchParams(width=0.25))
        hidden = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
        assert {layer.compute_dtype for layer in hidden} == {compute}
        assert {w.dtype for w in model.weights} == {"float32"}
        assert keras.ops.convert_to_numpy(model(x)).dtype == np.float32
        assert np.isfinite(one_step(model, x, y))
    configure_backend(0, deterministic=False)
    assert keras.config.dtype_policy().name == "float32"


def test_bad_combinations_name_the_key() -> None:
    assert errors_with("train", clipnorm=1.0, clipvalue=0.5) == [
        "train.clipvalue: set clipnorm or clipvalue, not both (clipnorm is 1.0), got 0.5"]
    assert errors_with("detect_train", model="resnet", arch={"activation": "maxout"})[0].startswith(
        "detect_train.arch: activation maxout needs the layer before each activation")
    assert errors_with("train", ema=True, early_stopping={"enabled": True})[0].startswith(
        "train.early_stopping: restore_best would put an epoch's raw weights back")
    assert errors_with("train", mixed_precision="fp8") == [
        "train.mixed_precision: Input should be 'none', 'float16' or 'bfloat16', got 'fp8'"]
    data = shipped()
    data["finetune"]["unfreeze"].update(clipnorm=2.0, clipvalue=1.0)
    data["train"].update(accumulate_steps=0)
    with pytest.raises(ParamsError) as info:
        validate(data)
    assert [line.split(":")[0] for line in info.value.lines] == [
        "train.accumulate_steps", "finetune.unfreeze.clipvalue"]
    data = shipped()
    data["train"]["mixed_precision"] = True  # an old params file
    assert validate(data).train.mixed_precision == "float16"
    assert validate(shipped()).train.mixed_precision == "none"


def test_accumulating_past_the_run_is_a_params_error(tmp_path: Path) -> None:
    from pipeline.train.schedules import make_optimizer
    from stages.cli import main

    with pytest.raises(ParamsError, match=r"^train\.accumulate_steps: 50 batches per update, "
                       r"but the run has 40 \(4 epochs of 10\)"):
        make_optimizer(TrainParams(epochs=4, accumulate_steps=50), 10)
    bad = tmp_path / "bad.yaml"
    data = shipped()
    data["train"].update(clipnorm=1.0, clipvalue=1.0)
    bad.write_text(yaml.safe_dump(data))
    done = CliRunner().invoke(main, ["params", "check", str(bad)])
    assert done.exit_code == 2
    assert "train.clipvalue: set clipnorm or clipvalue, not both" in done.output


def test_detect_train_names_its_own_section_in_errors(tmp_path: Path) -> None:
    """``detect_train`` trains through ``train()``; its errors name ``detect_train.*``."""
    from stages.detect_train import cli
    from tests.test_training import digits_data

    digits_data(tmp_path / "windows", 64, size=16)
    data = shipped()
    data["detect_train"].update(model="shallownet", epochs=1, batch_size=32, accumulate_steps=50)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data))
    done = invoke_training_stage(cli, tmp_path / "params.yaml", tmp_path / "windows", tmp_path)
    assert done.exit_code == 2, done.output
    assert "detect_train.accumulate_steps: 50 batches per update, but the run has 2" in done.output
    assert not (tmp_path / "model" / "model.keras").exists()
