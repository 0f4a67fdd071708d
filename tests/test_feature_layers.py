"""Backbone layers by name: features pooled from any layer (``extract_features.layer``), and
unknown names for it and for ``finetune.unfreeze_from`` refused with exit 2, listing valid ones.
A randomly initialised MobileNet α=0.25 at 32×32, in this process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pipeline.config import ParamsError
from pipeline.io.hdf5 import write_arrays
from pipeline.models import backbones
from tests.conftest import shipped_params_with

LAYER = "conv_pw_6_relu"


@pytest.fixture(scope="module")
def body():
    return backbones.build("mobilenet", "none", (32, 32), 0.25)


def tiny_splits(folder: Path, count: int = 8) -> Path:
    """train/val/test.h5 of ``count`` random grey 32×32 images in two classes."""
    rng = np.random.default_rng(0)
    for name in ("train", "val", "test"):
        write_arrays(folder / f"{name}.h5", rng.integers(0, 256, (count, 32, 32, 1), np.uint8),
                     np.arange(count) % 2, ["a", "b"])
    return folder


def test_a_named_layer_is_pooled_instead_of_the_last(body) -> None:
    from pipeline.transfer.features import feature_model
    from pipeline.transfer.layers import feature_layers

    names = feature_layers(body)
    assert LAYER in names and names[-1] == body.layers[-1].name and "input_layer" not in names
    batch = np.random.default_rng(1).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    inner = body.get_layer(LAYER).output.shape
    for pooling, width in (("avg", inner[-1]), ("flatten", int(np.prod(inner[1:])))):
        rows = np.asarray(feature_model(body, pooling, LAYER).predict_on_batch(batch))
        assert rows.shape == (2, width)
    assert feature_model(body, "avg").output_shape[-1] == body.output_shape[-1] != inner[-1]


def test_an_unknown_feature_layer_names_the_key_and_the_valid_layers(body) -> None:
    from pipeline.transfer.features import feature_model

    with pytest.raises(ParamsError) as caught:
        feature_model(body, "avg", "conv_pw_66_relu")
    message = caught.value.lines[0]
    assert message.startswith("extract_features.layer: ") and "'conv_pw_66_relu'" in message
    assert "did you mean conv_pw_6_relu" in message  # the closest names first
    assert "conv1, " in message and "conv_pw_13_relu" in message and "in all)" in message
    assert len(message) < 600  # abbreviated, not all 85 names


def test_the_stage_exits_2_on_an_unknown_layer(tmp_path: Path) -> None:
    from stages.extract_features import cli

    params = shipped_params_with(tmp_path, extract_features={"layer": "no_such_layer"})
    (tmp_path / "data").mkdir()
    done = CliRunner().invoke(cli, ["--params", str(params), "--data", str(tmp_path / "data"),
                                    "--out", str(tmp_path / "features")])
    assert done.exit_code == 2, done.output
    assert "extract_features.layer: " in done.output and "conv_pw_13_relu" in done.output
    assert not (tmp_path / "features").exists()


def test_unfreeze_from_is_checked_before_the_warm_up_and_lists_the_layers(tmp_path: Path,
                                                                         body) -> None:
    from pipeline.config import FinetuneParams
    from pipeline.transfer.finetune import unfreeze
    from stages.finetune import cli

    with pytest.raises(ParamsError, match=r"^finetune.unfreeze_from: .*'conv_pw_99'"):
        unfreeze(body, FinetuneParams(unfreeze_from="conv_pw_99"))
    assert unfreeze(body, FinetuneParams(unfreeze_from="conv_pw_13")) == 1  # BN stays frozen
    params = shipped_params_with(tmp_path, finetune={"unfreeze_from": "conv_pw_13_rleu"})
    done = CliRunner().invoke(cli, [
        "--params", str(params), "--data", str(tiny_splits(tmp_path / "data")),
        "--out", str(tmp_path / "model"), "--live", str(tmp_path / "live"),
        "--checkpoint", str(tmp_path / "checkpoint")])
    assert done.exit_code == 2, done.output
    assert "finetune.unfreeze_from: " in done.output and "did you mean conv_pw_13_relu" in done.output
    assert "warm-up" not in done.output and not (tmp_path / "model").exists()
