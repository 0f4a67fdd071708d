"""Data-parallel training (``train.distribution``) against one device with the same global batch.

A tiny LeNet on 512 scikit-learn digits, 2 epochs, no augmentation, same seed. Each backend fixes
its devices when it starts, so the runs are subprocesses, as few as can be: one TensorFlow process
with two logical CPUs (one device, ``mirrored``, and a ``mirrored`` run interrupted after its
first epoch and resumed), two ``multi_worker`` processes on localhost ports, and one JAX process
with two forced host devices (one device, ``data_parallel``, and ``data_parallel`` interrupted and
resumed), then two JAX processes joined by
``keras.distribution.initialize``. The bad-input checks run here.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.config import ParamsError
from pipeline.io.errors import InputError
from pipeline.train import distribute
from tests.conftest import ROOT, invoke_training_stage, venv_env
from tests.test_training import NO_AUGMENT, digits_data

#: Val accuracy and loss of a distributed run may differ from one device's by this much: the
#: batches hold the same images, only the order in which gradients are summed differs.
ACCURACY_TOLERANCE = 0.02
LOSS_TOLERANCE = 0.02

#: Trains each ``<tag>.yaml`` in the work folder into ``<tag>/``; ``--devices 2`` first splits
#: the CPU into two logical devices (before TensorFlow starts). A tag ending in ``-killed`` is
#: interrupted once its first epoch is backed up and then run again: it resumes (or, with
#: ``STOP_AT_INTERRUPT`` set, the process ends there and one started with ``RESUME_ONLY`` resumes).
SCRIPT = r"""
import json, os, sys
from pathlib import Path

work, devices, tags = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
if os.environ.get("KERAS_BACKEND") == "jax":
    sys.modules["tensorflow"] = None  # the JAX path must not need it
    try:
        import jax
    except ImportError as exc:
        print(f"jax is not importable: {exc}")
        sys.exit(77)
elif devices > 1:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
import keras

from pipeline.config import load_params
from pipeline.train.training import train


backed_up = keras.callbacks.BackupAndRestore.on_epoch_end


def interrupted_once_backed_up(self, epoch, logs=None):
    # The first epoch's backup written, the run stops as if killed: at once, not racing the
    # second epoch as a timer would on a loaded machine.
    backed_up(self, epoch, logs)
    raise KeyboardInterrupt


for tag in tags:
    params = load_params(work / f"{tag}.yaml")
    folders = [work / tag / name for name in ("model", "live", "ckpt")]
    if tag.endswith("-killed") and not os.environ.get("RESUME_ONLY"):
        keras.callbacks.BackupAndRestore.on_epoch_end = interrupted_once_backed_up
        try:
            keras.backend.clear_session()  # layer names as a fresh process numbers them
            train(params, work / "data", *folders)
            print(f"{tag}: finished before the interrupt")
        except KeyboardInterrupt:
            print(f"{tag}: interrupted")
            if os.environ.get("STOP_AT_INTERRUPT"):  # the process ends; a new one resumes
                continue
        keras.callbacks.BackupAndRestore.on_epoch_end = backed_up
    keras.backend.clear_session()
    train(params, work / "data", *folders)
    keras.distribution.set_distribution(None) if keras.backend.backend() == "jax" else None
"""


def write_params(work: Path, tag: str, **train) -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"].update({"model": "lenet", "batch_size": 64, "lr": 0.02, "epochs": 2,
                            "augment": NO_AUGMENT, "schedule": {"kind": "constant"}, **train})
    (work / f"{tag}.yaml").write_text(yaml.safe_dump(params))


def launch(work: Path, devices: int, *tags: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(work), str(devices), *tags], cwd=work,
        env={**venv_env(), "PYTHONPATH": str(ROOT), "KERAS_BACKEND": "tensorflow", **env},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen, timeout: float = 300) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-4000:]
    return out


def metrics(work: Path, tag: str) -> dict:
    return json.loads((work / tag / "live" / "metrics.json").read_text())


def assert_close(got: dict, reference: dict) -> None:
    assert abs(got["val"]["accuracy"] - reference["val"]["accuracy"]) <= ACCURACY_TOLERANCE
    assert abs(got["val"]["loss"] - reference["val"]["loss"]) <= LOSS_TOLERANCE


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One TensorFlow process over two logical CPUs: a one-device run, a mirrored run, and a
    mirrored run interrupted after its first epoch and resumed."""
    work = tmp_path_factory.mktemp("distribution")
    digits_data(work / "data", 512)
    write_params(work, "one")
    write_params(work, "mirrored", distribution="mirrored")
    write_params(work, "mirrored-killed", distribution="mirrored")
    return work, finish(launch(work, 2, "one", "mirrored", "mirrored-killed"))


