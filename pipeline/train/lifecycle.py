"""The training lifecycle every training stage shares, written once.

Seed the backend, fingerprint what a backup is valid for, resume an interrupted run or start
fresh, fit with the logging / backup / best-model callbacks, save atomically, mark the run
finished and write the model card beside the model (:mod:`pipeline.io.model_card`). Keras does the
work (``BackupAndRestore``, ``ModelCheckpoint``, ``EarlyStopping``), dvclive keeps the history,
:mod:`pipeline.train.resume` decides what may be resumed. A stage builds its model and data,
then::

    run = TrainingRun("train", checkpoint_dir, live_dir, seed, deterministic)  # seeds first
    ...build the model...
    run.identify({"train": settings}, model, train_file)
    start = run.resume()
    with run.logging(start, parameters=model.count_params()):
        model.fit(..., initial_epoch=start, verbose=0,
                  callbacks=run.callbacks("val_loss", has_val, images=len(train_split)))
    run.save(model, out / "model.keras")
    run.finish()
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import keras

from pipeline.config import EarlyStoppingParams
from pipeline.io import model_card as card
from pipeline.io.atomic import atomic_path
from pipeline.train import resume
from pipeline.train.callbacks import EpochLine, EpochSeeds, LiveLogger
from pipeline.train.history import CLASSIFIER_PANELS, live_run

#: ``mixed_precision`` in params -> the Keras dtype policy every layer built afterwards takes.
POLICIES = {"none": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}


def configure_backend(seed: int, deterministic: bool, mixed_precision: str = "none") -> None:
    """Seed everything; deterministic TensorFlow ops and the mixed-precision policy
    (``none``, ``float16``, ``bfloat16``: variables stay float32, layers compute in that type)."""
    keras.utils.set_random_seed(seed)
    if deterministic and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    keras.config.set_dtype_policy(POLICIES[mixed_precision])


class TrainingRun:
    """One stage's training run: ``checkpoint_dir`` persists between runs, ``live_dir`` is the
    dvclive folder. Creating it seeds the backend, so create it before building any model."""

    def __init__(self, stage: str, checkpoint_dir: Path, live_dir: Path, seed: int,
                 deterministic: bool, mixed_precision: str = "none"):
        configure_backend(seed, deterministic, mixed_precision)
        self.stage, self.checkpoint_dir, self.live_dir, self.seed = stage, checkpoint_dir, live_dir, seed
        self.fingerprint = ""
        self.live: Any = None
        self.settings: dict = {}
        self.data_file: Path | None = None
        self.saved: list[tuple[keras.Model, Path]] = []

    def identify(self, settings: dict, model: keras.Model, data_file: Path) -> None:
        """Fingerprint what a backup is valid for: ``settings`` (JSON-able params), the seed,
        ``model``'s architecture and the training data file."""
        self.fingerprint = resume.fingerprint(settings, self.seed, model, data_file)
        self.settings, self.data_file = settings, data_file

    def resume(self, folder: Path | None = None) -> int:
        """The epoch to start from in ``folder`` (default: the checkpoint folder): an interrupted
        run with this fingerprint is resumed, any other backup is cleared. Says which."""
        epoch, why = resume.prepare(folder or self.checkpoint_dir, self.fingerprint)
        print(f"{self.stage}: {why}")
        return epoch

    def completed(self, folder: Path) -> bool:
        """Whether a run with this fingerprint finished in ``folder``."""
        return resume.completed(folder, self.fingerprint)

    @contextlib.contextmanager
    def logging(self, first_epoch: int, **summary: Any) -> Iterator[Any]:
        """The dvclive ``Live`` for epochs from ``first_epoch``, with ``summary`` values set."""
        with live_run(self.live_dir, first_epoch) as live:
            live.summary.update(summary)
            self.live = live
            yield live

    def callbacks(self, monitor: str | None, has_val: bool, es: EarlyStoppingParams | None = None,
                  panels: tuple[str, ...] = CLASSIFIER_PANELS, backup: Path | None = None,
                  best: Path | None = None, extra: Sequence[keras.callbacks.Callback] = (),
                  images: int | None = None, epochs: int | None = None) -> list:
        """Logging first (so a kill never logs an epoch the backup lacks) with one printed line
        per epoch (:class:`EpochLine`: ``images`` per epoch give its img/s, ``epochs`` the run's
        last epoch when it spans several fits; fit with ``verbose=0``), then ``extra``, the
        model's random layers reseeded from ``(seed, epoch)`` each epoch (so a resumed epoch draws
        what the uninterrupted one drew), the backup in ``backup`` (default: the checkpoint
        folder), the best model by ``monitor``
        (``best``, default ``<checkpoint>/best.keras``; none when ``monitor`` is None), early
        stopping."""
        if self.live is None:
            raise RuntimeError("callbacks() is for use inside logging()")
        folder = backup or self.checkpoint_dir
        out: list[keras.callbacks.Callback] = [
            LiveLogger(self.live, panels), EpochLine(images, epochs), *extra, EpochSeeds(self.seed),
            keras.callbacks.BackupAndRestore(str(resume.backup_dir(folder)),
                                             double_checkpoint=True, delete_checkpoint=False),
        ]
        if monitor is not None:
            monitor = monitor if has_val else monitor.removeprefix("val_")
            out.append(keras.callbacks.ModelCheckpoint(
                str(best or self.checkpoint_dir / "best.keras"), monitor=monitor,
                save_best_only=True, verbose=0))
        if es is not None and es.enabled:
            out.append(keras.callbacks.EarlyStopping(
                monitor=es.monitor if has_val else es.monitor.removeprefix("val_"),
                patience=es.patience, min_delta=es.min_delta, restore_best_weights=es.restore_best,
            ))
        return out

    def save(self, model: keras.Model, target: Path) -> None:
        """``model`` as a ``.keras`` file, written under a temporary name and renamed."""
        with atomic_path(target, suffix=".keras") as tmp:
            model.save(tmp)
        self.saved.append((model, target))

    def keep_best(self, target: Path) -> None:
        """Copy the best epoch's model (if one was kept) to ``target``, atomically."""
        best = self.checkpoint_dir / "best.keras"
        if best.exists():
            with atomic_path(target, suffix=".keras") as tmp:
                shutil.copyfile(best, tmp)

    def finish(self, folder: Path | None = None) -> None:
        """The run completed: drop its backup so that the next run starts fresh. Once a model
        was saved, write the model card beside the first one saved."""
        resume.finish(folder or self.checkpoint_dir, self.fingerprint)
        if self.saved and self.data_file is not None:
            model, target = self.saved[0]
            card.write(target.parent, card.build(self.stage, model, target.parent, self.settings,
                                                 self.data_file, self.live_dir))
