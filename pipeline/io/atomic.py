"""Write outputs atomically: to a temporary file beside the target, then rename over it.

A stage killed half-way leaves at most a ``.tmp`` file behind, never a half-written file under
the real name.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(target: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` if the block succeeds.

    ``suffix`` is appended to the temporary name for writers that insist on an extension
    (``model.save`` wants ``.keras``).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{suffix}", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    # Hand the writer a fresh name, not an empty file: on ext4, opening an existing file with
    # O_TRUNC (h5py's "w", open's "w") makes close() flush its data to disk, which cost the hdf5
    # build about 30 ms per file (bench/build.py).
    tmp.unlink()
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _fresh_name(target: Path, kind: str) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".{kind}", dir=target.parent)
    os.close(fd)
    os.unlink(name)
    return Path(name)


@contextlib.contextmanager
def atomic_paths(
    targets: Sequence[str | Path], remove: Sequence[str | Path] = ()
) -> Iterator[list[Path]]:
    """Yield one temporary path per target; if the block succeeds, rename them all onto their
    targets and delete the files in ``remove``, as one set.

    An exception in the block leaves every target as it was. So does a rename that fails at
    the end (a target that is a folder, say): each existing target and ``remove`` file is
    first hard-linked (or copied) to a backup beside it, and the renames already done are
    undone from those backups.
    """
    paths = [Path(t) for t in targets]
    doomed = [Path(r) for r in remove]
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
    temps = [_fresh_name(path, "tmp") for path in paths]
    backups: dict[Path, Path] = {}
    changed: list[Path] = []
    try:
        yield temps
        for path in [*paths, *doomed]:
            if path.is_file() and path not in backups:
                backups[path] = _fresh_name(path, "old")
                try:
                    os.link(path, backups[path])
                except OSError:
                    shutil.copy2(path, backups[path])
        try:
            for tmp, path in zip(temps, paths, strict=True):
                os.replace(tmp, path)
                changed.append(path)
            for path in doomed:
                if path.is_file():
                    changed.append(path)
                    path.unlink()
        except BaseException:
            for path in reversed(changed):
                if path in backups:
                    os.replace(backups[path], path)
                else:
                    path.unlink(missing_ok=True)
            raise
    finally:
        for leftover in [*temps, *backups.values()]:
            leftover.unlink(missing_ok=True)


def write_text(target: str | Path, text: str) -> None:
    """Atomically write a text file."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(target: str | Path, data: Any) -> None:
    """Atomically write pretty JSON."""
    write_text(target, json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json(path: str | Path) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text(encoding="utf-8"))
