"""Data-parallel training through the engines' own distribution strategies.

TensorFlow's ``tf.distribute`` does the work for ``mirrored`` (``MirroredStrategy`` over the local
GPUs, or the CPUs TensorFlow lists) and ``multi_worker`` (``MultiWorkerMirroredStrategy``, the
cluster read from ``TF_CONFIG``); Keras's ``keras.distribution.DataParallel`` for
``data_parallel`` on JAX (``keras.distribution.initialize`` first where several processes are
configured through ``KERAS_DISTRIBUTION_*``). This module picks the strategy and checks that it
fits the backend and the batch, scales the learning rate, feeds each worker its own slice of
every global batch, and keeps a non-chief worker's outputs in a temporary folder it deletes (TF's
multi-worker guide): only the chief writes the model, the dvclive history and the checkpoints.

``batch_size`` is the global batch. Global step ``k`` of an epoch takes the same images as step
``k`` of a one-device run with that batch: its replicas read consecutive slices of it. Under a
strategy an epoch has ``images // batch_size`` steps (every replica gets a full slice).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

from pipeline.config import ParamsError
from pipeline.io.errors import InputError
from pipeline.train.loader import HDF5Loader, fit_data, tf_pipeline

#: The backend each distribution runs on.
BACKENDS = {"mirrored": "tensorflow", "multi_worker": "tensorflow", "data_parallel": "jax"}

TF_CONFIG_EXAMPLE = ('{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                     '"task": {"type": "worker", "index": 0}}')


@dataclass
class Distribution:
    """How one process takes part in training: ``replicas`` in all, this process's ``worker``
    index of ``workers``, and the TensorFlow ``strategy`` (None on JAX and for ``none``)."""

    kind: str = "none"
    section: str = "train"
    strategy: Any = None
    replicas: int = 1
    worker: int = 0
    workers: int = 1
    chief: bool = True
    shared_checkpoint: Path | None = None

    @property
    def active(self) -> bool:
        return self.kind != "none"

    def scope(self) -> contextlib.AbstractContextManager:
        """Where to build and compile the model: the strategy's scope (TensorFlow)."""
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def replica_batch(self, batch_size: int) -> int:
        """Images per replica of a global batch (or per process on JAX, which splits it over
        the local devices itself): the batch the training loader reads."""
        return batch_size // (self.workers if self.kind == "data_parallel" else self.replicas)

    def scaled(self, params: Any, rule: str) -> Any:
        """``params`` (train's, or a finetune phase's) with ``lr`` and ``schedule.end_lr``
        multiplied by the replicas under ``rule`` ``linear`` (Goyal et al., 2017)."""
        if rule != "linear" or self.replicas == 1:
            return params
        schedule = params.schedule.model_copy(update={"end_lr": params.schedule.end_lr * self.replicas})
        return params.model_copy(update={"lr": params.lr * self.replicas, "schedule": schedule})

    def outputs(self, model_dir: Path, live_dir: Path,
                checkpoint_dir: Path) -> tuple[Path, Path, Path]:
        """The folders this process writes to: the given ones on the chief; on another worker
        fresh folders in a temporary one that is deleted when the process ends. Where the
        chief's checkpoint folder holds anything (an interrupted run's backup), the worker's
        checkpoint and dvclive folders start as copies of the chief's (the model folder is
        written afresh at the end), so that every worker resumes from the same epoch (TF's
        multi-worker guide: the folders are then shared by the workers, one filesystem for all;
        :meth:`agree` stops a run whose workers would start apart)."""
        folders = (model_dir, live_dir, checkpoint_dir)
        self.shared_checkpoint = checkpoint_dir
        if self.chief:
            return folders
        scratch = Path(tempfile.mkdtemp(prefix=f"cvpipe-worker{self.worker}-"))
        atexit.register(shutil.rmtree, scratch, ignore_errors=True)
        print(f"{self.section}: worker {self.worker} is not the chief: its outputs go to "
              f"{scratch} (deleted at exit)")
        mine = (scratch / "model", scratch / "live", scratch / "checkpoint")
        if checkpoint_dir.is_dir() and any(checkpoint_dir.iterdir()):
            for chiefs, copy in zip(folders[1:], mine[1:], strict=True):
                if chiefs.is_dir():
                    shutil.copytree(chiefs, copy)
            print(f"{self.section}: worker {self.worker} starts from a copy of the chief's "
                  f"{checkpoint_dir}, to resume where the chief does")
        return mine

    def agree(self, epoch: int) -> None:
        """Under ``multi_worker``, check that every worker starts from ``epoch`` (a sum over the
        replicas, TensorFlow's collective all-reduce); :class:`InputError` where they would
        not, which would otherwise hang or train on mismatched steps."""
        if self.kind != "multi_worker":
            return
        import tensorflow as tf

        strategy = self.strategy

        @tf.function
        def total():
            return strategy.reduce("SUM", strategy.run(lambda: tf.constant(float(epoch))),
                                   axis=None)

        if float(total()) != float(epoch * self.replicas):
            raise InputError(
                f"{self.shared_checkpoint}: the workers would start from different epochs (this "
                f"one, worker {self.worker}, from epoch {epoch + 1}): under "
                f"{self.section}.distribution multi_worker every worker resumes from the chief's "
                "checkpoint folder, which must be shared by all of them (one filesystem); "
                "delete it to start afresh")

    def adopt(self, model: keras.Model, loader: HDF5Loader) -> None:
        """Let ``model`` (built and compiled in :meth:`scope`) train under ``multi_worker``,
        around two places where Keras 3 averages over ``MultiWorkerMirroredStrategy``'s replicas
        in ways it cannot do (keras-team/keras#20585): the first batch, a tuple it reduces to
        build the model from (built from the loader's signature instead), and each step's
        scalar logs, reduced along an axis they lack (reduced as a whole instead)."""
        if self.kind != "multi_worker":
            return
        import numpy as np

        _mean_over_workers()
        batch = tuple(np.zeros((1, *shape[1:]), dtype) for dtype, shape in loader.signature())
        strategy = self.strategy

        def build(iterator=None, data_batch=None):
            with strategy.scope():
                model._symbolic_build(data_batch=batch)

        model._maybe_symbolic_build = build

    def fit_data(self, loader: HDF5Loader, first_epoch: int, epochs: int,
                 global_batch: int) -> tuple[Any, int | None]:
        """What to hand ``model.fit`` and its ``steps_per_epoch`` (see the module docstring);
        ``loader`` reads :meth:`replica_batch` images a batch. Without a distribution,
        :func:`pipeline.train.loader.fit_data` as always."""
        if not self.active:
            return fit_data(loader, first_epoch, epochs)
        steps = len(loader.split) // global_batch
        loader.set_epoch(first_epoch)
        if self.strategy is None:
            return _ProcessSlices(loader, steps, self.worker, self.workers), None
        per_epoch = len(loader)

        def batches(context):  # one input pipeline per worker (TensorFlow's InputContext)
            local = context.num_replicas_in_sync // context.num_input_pipelines
            worker = context.input_pipeline_id

            def fetch(element):
                step, replica = divmod(int(element), local)
                epoch, k = divmod(step, steps)
                index = (k * context.num_input_pipelines + worker) * local + replica
                return loader.batch_at(epoch * per_epoch + index)

            span = range(first_epoch * steps * local, epochs * steps * local)
            return tf_pipeline(loader, span, fetch)

        return self.strategy.distribute_datasets_from_function(batches), steps

    def describe(self, batch_size: int) -> str:
        return (f"{self.section}: {self.kind} over {self.replicas} replicas in {self.workers} "
                f"worker(s), this one {self.worker}{' (chief)' if self.chief else ''}; global "
                f"batch {batch_size}, {batch_size // self.replicas} per replica")


