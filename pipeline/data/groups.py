"""Leakage-safe splits: images of one group (a patient, a session) always share a split.

``split.group`` names each image's group, by a CSV column (carried into the manifest as
``group``) or by a regex on the path; an image without one (an empty cell, a path the regex
does not match) is its own group, keyed ``sha256:<hash>``. Groups that share an identical image
(same SHA-256) are joined first (scipy's ``connected_components``), so exact duplicates still
share a split. The joined groups are then placed whole, by ``split.group.method``:

* ``stable``: each class's groups (a group's class: the most common label among its images)
  are put in the order of their hash ``u = H(seed, key)`` and laid end to end on [0, 1), each
  as long as its share of the class's images; a group stands at its start plus ``u`` times its
  length, and that number is placed as the group-less split places a hash
  (:func:`pipeline.data.split.place`). A group's split depends on its key, the seed and the
  share of its class's images in groups before it in hash order, so adding images moves only
  groups near a cut; each class's fractions are met to about one group, and a class of one
  group is placed by its hash alone. No library does a hash-stable group split; this is
  written here.
* ``balanced``: scikit-learn's ``StratifiedGroupKFold`` balances every class's images (those
  of mixed groups too) over ``k`` folds, and a split takes ``m`` of them (``m / k`` nearest its
  fraction, ``k`` at most :data:`MAX_FOLDS`): first test, then val, then train-dev of what is
  left. The groups are dealt sorted by key and shuffled by the seed, so the manifest's order
  does not matter, but every group does: adding images may move any group.

Rows a source puts in ``test`` or ``val`` (a CSV ``split`` column) stay there and ``train`` rows
never go to test, as without groups; a group whose rows the source puts in different splits
then straddles them, and :func:`leakage` lists it.
"""

from __future__ import annotations

import os
import re
import warnings
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from pipeline.config import ParamsError, SourceParams, SplitParams
from pipeline.data.split import SPLITS, place, split_rows, unit_interval
from pipeline.io.errors import InputError

#: The most folds a split is carved from (its fraction is then met to 1/20 or better).
MAX_FOLDS = 20

Row = Mapping[str, str]


def source_folder(source: SourceParams) -> Path:
    """The folder the group pattern's paths are relative to: the source folder, or the CSV's
    (a path that is not there, as in a copy DVC runs split in from its run cache, is taken
    for a CSV file if it ends in ``.csv``)."""
    root = Path(source.path)
    csv_file = root.is_file() or (not root.exists() and root.suffix.lower() == ".csv")
    return root.parent if source.kind == "csv" and csv_file else root


def relative(path: str, root: Path) -> str:
    """A manifest path relative to ``root`` with ``/`` separators, or as it is if outside it."""
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    return path if rel == os.pardir or rel.startswith(os.pardir + os.sep) else Path(rel).as_posix()


def group_keys(
    rows: Sequence[Row], params: SplitParams, root: Path, manifest: Path | str = "manifest"
) -> tuple[list[str], list[str]]:
    """Each row's group key and the paths that have none (each then its own group).

    Raises :class:`InputError` when ``split.group.column`` is set but the manifest has no
    ``group`` column (one written before it was set), and :class:`ParamsError` when
    ``split.group.pattern`` matches no path at all.
    """
    group = params.group
    keys: list[str] = []
    ungrouped: list[str] = []
    if group.column and rows and "group" not in rows[0]:
        raise InputError(f"{manifest} has no group column, which split.group.column "
                         f"({group.column!r}) needs: run the ingest stage again")
    regex = re.compile(group.pattern) if group.pattern else None
    for row in rows:
        if regex is None:
            key = row.get("group", "")
        else:
            match = regex.search(relative(row["path"], root))
            key = (match.group(1) if regex.groups else match.group(0)) if match else ""
        if key:
            keys.append(key)
        else:
            keys.append(f"sha256:{row['sha256']}")
            ungrouped.append(row["path"])
    if regex is not None and rows and len(ungrouped) == len(rows):
        example = relative(rows[0]["path"], root)
        raise ParamsError([f"split.group.pattern: '{group.pattern}' matches none of the "
                           f"{len(rows)} paths (relative to {root}, e.g. {example!r})"])
    return keys, ungrouped


