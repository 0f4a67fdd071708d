"""Finding the images of a source and their labels: class folders, file-name regex, CSV manifest."""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path

from pipeline.config import SourceParams
from pipeline.io.errors import InputError


@dataclass(frozen=True)
class Candidate:
    """A file that should be an image of class ``label``."""

    path: Path
    label: str
    split: str = ""  # a split the source assigns (CSV column ``split``), else empty
    group: str = ""  # the image's group (the CSV column ``split.group.column``), else empty


@dataclass(frozen=True)
class Skip:
    """A file that was not taken, and why. ``counted`` skips count as rejects."""

    path: Path
    reason: str
    detail: str = ""
    counted: bool = True


def _files(root: Path, recursive: bool) -> list[Path]:
    pattern = "**/*" if recursive else "*"
    return sorted(
        p for p in root.glob(pattern)
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def _by_extension(
    files: list[tuple[Path, str]] | list[tuple[Path, str, str, str]], extensions: set[str]
) -> tuple[list[Candidate], list[Skip]]:
    keep, skipped = [], []
    for path, label, *split in files:
        if path.suffix.lower() in extensions:
            keep.append(Candidate(path, label, *split))
        else:
            skipped.append(Skip(path, "extension", path.suffix or "(none)", counted=False))
    return keep, skipped


def from_folders(root: Path, extensions: set[str]) -> tuple[list[Candidate], list[Skip]]:
    """One sub-folder per class; every file below it (at any depth) belongs to that class."""
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise InputError(f"{root} has no class sub-folders (kind: folder expects root/<label>/...)")
    return _by_extension(
        [(path, folder.name) for folder in classes for path in _files(folder, True)], extensions
    )


def from_filenames(
    root: Path, pattern: str, recursive: bool, extensions: set[str]
) -> tuple[list[Candidate], list[Skip]]:
    """Labels parsed from file names by a regex with a ``label`` group (``cat.123.jpg``)."""
    regex = re.compile(pattern)
    candidates, skipped = _by_extension([(p, "") for p in _files(root, recursive)], extensions)
    labelled = []
    for cand in candidates:
        match = regex.search(cand.path.name)
        if match and match.group("label"):
            labelled.append(Candidate(cand.path, match.group("label")))
        else:
            skipped.append(Skip(cand.path, "no-label", f"name does not match {pattern!r}"))
    return labelled, skipped


SOURCE_SPLITS = ("train", "val", "test")


def from_csv(
    manifest: Path, extensions: set[str], roots: list[str] | tuple[str, ...] = (),
    group_column: str = "",
) -> tuple[list[Candidate], list[Skip]]:
    """A CSV with columns ``path,label`` (and optionally ``split``: train, val or test, which the
    split stage keeps; and ``group_column``, each image's group, ``split.group.column``).
    Paths are relative to the CSV and may not leave its folder, except into one of ``roots``
    (``ingest.source.roots``): there absolute paths, ``..`` paths and symlinks are allowed.
    Where a path lands is decided on its fully resolved form (symlinks followed)."""
    root = manifest.parent.resolve()
    allowed = [root, *(Path(r).resolve() for r in roots)]
    where = (f"outside {root} and ingest.source.roots ({', '.join(map(str, allowed[1:]))})"
             if roots else f"outside {root} (list its folder in ingest.source.roots to allow it)")
    rows: list[tuple[Path, str, str, str]] = []
    skipped: list[Skip] = []
    with manifest.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = {"path", "label"} - set(reader.fieldnames or [])
        if missing:
            raise InputError(f"{manifest} needs columns path,label; missing {sorted(missing)}")
        if group_column and group_column not in (reader.fieldnames or []):
            raise InputError(f"{manifest} has no column {group_column!r} (split.group.column); "
                             f"its columns: {', '.join(reader.fieldnames or [])}")
        for line, row in enumerate(reader, start=2):
            raw, label = (row["path"] or "").strip(), (row["label"] or "").strip()
            split = (row.get("split") or "").strip()
            path = root / raw
            if not raw or not label:
                skipped.append(Skip(path, "bad-row", f"line {line}: empty path or label"))
            elif split and split not in SOURCE_SPLITS:
                skipped.append(Skip(path, "bad-row", f"line {line}: split {split!r} is not one "
                                                     f"of {', '.join(SOURCE_SPLITS)}"))
            elif not any(path.resolve().is_relative_to(folder) for folder in allowed):
                skipped.append(Skip(path, "escapes-root", f"line {line}: {raw} is {where}"))
            elif not path.is_file():
                skipped.append(Skip(path, "missing", f"line {line}: no such file"))
            else:
                rows.append((path, label, split, (row.get(group_column) or "").strip()
                             if group_column else ""))
    candidates, more = _by_extension(rows, extensions)
    return candidates, skipped + more


def discover(
    source: SourceParams, extensions: list[str], group_column: str = ""
) -> tuple[list[Candidate], list[Skip]]:
    """All candidate images of a source, sorted by path, and the files skipped on the way
    (``group_column``: kind csv, the column holding each image's group)."""
    root = Path(source.path)
    exts = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}
    if source.kind == "csv":
        if root.is_dir():
            root = root / source.manifest
        if not root.is_file():
            raise InputError(f"ingest.source.path: kind csv needs a CSV file or a folder with "
                             f"{source.manifest}, got {root}")
        found, skipped = from_csv(root, exts, source.roots, group_column)
    elif not root.is_dir():
        raise InputError(f"ingest.source.path: kind {source.kind} needs a folder, got {root}")
    elif source.kind == "folder":
        found, skipped = from_folders(root, exts)
    else:
        found, skipped = from_filenames(root, source.pattern, source.recursive, exts)
    return sorted(found, key=lambda c: str(c.path)), skipped


def display_path(path: Path) -> str:
    """A path as the manifest stores it, naming the same file in the workspace and in a
    ``dvc exp run --temp``/``--queue`` copy of it (under ``.dvc/tmp/exps``): relative to the
    working directory (the repository root, where DVC runs stages) when it lies inside it,
    else absolute. A ``../`` path would mean another file in the copy. ``os.path.abspath``
    folds ``..`` without following symlinks, so a linked folder keeps its name."""
    absolute = os.path.abspath(path)
    try:
        relative = os.path.relpath(absolute)
    except ValueError:  # another drive on Windows
        return Path(absolute).as_posix()
    outside = relative == os.pardir or relative.startswith(os.pardir + os.sep)
    return Path(absolute if outside else relative).as_posix()