def _mean_over_workers() -> None:
    """Keras's per-step reduction, with its ``mean`` over several workers taken as a whole."""
    from keras.src.backend.tensorflow import trainer

    keras_reduce = trainer.reduce_per_replica
    if getattr(keras_reduce, "cvpipe", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(strategy):
            return keras.tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None),
                                            values)
        return keras_reduce(values, strategy, reduction)

    reduce_per_replica.cvpipe = True  # type: ignore[attr-defined]
    trainer.reduce_per_replica = reduce_per_replica


class _ProcessSlices(keras.utils.PyDataset):
    """JAX: this process's slice of every full global batch (all of it with one process)."""

    def __init__(self, loader: HDF5Loader, steps: int, process: int, processes: int):
        super().__init__(workers=loader.workers, use_multiprocessing=False, max_queue_size=16)
        self.loader, self.steps, self.process, self.processes = loader, steps, process, processes

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, index: int):
        return self.loader[index * self.processes + self.process]

    def on_epoch_end(self) -> None:
        self.loader.on_epoch_end()


def setup(kind: str, section: str, batch_size: int, backend: str | None = None) -> Distribution:
    """The distribution ``<section>.distribution`` names, started (create it before anything
    else touches the backend: ``MultiWorkerMirroredStrategy`` must come first). A strategy the
    backend lacks, or a batch the replicas cannot split evenly, is a
    :class:`~pipeline.config.ParamsError` naming the key; a missing or malformed ``TF_CONFIG``
    an :class:`~pipeline.io.errors.InputError` naming it."""
    if kind == "none":
        return Distribution(section=section)
    backend = backend or keras.backend.backend()
    if BACKENDS[kind] != backend:
        other = "data_parallel" if backend == "jax" else "mirrored or multi_worker"
        raise ParamsError([f"{section}.distribution: {kind} runs on the {BACKENDS[kind]} "
                           f"backend, but Keras runs on {backend} (KERAS_BACKEND); use {other} "
                           "there"])
    dist = (_tensorflow(kind, section) if backend == "tensorflow" else _jax(section))
    check_batch(dist, batch_size)
    return dist


