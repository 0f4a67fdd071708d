"""Optuna storages by URL, opened (and a database reached) before anything runs.

``journal:PATH`` is Optuna's journal file, safe for many processes on one machine;
``sqlite:///PATH``, ``postgresql://USER:PASSWORD@HOST/DB`` and the other SQLAlchemy URLs are
Optuna's RDB storage, which many machines can share. Used by ``cvpipe search`` and by the
training callback that reports each epoch to a trial.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.io.errors import InputError

if TYPE_CHECKING:
    import optuna

#: The environment variable that tells a training run which trial it is and where the study is.
TRIAL_ENV = "CVPIPE_SEARCH"


def shown(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """The Optuna storage at ``url``; :class:`InputError` naming it when it cannot be opened or
    reached (a database is connected to here, before any trial is queued)."""
    import optuna  # here, so that a training run outside a search never imports it

    try:
        if url.startswith("journal:"):
            path = Path(url.removeprefix("journal:"))
            path.parent.mkdir(parents=True, exist_ok=True)
            backend = optuna.storages.journal.JournalFileBackend(str(path))
            return optuna.storages.JournalStorage(backend)
        engine = {"connect_args": {"connect_timeout": 5}} if url.startswith("postgresql") else {}
        # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3; the shipped driver is psycopg2.
        driver_url = ("postgresql+psycopg2://" + url.removeprefix("postgresql://")
                      if url.startswith("postgresql://") else url)
        return optuna.storages.RDBStorage(driver_url, engine_kwargs=engine)
    except Exception as exc:  # the drivers raise their own types; the cause is in the text
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"storage {shown(url)}: cannot be opened: {reason}") from None
