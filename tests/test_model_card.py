"""The model card every training stage writes beside its model (``card.json``, ``MODEL_CARD.md``),
from a real one-epoch training run in this process."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.test_training import digits_data, run_in_process

pytestmark = pytest.mark.slow


def test_training_writes_a_card_beside_the_model(tmp_path: Path) -> None:
    digits_data(tmp_path / "data", 300, size=12)
    metrics = run_in_process(tmp_path, "run", model="shallownet", epochs=1)
    folder = tmp_path / "run" / "model"
    card = json.loads((folder / "card.json").read_text())
    train_file = tmp_path / "data" / "train.h5"
    assert card["data"] == {"path": str(train_file), "examples": 300,
                            "sha256": hashlib.sha256(train_file.read_bytes()).hexdigest()}
    assert card["model"]["stage"] == "train" and card["model"]["name"] == "shallownet"
    assert card["model"]["files"] == ["best.keras", "model.keras", "preprocess.json"]
    assert card["model"]["input_shape"] == [12, 12, 1] and card["model"]["output_shape"] == [10]
    assert card["params"]["train"]["model"] == "shallownet" and card["params"]["train"]["epochs"] == 1
    assert card["metrics"] == metrics
    assert card["input"]["size"] == [12, 12] and card["input"]["channels"] == 1
    assert card["input"]["preprocess"]["scale"] is True
    assert card["classes"] == [str(i) for i in range(10)]
    assert any("300 examples" in line for line in card["limits"])
    assert any("not calibrated" in line for line in card["limits"])
    text = (folder / "MODEL_CARD.md").read_text()
    for part in ("# Model card: shallownet", "## Data", card["data"]["sha256"], "## Input format",
                 "- size: [12, 12]", "## Classes", "## Metrics", "- val.accuracy: ", "## Params",
                 "  model: shallownet", "## Known limits"):
        assert part in text, part