@pytest.mark.slow
def test_mirrored_over_two_cpus_matches_one_device(local: tuple[Path, str]) -> None:
    work, out = local
    assert "mirrored over 2 replicas" in out
    reference, mirrored = metrics(work, "one"), metrics(work, "mirrored")
    assert "replicas" not in reference and mirrored["replicas"] == 2
    assert_close(mirrored, reference)
    assert (work / "mirrored" / "model" / "model.keras").exists()


@pytest.mark.slow
def test_mirrored_resumes_after_an_interrupt(local: tuple[Path, str]) -> None:
    work, out = local
    assert "mirrored-killed: interrupted" in out
    assert "resuming an interrupted run from epoch 2" in out
    resumed, straight = metrics(work, "mirrored-killed"), metrics(work, "mirrored")
    assert resumed["step"] == straight["step"] == 1
    assert resumed["val"]["loss"] == pytest.approx(straight["val"]["loss"], abs=1e-4)


@pytest.mark.slow
def test_two_workers_on_localhost_match_one_device_and_resume_together(local: tuple[Path, str]) -> None:
    work, _ = local
    cluster = distribute.localhost_cluster(2)
    write_params(work, "workers", distribution="multi_worker")
    write_params(work, "workers-killed", distribution="multi_worker")

    def workers(tag: str, **env: str) -> list[str]:
        # one MultiWorkerMirroredStrategy per process: made again in the same process it can
        # lose the other worker's heartbeat
        procs = [launch(work, 1, tag, **env, TF_CONFIG=json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": i}})) for i in range(2)]
        return [finish(proc) for proc in procs]

    outs = workers("workers")
    assert "(chief)" in outs[0] and "is not the chief" in outs[1]
    assert (work / "workers" / "model" / "model.keras").exists()  # the chief's
    scratch = outs[1].split("outputs go to ")[1].split()[0]
    assert not Path(scratch).exists()  # the other worker's, deleted
    got = metrics(work, "workers")
    assert got["replicas"] == 2
    assert_close(got, metrics(work, "one"))
    # Both workers stop after the first epoch; started again, the other worker starts from a
    # copy of the chief's checkpoint folder, and both resume from epoch 2.
    assert all("workers-killed: interrupted" in out
               for out in workers("workers-killed", STOP_AT_INTERRUPT="1"))
    again = workers("workers-killed", RESUME_ONLY="1")
    assert all("resuming an interrupted run from epoch 2" in out for out in again), again
    assert "starts from a copy of the chief's" in again[1]
    resumed = metrics(work, "workers-killed")
    assert resumed["step"] == got["step"] == 1
    assert resumed["val"]["loss"] == pytest.approx(got["val"]["loss"], abs=1e-4)


@pytest.mark.slow
def test_jax_data_parallel_over_two_host_devices_and_two_processes(tmp_path: Path) -> None:
    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed (it comes with the dev dependency group)")
    digits_data(tmp_path / "data", 512)
    write_params(tmp_path, "one")
    write_params(tmp_path, "parallel", distribution="data_parallel")
    write_params(tmp_path, "parallel-killed", distribution="data_parallel")
    proc = launch(tmp_path, 2, "one", "parallel", "parallel-killed", KERAS_BACKEND="jax",
                  XLA_FLAGS="--xla_force_host_platform_device_count=2")
    out, _ = proc.communicate(timeout=300)
    if proc.returncode == 77:
        pytest.skip(out.strip())
    assert proc.returncode == 0, out[-4000:]
    assert "data_parallel over 2 replicas" in out
    got = metrics(tmp_path, "parallel")
    assert got["replicas"] == 2
    assert_close(got, metrics(tmp_path, "one"))
    assert "parallel-killed: interrupted" in out
    assert "resuming an interrupted run from epoch 2" in out
    resumed = metrics(tmp_path, "parallel-killed")
    assert resumed["step"] == got["step"] == 1
    assert resumed["val"]["loss"] == pytest.approx(got["val"]["loss"], abs=1e-4)
    # Several hosts: two processes on localhost, one CPU device each, joined by
    # keras.distribution.initialize (jax.distributed, Gloo's collectives on CPU).
    write_params(tmp_path, "hosts", distribution="data_parallel")
    coordinator = distribute.localhost_cluster(1)["worker"][0]
    procs = [launch(tmp_path, 1, "hosts", KERAS_BACKEND="jax",
                    KERAS_DISTRIBUTION_JOB_ADDRESSES=coordinator,
                    KERAS_DISTRIBUTION_NUM_PROCESSES="2", KERAS_DISTRIBUTION_PROCESS_ID=str(i),
                    JAX_CPU_COLLECTIVES_IMPLEMENTATION="gloo") for i in range(2)]
    outs = [finish(proc) for proc in procs]
    assert "in 2 worker(s), this one 0 (chief)" in outs[0] and "is not the chief" in outs[1]
    hosts = metrics(tmp_path, "hosts")
    assert hosts["replicas"] == 2
    assert_close(hosts, metrics(tmp_path, "one"))
    assert (tmp_path / "hosts" / "model" / "model.keras").exists()


@pytest.mark.parametrize(("kind", "section", "backend", "says"), [
    ("mirrored", "train", "jax", "train.distribution: mirrored runs on the tensorflow backend"),
    ("multi_worker", "finetune", "jax", "finetune.distribution: multi_worker runs on the "
     "tensorflow"),
    ("data_parallel", "train", "tensorflow", "train.distribution: data_parallel runs on the jax"),
])
def test_a_strategy_the_backend_lacks_names_the_key(kind: str, section: str, backend: str,
                                                     says: str) -> None:
    with pytest.raises(ParamsError) as caught:
        distribute.setup(kind, section, 64, backend=backend)
    assert caught.value.lines[0].startswith(says)


@pytest.mark.parametrize(("value", "says"), [
    (None, "TF_CONFIG: not set"),
    ("{cluster: 1", "TF_CONFIG: not valid JSON"),
    ("[1, 2]", "TF_CONFIG: a JSON object with cluster and task, got list"),
    ('{"task": {"type": "worker", "index": 0}}', "TF_CONFIG: no cluster"),
    ('{"cluster": {"worker": ["localhost:1"]}}', "TF_CONFIG: no task"),
    ('{"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 1}}',
     "TF_CONFIG: task 'worker' index 1 is not in the cluster (worker: 1)"),
])
def test_a_bad_tf_config_is_named(monkeypatch: pytest.MonkeyPatch, value: str | None,
                                  says: str) -> None:
    if value is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", value)
    with pytest.raises(InputError, match="^" + re.escape(says)):
        distribute.tf_config()


def test_a_batch_the_replicas_cannot_split_is_an_error() -> None:
    dist = distribute.Distribution("mirrored", "finetune", replicas=4)
    distribute.check_batch(dist, 64)
    with pytest.raises(ParamsError, match=re.escape("finetune.batch_size: 63 images do not "
                                                    "split evenly over the 4 replicas")):
        distribute.check_batch(dist, 63)


def test_lr_scaling_linear_multiplies_by_the_replicas() -> None:
    from pipeline.config import TrainParams

    params = TrainParams(lr=0.05, schedule={"kind": "cosine", "end_lr": 0.001})
    dist = distribute.Distribution("mirrored", replicas=4)
    scaled = dist.scaled(params, "linear")
    assert scaled.lr == pytest.approx(0.2) and scaled.schedule.end_lr == pytest.approx(0.004)
    assert dist.scaled(params, "none") is params
    assert distribute.Distribution().scaled(params, "linear") is params


def test_the_stage_exits_2_on_a_malformed_tf_config_writing_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stages.train import cli

    write_params(tmp_path, "bad", distribution="multi_worker")
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["localhost:1"]}')
    result = invoke_training_stage(cli, tmp_path / "bad.yaml", tmp_path / "data", tmp_path)
    assert result.exit_code == 2, result.output
    assert "error: TF_CONFIG: not valid JSON" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml", "data"]
