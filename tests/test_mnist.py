"""MNIST's IDX files: reading, export to PNG + manifest, and the official split kept by `split`."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import IngestParams, SourceParams, SplitParams
from pipeline.data.idx import export_mnist, read_idx
from pipeline.data.ingest import ingest
from pipeline.data.split import split_rows
from tests.conftest import SHARED


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def tiny_mnist(folder: Path, n_train: int = 30, n_test: int = 10) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    return folder


def test_read_idx_round_trip(tmp_path: Path) -> None:
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.gz", array)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.gz"), array)
    (tmp_path / "bad").write_bytes(b"\x00\x00\x0d\x01" + (5).to_bytes(4, "big"))
    with pytest.raises(ValueError, match="not an unsigned-byte IDX"):
        read_idx(tmp_path / "bad")


def test_export_keeps_the_official_split_through_ingest_and_split(tmp_path: Path) -> None:
    out = tmp_path / "mnist"
    assert export_mnist(tiny_mnist(tmp_path / "idx"), out) == 40
    result = ingest(IngestParams(source=SourceParams(kind="csv", path=str(out)), channels=1,
                                 workers=1))
    assert len(result.rows) == 40 and not [r for r in result.rejects if r.counted]
    groups = split_rows(result.rows, seed=0, params=SplitParams(val=0.2, test=0.3, train_dev=0.0))
    assert len(groups["test"]) == 10
    assert all("/test/" in str(r["path"]) for r in groups["test"])
    assert len(groups["train"]) + len(groups["val"]) == 30


def test_source_split_column_is_validated(tmp_path: Path) -> None:
    out = tmp_path / "m"
    export_mnist(tiny_mnist(tmp_path / "idx", 2, 1), out)
    text = (out / "manifest.csv").read_text().replace(",test\n", ",holdout\n")
    (out / "manifest.csv").write_text(text)
    result = ingest(IngestParams(source=SourceParams(kind="csv", path=str(out / "manifest.csv")),
                                 workers=1))
    assert [r.reason for r in result.rejects] == ["bad-row"]


def test_shared_mnist_reads_with_published_counts() -> None:
    folder = SHARED / "data" / "mnist"
    if not folder.is_dir():
        pytest.skip("../shared/data/mnist is not present")
    labels = read_idx(folder / "t10k-labels-idx1-ubyte.gz")
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    images = read_idx(folder / "t10k-images-idx3-ubyte.gz")
    assert images.shape == (10000, 28, 28)
    with gzip.open(folder / "t10k-images-idx3-ubyte.gz") as handle:
        raw = handle.read()
    assert hashlib.md5(raw).hexdigest() == "2646ac647ad5339dbf082846283269ea"