def check_batch(dist: Distribution, batch_size: int) -> None:
    """A global batch the replicas cannot split evenly is an error, not a note: uneven slices
    would weigh some images more than others (the gradients are averaged per replica)."""
    if batch_size % dist.replicas:
        raise ParamsError([f"{dist.section}.batch_size: {batch_size} images do not split evenly "
                           f"over the {dist.replicas} replicas of {dist.section}.distribution "
                           f"{dist.kind}; use a multiple of {dist.replicas}"])


def _tensorflow(kind: str, section: str) -> Distribution:
    import tensorflow as tf

    if kind == "mirrored":
        devices = (tf.config.list_logical_devices("GPU")
                   or tf.config.list_logical_devices("CPU"))
        strategy = tf.distribute.MirroredStrategy([d.name for d in devices])
        return Distribution(kind, section, strategy, strategy.num_replicas_in_sync)
    cluster, task = tf_config()
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    jobs = [job for job in ("chief", "worker") if job in cluster]
    offset = {job: sum(len(cluster[j]) for j in jobs[:i]) for i, job in enumerate(jobs)}
    worker = offset.get(task["type"], 0) + int(task["index"])
    chief = task["type"] == "chief" or ("chief" not in cluster and worker == 0)
    return Distribution(kind, section, strategy, strategy.num_replicas_in_sync, worker,
                        sum(len(cluster[j]) for j in jobs), chief)


def tf_config() -> tuple[dict, dict]:
    """``TF_CONFIG``'s cluster and task, checked; :class:`InputError` naming it and what is
    wrong (unset, not JSON, no cluster, no task, a task the cluster lacks)."""
    raw = os.environ.get("TF_CONFIG", "").strip()
    hint = f"e.g. TF_CONFIG='{TF_CONFIG_EXAMPLE}'"
    if not raw:
        raise InputError(f"TF_CONFIG: not set; distribution multi_worker reads the cluster and "
                         f"this process's task from it ({hint})")
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InputError(f"TF_CONFIG: not valid JSON ({exc}); {hint}") from None
    if not isinstance(config, dict):
        raise InputError(f"TF_CONFIG: a JSON object with cluster and task, got "
                         f"{type(config).__name__}; {hint}")
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not any(
            isinstance(v, list) and v for k, v in cluster.items() if k in ("chief", "worker")):
        raise InputError(f"TF_CONFIG: no cluster (chief and/or worker job: a list of host:port "
                         f"addresses); {hint}")
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise InputError(f"TF_CONFIG: no task (this process's type and index); {hint}")
    jobs = cluster.get(task["type"])
    index = task["index"]
    if not isinstance(jobs, list) or not isinstance(index, int) or not 0 <= index < len(jobs):
        raise InputError(f"TF_CONFIG: task {task['type']!r} index {index!r} is not in the "
                         f"cluster ({', '.join(f'{k}: {len(v)}' for k, v in cluster.items())})")
    return cluster, task


def _jax(section: str) -> Distribution:
    if int(os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", "1")) > 1:
        keras.distribution.initialize()  # reads KERAS_DISTRIBUTION_{JOB_ADDRESSES,...}
    import jax

    devices = keras.distribution.list_devices()
    # each process already reads only its own slices (_ProcessSlices): Keras must not shard
    # them again (it would ask for a tf.data.Dataset to do so)
    keras.distribution.set_distribution(
        keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False))
    process = jax.process_index()
    return Distribution("data_parallel", section, None, len(devices), process,
                        jax.process_count(), process == 0)


def localhost_cluster(workers: int) -> dict[str, list[str]]:
    """A ``TF_CONFIG`` cluster of ``workers`` on free localhost ports: several workers on one
    machine (tests, ``bench/distributed.py``)."""
    sockets = [socket.socket() for _ in range(workers)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return {"worker": [f"localhost:{port}" for port in ports]}
