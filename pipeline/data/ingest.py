"""The ingest stage's work: check every candidate image and write the manifest and reports.

File names: the manifest, the split CSVs and the HDF5 ``paths`` dataset are UTF-8 text, so a
file whose name is not valid UTF-8 (Python holds its odd bytes as surrogate escapes) cannot be
stored losslessly and is rejected as ``undecodable-name``; the reports show such a name with
``\\xNN`` for each byte that is not UTF-8 (:func:`printable`). Every other name, commas,
quotes and newlines included, is kept as it is (the csv module quotes it).

Identical images (same SHA-256) with different labels are rejected as ``conflicting-labels``
(``ingest.duplicate_labels: reject``) or all but the first are (``keep_first``).

The manifest, ``classes.json`` and the four reports are written as one set
(:func:`write_outputs`): a failure anywhere leaves the previous set as it was.
"""

from __future__ import annotations

import functools
import json
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipeline.config import IngestParams
from pipeline.data.parallel import ordered_map
from pipeline.data.sources import Candidate, Skip, discover, display_path
from pipeline.io import atomic
from pipeline.io.errors import InputError
from pipeline.io.images import ImageInfo, RejectedImage, inspect
from pipeline.io.tables import csv_text

MANIFEST_FIELDS = ["path", "label", "sha256", "bytes", "width", "height", "mode", "format",
                   "source_split"]
#: The manifest column holding each image's group, present only with ``split.group.column``.
GROUP_FIELD = "group"
REJECT_FIELDS = ["path", "reason", "detail", "counted"]
DUPLICATE_FIELDS = ["sha256", "path", "label", "labels_conflict"]
#: How many other copies a conflicting-labels reject names in its detail.
_SHOWN_COPIES = 3


class TooManyRejects(RuntimeError):
    """More images were rejected than ``ingest.max_reject_fraction`` allows."""


@dataclass
class IngestResult:
    """Accepted rows (manifest order), rejects, and the duplicate groups found by content hash."""

    rows: list[dict[str, object]]
    rejects: list[Skip]
    duplicates: dict[str, list[dict[str, object]]] = field(default_factory=dict)
    grouped: bool = False  # the rows carry a ``group`` (``split.group.column``)

    @property
    def fields(self) -> list[str]:
        """The manifest's columns."""
        return [*MANIFEST_FIELDS, GROUP_FIELD] if self.grouped else MANIFEST_FIELDS

    @property
    def classes(self) -> list[str]:
        return sorted({str(r["label"]) for r in self.rows})

    def summary(self) -> dict[str, object]:
        """The headline counts (``summary.json``, DVC metrics); per-class and per-reason
        counts are in :meth:`report`."""
        counted = [r for r in self.rejects if r.counted]
        candidates = len(self.rows) + len(counted)
        return {
            "candidates": candidates,
            "accepted": len(self.rows),
            "rejected": len(counted),
            "skipped_not_images": len(self.rejects) - len(counted),
            "reject_fraction": round(len(counted) / candidates, 6) if candidates else 0.0,
            "duplicate_groups": len(self.duplicates),
            "duplicate_label_conflicts": sum(
                len({r["label"] for r in group}) > 1 for group in self.duplicates.values()
            ),
            "classes": len(self.classes),
        }

    def report(self) -> dict[str, object]:
        """The detail behind :meth:`summary` (``report.json``, not DVC metrics)."""
        counted = [r for r in self.rejects if r.counted]
        return {
            "rejects_by_reason": dict(sorted(Counter(r.reason for r in counted).items())),
            "images_per_class": dict(sorted(Counter(str(r["label"]) for r in self.rows).items())),
        }


def _check(max_pixels: int, path: Path) -> ImageInfo | RejectedImage:
    try:
        return inspect(path, max_pixels)
    except RejectedImage as exc:
        return exc
    except OSError as exc:
        return RejectedImage("unreadable", exc.strerror or str(exc))


def _decodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # surrogate escapes: bytes of the name that are not UTF-8
        return False
    return True


