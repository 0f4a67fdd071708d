"""Hyperparameter search and ablation studies, each trial a DVC experiment.

Optuna does the searching (samplers, pruners, storages, importances, plots); DVC runs every trial
as an experiment (``dvc exp run --temp``), so each is listed by ``dvc exp show`` and can be
applied and reproduced. ``space`` reads a search file, ``study`` opens the Optuna study in its
storage, ``runner`` runs trials on one or many workers, ``experiments`` reads DVC's side,
``report`` writes tables and plots, ``ablation`` turns knobs off one at a time.
"""
