"""What a stage prints is for people: no TensorFlow/absl start-up log, one line per epoch with
images per second, progress bars on long loops (on a terminal, or with CVPIPE_PROGRESS=1)."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline.io.hdf5 import write_arrays
from pipeline.io.progress import progress
from pipeline.train.callbacks import epoch_line
from tests.conftest import ROOT, venv_env

#: A line of TensorFlow's native (absl) log, or absl's warning before its first line.
NATIVE = re.compile(r"^([IWEF]\d{4} |WARNING: All log messages before absl)", re.MULTILINE)


def test_the_epoch_line_reads_loss_first_then_validation_then_rate_and_speed() -> None:
    logs = {"accuracy": 0.94494, "loss": 0.16051, "val_accuracy": 0.97794, "val_loss": 0.0996,
            "learning_rate": 0.05}
    assert epoch_line(3, 8, logs, 0.05, 5000, 4.0, 4.1) == (
        "epoch 3/8  loss 0.1605  accuracy 0.9449  val_loss 0.0996  val_accuracy 0.9779  "
        "lr 0.05  1,250 img/s  4.1 s")
    assert epoch_line(1, 2, {"g_loss": 1.0}, None, None, 1.0, 1.26) == "epoch 1/2  g_loss 1.0000  1.3 s"


def test_a_bar_is_drawn_only_where_someone_watches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CVPIPE_PROGRESS", raising=False)
    quiet = io.StringIO()  # not a terminal: no bar (DVC logs, CI)
    assert list(progress(range(3), desc="items", file=quiet)) == [0, 1, 2]
    assert quiet.getvalue() == ""
    monkeypatch.setenv("CVPIPE_PROGRESS", "1")
    shown = io.StringIO()
    assert list(progress(range(3), desc="items", file=shown)) == [0, 1, 2]
    assert "items: 100%" in shown.getvalue() and "3/3" in shown.getvalue()


FILTERED = r"""
import os, sys
from pipeline.io.native_log import filter_native_log
assert filter_native_log()
for line in [
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
    b"I0000 00:00:1796160800.967782   10339 port.cc:153] oneDNN custom operations are on.\n",
    b"W0000 00:00:1796160800.967782   10339 some.cc:1] chatter\n",
    b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n",
    b"E0000 00:00:1796160805.365904   10339 node_def_util.cc:682] NodeDef mentions attribute "
    b"use_unbounded_threadpool which is not in the op definition: Op<name=MapDataset>\n",
    b"E0000 00:00:1796160805.365904   10339 meta_optimizer.cc:967] remapper failed: INVALID\n",
    b"E0000 00:00:1796160805.365904   10339 other.cc:1] a real native error\n",
    b"\rbar:  50%|#####     | 1/2",
]:
    os.write(2, line)
print("error: one of ours", file=sys.stderr, flush=True)
os.write(2, b"F0000 00:00:1796160805.365904   10339 fatal.cc:9] Check failed: x\n")
os.abort()
"""


def test_the_filter_drops_known_noise_and_keeps_the_rest_even_on_a_crash(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", FILTERED], cwd=tmp_path, capture_output=True,
                          env={**venv_env(), "PYTHONPATH": str(ROOT)}, timeout=60)
    assert done.returncode != 0  # aborted
    err = done.stderr.decode()
    assert "absl::InitializeLog" not in err and "oneDNN" not in err and "chatter" not in err
    assert "use_unbounded_threadpool" not in err and "remapper" not in err and "XNNPACK" not in err
    assert "other.cc:1] a real native error" in err  # an unknown native error is shown
    assert "\rbar:  50%|#####     | 1/2" in err  # a partial line (a bar's frame) passes
    assert err.rstrip().endswith(  # what a crashing process wrote last still arrives
        "error: one of ours\nF0000 00:00:1796160805.365904   10339 fatal.cc:9] Check failed: x")


def tiny_digits(folder: Path) -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.rint(digits.images * (255 / 16)).astype(np.uint8)[..., None]
    classes = [str(i) for i in range(10)]
    for name, part in (("train", slice(0, 600)), ("val", slice(600, 700)),
                       ("test", slice(700, 800))):
        write_arrays(folder / f"{name}.h5", images[part], digits.target[part], classes)


@pytest.mark.slow
def test_a_training_stage_prints_one_line_per_epoch_and_no_backend_log(tmp_path: Path) -> None:
    tiny_digits(tmp_path / "data")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"].update(model="shallownet", epochs=3, batch_size=64)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**venv_env(), "PYTHONPATH": str(ROOT)}
    env.pop("CVPIPE_DEBUG", None)
    env.pop("CVPIPE_PROGRESS", None)
    done = subprocess.run(
        [sys.executable, "-m", "stages.train", "--params", "params.yaml", "--data", "data",
         "--out", "model", "--live", "live", "--checkpoint", "ckpt"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert not NATIVE.search(done.stdout) and not NATIVE.search(done.stderr), done.stderr
    assert done.stderr == ""  # nothing else either: no bar off a terminal, no Keras chatter
    epochs = [line for line in done.stdout.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in epochs] == ["1/3", "2/3", "3/3"], done.stdout
    assert all(re.search(r"  loss \d\.\d{4}  .*  val_loss .*  lr \S+  [\d,]+ img/s  "
                         r"\d+\.\d s$", line) for line in epochs), epochs
    assert "ms/step" not in done.stdout and "Epoch 1/3" not in done.stdout

    # Evaluation's loops (predictions, oversampled views) draw bars, here forced on.
    evaluate = subprocess.run(
        [sys.executable, "-m", "stages.evaluate", "--params", "params.yaml", "--model", "model",
         "--data", "data", "--images", "data", "--out", "evaluation"],
        cwd=tmp_path, env={**env, "CVPIPE_PROGRESS": "1"}, capture_output=True, text=True,
        timeout=300)
    assert evaluate.returncode == 0, evaluate.stderr
    assert not NATIVE.search(evaluate.stderr), evaluate.stderr
    assert "predict test: 100%" in evaluate.stderr and "100/100" in evaluate.stderr
    assert "oversample" in evaluate.stderr


HIDDEN = r"""
import sys
from stages.common import quiet_backend
quiet_backend()
import keras
assert "sklearn" not in sys.modules, "Keras imported scikit-learn"
assert type(keras.__spec__.loader).__name__ != "KerasWithoutScikitLearn"
assert not any(type(f).__name__ == "KerasWithoutScikitLearn" for f in sys.meta_path)
from sklearn.metrics import accuracy_score  # importable as ever once Keras is in
print(accuracy_score([0, 1], [0, 1]), keras.layers.Dense(2).units)
"""


def test_keras_starts_without_scikit_learn_which_stays_importable(tmp_path: Path) -> None:
    """quiet_backend hides scikit-learn from ``import keras`` (its wrappers would import it),
    and only then: afterwards it imports as usual."""
    done = subprocess.run([sys.executable, "-c", HIDDEN], cwd=tmp_path, capture_output=True,
                          text=True, env={**venv_env(), "PYTHONPATH": str(ROOT)}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1.0", "2"]