def join_duplicates(rows: Sequence[Row], keys: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """Each row's group after joining the groups that share an identical image (named by the
    smallest key among them), and the lists of keys so joined."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    names = sorted(set(keys))
    digests = sorted({row["sha256"] for row in rows})
    index = {name: i for i, name in enumerate(names)}
    offset = {digest: len(names) + i for i, digest in enumerate(digests)}
    nodes = len(names) + len(digests)
    edges = coo_matrix(
        (np.ones(len(rows)), ([index[k] for k in keys], [offset[r["sha256"]] for r in rows])),
        shape=(nodes, nodes),
    )
    _, label = connected_components(edges, directed=False)
    members: dict[int, list[str]] = defaultdict(list)
    for name in names:  # sorted, so each component's first member is its smallest key
        members[label[index[name]]].append(name)
    joined = [members[label[index[k]]][0] for k in keys]
    return joined, [group for group in members.values() if len(group) > 1]


def _folds(fraction: float, groups: int, largest_class: int) -> tuple[int, int]:
    """``(m, k)``: take ``m`` of ``k`` folds, ``m / k`` nearest ``fraction`` (fewest folds on a
    tie); ``k`` is at most the number of groups and of the largest class's images."""
    most = max(1, min(MAX_FOLDS, groups, largest_class))
    pairs = ((m, k) for k in range(1, most + 1) for m in range(k + 1))
    return min(pairs, key=lambda mk: (abs(mk[0] / mk[1] - fraction), mk[1]))


def _carve(pool: np.ndarray, labels: np.ndarray, groups: np.ndarray, fraction: float,
           seed: int) -> np.ndarray:
    """The rows of ``pool`` (indices) whose groups make up about ``fraction`` of it, every
    class in that proportion as far as the groups allow."""
    if fraction <= 0.0 or pool.size == 0:
        return pool[:0]
    m, k = _folds(min(fraction, 1.0), len(np.unique(groups[pool])),
                  max(Counter(labels[pool].tolist()).values()))
    if m in (0, k):
        return pool if m else pool[:0]
    from sklearn.model_selection import StratifiedGroupKFold

    folds = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # a class smaller than k: balanced as far as it goes
        warnings.filterwarnings("ignore", "The least populated class", UserWarning)
        chosen = [test for _, test in folds.split(pool, labels[pool], groups[pool])][:m]
    return pool[np.sort(np.concatenate(chosen))]


def _balanced(placed: np.ndarray, labels: np.ndarray, group: np.ndarray, no_test: np.ndarray,
              seed: int, params: SplitParams) -> None:
    """Fill the empty entries of ``placed`` by StratifiedGroupKFold folds."""
    free = placed == ""
    placed[_carve(np.flatnonzero(free & ~no_test), labels, group, params.test, seed)] = "test"
    pool = np.flatnonzero(placed == "")
    val_fraction = params.val * free.sum() / pool.size if pool.size else 0.0
    placed[_carve(pool, labels, group, val_fraction, seed)] = "val"
    pool = np.flatnonzero(placed == "")
    placed[_carve(pool, labels, group, params.train_dev, seed)] = "train_dev"
    placed[placed == ""] = "train"


def _stable(placed: np.ndarray, labels: np.ndarray, group: np.ndarray, no_test: np.ndarray,
            seed: int, params: SplitParams) -> None:
    """Fill the empty entries of ``placed`` by cutting each class's groups in hash order."""
    members: dict[str, list[int]] = defaultdict(list)
    for i in np.flatnonzero(placed == ""):
        members[group[i]].append(int(i))
    by_class: dict[str, list[str]] = defaultdict(list)
    for key, rows in members.items():
        tally = Counter(labels[rows].tolist())
        by_class[min(tally, key=lambda label: (-tally[label], label))].append(key)
    for keys in by_class.values():
        order = sorted((unit_interval(seed, key), key) for key in keys)
        total, before = sum(len(members[key]) for key in keys), 0
        for u, key in order:
            size = len(members[key])
            name = place((before + u * size) / total, params, bool(no_test[members[key][0]]))
            placed[members[key]] = name
            before += size


def split_groups(
    rows: Sequence[Row], groups: Sequence[str], seed: int, params: SplitParams
) -> dict[str, list[Row]]:
    """Rows by split, every group in one split (save what the source fixes), manifest order
    kept within each split. ``groups``: each row's group after :func:`join_duplicates`."""
    source = np.array([row.get("source_split", "") for row in rows], dtype=object)
    labels = np.array([row["label"] for row in rows], dtype=object)
    group = np.array(groups, dtype=object)
    placed = np.where(np.isin(source, ["test", "val"]), source, "").astype(object)
    no_test = np.isin(group, np.unique(group[source == "train"]))
    method = _stable if params.group.method == "stable" else _balanced
    method(placed, labels, group, no_test, seed, params)
    out: dict[str, list[Row]] = {name: [] for name in SPLITS}
    for row, name in zip(rows, placed, strict=True):
        out[name].append(row)
    return out


def leakage(splits: Mapping[str, Sequence[Row]], keys: Mapping[str, str]) -> dict[str, object]:
    """What crosses splits: groups (``keys``: path -> group key) found in more than one split,
    identical images (same SHA-256) that are, and ``leaked_groups``, how many groups (joined
    by shared images) do either: the split stage's one leakage metric."""
    by_group: dict[str, Counter[str]] = defaultdict(Counter)
    by_digest: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    rows, names = [], []
    for name, members in splits.items():
        for row in members:
            by_group[keys[row["path"]]][name] += 1
            by_digest[row["sha256"]][name].append(row["path"])
            rows.append(row)
            names.append(name)
    joined, _ = join_duplicates(rows, [keys[row["path"]] for row in rows])
    seen: dict[str, set[str]] = defaultdict(set)
    for group, name in zip(joined, names, strict=True):
        seen[group].add(name)
    return {
        "leaked_groups": sum(len(found) > 1 for found in seen.values()),
        "straddling_groups": [{"group": key, "splits": dict(found)}
                              for key, found in sorted(by_group.items()) if len(found) > 1],
        "duplicates_across_splits": [{"sha256": digest, "splits": dict(found)}
                                     for digest, found in sorted(by_digest.items())
                                     if len(found) > 1],
    }


def group_counts(splits: Mapping[str, Sequence[Row]], keys: Mapping[str, str]) -> dict[str, int]:
    """How many groups each split holds (a straddling group counts in each)."""
    return {name: len({keys[row["path"]] for row in members}) for name, members in splits.items()}


def split_manifest(
    rows: Sequence[Row], seed: int, params: SplitParams, root: Path, manifest: Path | str = "manifest"
) -> tuple[dict[str, list[Row]], dict[str, object]]:
    """The split of the manifest's rows and its leakage report (``leakage.json``).

    Without ``split.group`` this is :func:`pipeline.data.split.split_rows`, unchanged; the
    report then checks that no identical images straddle splits.
    """
    if params.group.by == "none":
        splits = split_rows(rows, seed, params)
        keys = {row["path"]: f"sha256:{row['sha256']}" for row in rows}
        ungrouped: list[str] = []
        joined: list[list[str]] = []
    else:
        found, ungrouped = group_keys(rows, params, root, manifest)
        groups, joined = join_duplicates(rows, found)
        splits = split_groups(rows, groups, seed, params)
        keys = {row["path"]: key for row, key in zip(rows, found, strict=True)}
    report = {
        "group_by": params.group.by,
        "groups": len(set(keys.values())),
        "groups_per_split": group_counts(splits, keys),
        **leakage(splits, keys),
        "joined_by_identical_images": joined,
        "ungrouped": ungrouped,
    }
    return splits, report
