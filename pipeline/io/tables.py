"""CSV tables (manifest, splits, reports): read as dictionaries, written atomically."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from pathlib import Path

from pipeline.io import atomic


def csv_text(fieldnames: list[str], rows: Iterable[Mapping[str, object]]) -> str:
    """``rows`` under a header of ``fieldnames`` as CSV text (the csv module quotes as needed)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fieldnames, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_csv(target: str | Path, fieldnames: list[str], rows: Iterable[Mapping[str, object]]) -> None:
    """Atomically write ``rows`` under a header of ``fieldnames``."""
    atomic.write_text(target, csv_text(fieldnames, rows))


def read_csv(path: str | Path) -> list[dict[str, str]]:
    """The rows of a CSV file as dictionaries of strings."""
    with Path(path).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))
