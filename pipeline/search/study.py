"""The study of a search file: its storage URL (default ``.cvpipe/search/NAME.journal``), its
sampler and pruner (Optuna)."""

from __future__ import annotations

from pathlib import Path

import optuna

from pipeline.io.errors import InputError
from pipeline.io.studies import open_storage, shown
from pipeline.search.space import SearchSpec, TrialSeededSampler

DEFAULT_FOLDER = Path(".cvpipe") / "search"


def default_storage(spec: SearchSpec, root: Path) -> str:
    return f"journal:{(root / DEFAULT_FOLDER / f'{spec.name}.journal').resolve()}"


def storage_url(spec: SearchSpec, root: Path, given: str | None = None) -> str:
    """The storage the study uses: ``given`` (the command line), the file's, or the default.
    A relative journal or SQLite path is made absolute against ``root``, so that trials running
    in DVC's experiment copies open the same file."""
    url = given or spec.storage or default_storage(spec, root)
    if url.startswith("journal:"):
        path = Path(url.removeprefix("journal:")).expanduser()
        return f"journal:{(root / path).resolve() if not path.is_absolute() else path}"
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        return f"sqlite:///{(root / url.removeprefix('sqlite:///')).resolve()}"
    return url


def open_study(spec: SearchSpec, storage: optuna.storages.BaseStorage) -> optuna.Study:
    """The study named ``spec.name`` (created on first use) with the file's sampler and pruner.
    An existing study must optimise in the same direction."""
    pruner = spec.pruner.build() if spec.pruner else optuna.pruners.NopPruner()
    study = optuna.create_study(storage=storage, study_name=spec.name, load_if_exists=True,
                                direction=spec.direction, sampler=TrialSeededSampler(spec),
                                pruner=pruner)
    if study.direction.name.lower() != spec.direction:
        raise InputError(f"study {spec.name} in this storage was created to "
                         f"{study.direction.name.lower()}, the file says mode: {spec.mode}")
    return study


__all__ = ["default_storage", "open_storage", "open_study", "shown", "storage_url"]
