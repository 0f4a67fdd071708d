"""The ingest stage's work: check every candidate image and write the manifest and reports."""

from __future__ import annotations

import functools
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipeline.config import IngestParams
from pipeline.data.parallel import ordered_map
from pipeline.data.sources import Candidate, Skip, discover, display_path
from pipeline.io import atomic
from pipeline.io.errors import InputError
from pipeline.io.images import ImageInfo, RejectedImage, inspect
from pipeline.io.tables import write_csv

MANIFEST_FIELDS = ["path", "label", "sha256", "bytes", "width", "height", "mode", "format",
                   "source_split"]


class TooManyRejects(RuntimeError):
    """More images were rejected than ``ingest.max_reject_fraction`` allows."""


@dataclass
class IngestResult:
    """Accepted rows (manifest order), rejects, and the duplicate groups found by content hash."""

    rows: list[dict[str, object]]
    rejects: list[Skip]
    duplicates: dict[str, list[dict[str, object]]] = field(default_factory=dict)

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


def ingest(params: IngestParams) -> IngestResult:
    """Discover, hash and decode every candidate; never raise for a bad image, list it instead."""
    candidates, rejects = discover(params.source, params.extensions)
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
            rows.append(_row(cand, info))
    groups: dict[str, list[dict[str, object]]] = defaultdict(list)
    for row in rows:
        groups[str(row["sha256"])].append(row)
    duplicates = {digest: group for digest, group in groups.items() if len(group) > 1}
    return IngestResult(rows, sorted(rejects, key=lambda r: str(r.path)), duplicates)


def _row(cand: Candidate, info: ImageInfo) -> dict[str, object]:
    return {"path": display_path(cand.path), "label": cand.label, **asdict(info),
            "source_split": cand.split}


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


def write_manifest(result: IngestResult, out_dir: Path) -> None:
    """``manifest.csv`` (one row per accepted image) and ``classes.json`` (index order)."""
    write_csv(out_dir / "manifest.csv", MANIFEST_FIELDS, result.rows)
    atomic.write_json(out_dir / "classes.json", result.classes)


def write_reports(result: IngestResult, report_dir: Path) -> None:
    """``rejects.csv``, ``duplicates.csv``, ``summary.json`` (headline counts, DVC metrics) and
    ``report.json`` (rejects by reason, images per class) for a person (and git) to read."""
    rejects = [
        {"path": display_path(r.path), "reason": r.reason, "detail": r.detail,
         "counted": int(r.counted)}
        for r in result.rejects
    ]
    write_csv(report_dir / "rejects.csv", ["path", "reason", "detail", "counted"], rejects)
    dupes = [
        {"sha256": digest, "path": row["path"], "label": row["label"],
         "labels_conflict": int(len({r["label"] for r in group}) > 1)}
        for digest, group in sorted(result.duplicates.items())
        for row in group
    ]
    write_csv(report_dir / "duplicates.csv", ["sha256", "path", "label", "labels_conflict"], dupes)
    atomic.write_json(report_dir / "summary.json", result.summary())
    atomic.write_json(report_dir / "report.json", result.report())