def printable(text: str) -> str:
    """``text`` as UTF-8 text: each byte of a file name that is not UTF-8 shown as ``\\xNN``."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that is no escaped byte
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def _storable(candidates: list[Candidate]) -> tuple[list[Candidate], list[Skip]]:
    keep, skipped = [], []
    for cand in candidates:
        if _decodable(display_path(cand.path)) and _decodable(cand.label):
            keep.append(cand)
        else:
            skipped.append(Skip(cand.path, "undecodable-name",
                                "file name is not valid UTF-8 (shown with \\x escapes)"))
    return keep, skipped


def _resolve_conflicts(
    rows: list[dict[str, object]], duplicates: dict[str, list[dict[str, object]]], policy: str
) -> tuple[list[dict[str, object]], list[Skip]]:
    """Drop the copies of an image that carry different labels (all, or all but the first's)."""
    dropped: dict[int, Skip] = {}
    for digest, group in duplicates.items():
        if len({r["label"] for r in group}) < 2:
            continue
        first = group[0]
        for row in group:
            if policy == "keep_first":
                if row["label"] == first["label"]:
                    continue
                detail = (f"labelled {row['label']!r}; the identical {first['path']} is labelled "
                          f"{first['label']!r} and kept (ingest.duplicate_labels: keep_first)")
            else:
                others = [r for r in group if r is not row]
                shown = ", ".join(f"{r['label']!r} at {r['path']}" for r in others[:_SHOWN_COPIES])
                more = len(others) - _SHOWN_COPIES
                detail = (f"labelled {row['label']!r}; the same image (sha256 {digest[:12]}) is "
                          f"labelled {shown}" + (f" and {more} more" if more > 0 else ""))
            dropped[id(row)] = Skip(Path(str(row["path"])), "conflicting-labels", detail)
    return [r for r in rows if id(r) not in dropped], list(dropped.values())


def ingest(params: IngestParams, group_column: str = "") -> IngestResult:
    """Discover, hash and decode every candidate; never raise for a bad image, list it instead.
    ``group_column`` (``split.group.column``, kind csv) is carried into the manifest as ``group``."""
    candidates, rejects = discover(params.source, params.extensions, group_column)
    candidates, unnamed = _storable(candidates)
    rejects += unnamed
    check = functools.partial(_check, params.max_pixels)
    rows: list[dict[str, object]] = []
    results = ordered_map(
        check, (c.path for c in candidates), total=len(candidates), workers=params.workers,
        desc="ingest",
    )
    for cand, info in zip(candidates, results, strict=True):
        if isinstance(info, RejectedImage):
            rejects.append(Skip(cand.path, info.reason, info.detail))
        else:
            rows.append(_row(cand, info, bool(group_column)))
    groups: dict[str, list[dict[str, object]]] = defaultdict(list)
    for row in rows:
        groups[str(row["sha256"])].append(row)
    duplicates = {digest: group for digest, group in groups.items() if len(group) > 1}
    rows, conflicting = _resolve_conflicts(rows, duplicates, params.duplicate_labels)
    rejects += conflicting
    return IngestResult(rows, sorted(rejects, key=lambda r: str(r.path)), duplicates,
                        grouped=bool(group_column))


def _row(cand: Candidate, info: ImageInfo, grouped: bool = False) -> dict[str, object]:
    row = {"path": display_path(cand.path), "label": cand.label, **asdict(info),
           "source_split": cand.split}
    return {**row, GROUP_FIELD: cand.group} if grouped else row


def check_rejects(result: IngestResult, params: IngestParams) -> None:
    """Raise :class:`TooManyRejects`, or :class:`InputError` for fewer than two classes."""
    summary = result.summary()
    if summary["reject_fraction"] > params.max_reject_fraction:
        raise TooManyRejects(
            f"{summary['rejected']} of {summary['candidates']} images rejected "
            f"({summary['reject_fraction']:.1%}), more than ingest.max_reject_fraction="
            f"{params.max_reject_fraction:g}; see the rejects report for each file and reason"
        )
    if len(result.classes) < 2:
        raise InputError(
            f"found {len(result.classes)} class(es) in {params.source.path}; need at least 2 "
            f"(check ingest.source.kind and ingest.source.pattern)"
        )


def _json(data: object) -> str:
    return json.dumps(data, indent=2, sort_keys=False) + "\n"


def manifest_files(result: IngestResult, out_dir: Path) -> dict[Path, str]:
    """``manifest.csv`` (one row per accepted image) and ``classes.json`` (index order)."""
    return {out_dir / "manifest.csv": csv_text(result.fields, result.rows),
            out_dir / "classes.json": _json(result.classes)}


def report_files(result: IngestResult, report_dir: Path) -> dict[Path, str]:
    """``rejects.csv``, ``duplicates.csv`` (every group of identical images, conflicting
    labels flagged), ``summary.json`` (headline counts, DVC metrics) and ``report.json``
    (rejects by reason, images per class) for a person (and git) to read."""
    rejects = [
        {"path": printable(display_path(r.path)), "reason": r.reason,
         "detail": printable(r.detail), "counted": int(r.counted)}
        for r in result.rejects
    ]
    dupes = [
        {"sha256": digest, "path": row["path"], "label": row["label"],
         "labels_conflict": int(len({r["label"] for r in group}) > 1)}
        for digest, group in sorted(result.duplicates.items())
        for row in group
    ]
    return {report_dir / "rejects.csv": csv_text(REJECT_FIELDS, rejects),
            report_dir / "duplicates.csv": csv_text(DUPLICATE_FIELDS, dupes),
            report_dir / "summary.json": _json(result.summary()),
            report_dir / "report.json": _json(result.report())}


def _write_set(files: dict[Path, str], remove: list[Path] | tuple[()] = ()) -> None:
    """Write ``files`` (path -> text) and delete ``remove`` as one set (:func:`atomic.atomic_paths`)."""
    with atomic.atomic_paths(list(files), remove) as temps:
        for tmp, text in zip(temps, files.values(), strict=True):
            tmp.write_text(text, encoding="utf-8")


def write_outputs(result: IngestResult, out_dir: Path, report_dir: Path,
                  manifest: bool = True) -> None:
    """The manifest and the reports as one set: all replaced, or (on any error) none.

    ``manifest=False`` (a refused run: too many rejects) writes the reports and removes the
    previous ``manifest.csv`` and ``classes.json``, so no manifest stands beside reports of
    another run.
    """
    files = report_files(result, report_dir)
    if manifest:
        _write_set({**manifest_files(result, out_dir), **files})
    else:
        _write_set(files, [out_dir / "manifest.csv", out_dir / "classes.json"])


def write_manifest(result: IngestResult, out_dir: Path) -> None:
    """Only the manifest part of :func:`write_outputs`."""
    _write_set(manifest_files(result, out_dir))


def write_reports(result: IngestResult, report_dir: Path) -> None:
    """Only the reports part of :func:`write_outputs`."""
    _write_set(report_files(result, report_dir))
