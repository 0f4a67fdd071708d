"""Report each epoch's validation metric to an Optuna trial, and stop when it is pruned.

``cvpipe search`` runs a trial as ``dvc exp run -S train.trial=STUDY-NNN`` with the environment
variable ``CVPIPE_SEARCH`` naming the storage, the study, the Keras log key and the pruner. The
callback finds trial NNN there, calls ``trial.report`` after every epoch and, when Optuna's
pruner says so, stops training at once (``model.stop_training``) and marks the trial's
``pruned_epoch``; the stage then finishes normally, so the experiment records how far it got.
Without the variable (any ordinary ``dvc repro``) there is no callback. Because the trial's name
is a param, a pruned run's outputs are never restored from DVC's run cache for another run.
"""

from __future__ import annotations

import json
import os
from typing import Any

import keras

from pipeline.io.studies import TRIAL_ENV as ENV
from pipeline.io.studies import open_storage


def trial_number(name: str) -> int:
    """Optuna's trial number from an experiment name ``STUDY-NNN`` (NNN counts from 1)."""
    return int(name.rsplit("-", 1)[1]) - 1


class TrialReport(keras.callbacks.Callback):
    """``trial.report(logs[monitor], epoch)`` each epoch; ``should_prune`` stops the fit."""

    def __init__(self, name: str, config: dict[str, Any]):
        super().__init__()
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.name, self.monitor = name, config["monitor"]
        self.storage = open_storage(config["storage"])
        pruner_class = getattr(optuna.pruners, config.get("pruner") or "NopPruner")
        study = optuna.load_study(study_name=config["study"], storage=self.storage,
                                  pruner=pruner_class(**config.get("pruner_args", {})))
        study_id = self.storage.get_study_id_from_name(config["study"])
        self.trial_id = self.storage.get_trial_id_from_study_id_trial_number(
            study_id, trial_number(name))
        self.trial = optuna.trial.Trial(study, self.trial_id)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        if self.monitor not in logs:
            raise KeyError(f"trial {self.name}: monitor {self.monitor!r} is not among this "
                           f"run's metrics ({', '.join(sorted(logs))})")
        value = float(logs[self.monitor])
        self.trial.report(value, step=epoch)
        if self.trial.should_prune():
            self.storage.set_trial_user_attr(self.trial_id, "pruned_epoch", epoch + 1)
            print(f"trial {self.name}: pruned after epoch {epoch + 1} "
                  f"({self.monitor} {value:.4f})", flush=True)
            self.model.stop_training = True


def trial_callbacks(name: str) -> list[keras.callbacks.Callback]:
    """``[TrialReport]`` when this run is search trial ``name`` and ``CVPIPE_SEARCH`` is set."""
    config = os.environ.get(ENV)
    if not name or not config:
        return []
    return [TrialReport(name, json.loads(config))]
