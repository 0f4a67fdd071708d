"""Shared fixtures: small real images on disk, a corpus of broken ones, and a DVC repo."""

from __future__ import annotations

import os

#: One xdist worker per core: each worker, and every process it starts, gets its share of the
#: cores for TensorFlow's, OpenMP's and BLAS's thread pools instead of one thread per core each
#: (oversubscribed pools spin: on 2 cores the e2e `dvc repro` used 13% more CPU, train_logreg's
#: L-BFGS 9x more time). Set in each worker (xdist names their count) before numpy (OpenBLAS
#: reads it when loaded) and TensorFlow; a value already in the environment is kept.
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    _share = str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))
    for _name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS",
                  "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_name, _share)

import io
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import dvc  # noqa: F401  (see below)
import numpy as np
import pytest
from PIL import Image

from tests.postgres_server import postgres_url  # noqa: F401  (a session's real server)

# `import dvc` sets up DVC's logging: colorama wraps sys.stderr and DVC's handlers keep the
# stream of that moment. Imported here, at collection, they keep the session's stream; first
# imported inside a test that captures with capsys (dvclive imports DVC when training starts),
# they kept that test's stream, closed after it, and a later in-process DVC call in the same
# worker failed with "I/O operation on closed file".

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
#: The most numbers one DVC metrics file may hold: headline numbers only, so that
#: `dvc metrics show` stays readable; the detail goes to the report.json beside it.
MAX_METRICS = 15


def numbers_in(tree: object) -> int:
    """How many numbers (booleans aside) a JSON tree holds: its columns in `dvc metrics show`."""
    if isinstance(tree, dict):
        return sum(numbers_in(value) for value in tree.values())
    if isinstance(tree, list):
        return sum(numbers_in(value) for value in tree)
    return int(isinstance(tree, int | float) and not isinstance(tree, bool))


def shipped_params_with(folder: Path, **sections: dict) -> Path:
    """The shipped params with ``sections`` merged in (key by key), written to ``folder/params.yaml``."""
    import yaml

    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    for name, values in sections.items():
        data[name].update(values)
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def set_dotted(tree: dict, values: dict[str, object]) -> dict:
    """``tree`` with each dotted key of ``values`` (``section.key``: value) set; returned."""
    for dotted, value in values.items():
        *parents, name = dotted.split(".")
        node = tree
        for part in parents:
            node = node[part]
        node[name] = value
    return tree


def write_image(path: Path, seed: int, size: tuple[int, int] = (12, 10), fmt: str = "PNG") -> Path:
    """A random RGB image, distinct per ``seed``."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, "RGB").save(path, fmt)
    return path


def make_class_folders(root: Path, classes: dict[str, int], start: int = 0) -> list[Path]:
    """``root/<label>/img_<n>.png`` with ``classes[label]`` random images each."""
    paths = []
    seed = start
    for label, count in classes.items():
        for _ in range(count):
            paths.append(write_image(root / label / f"img_{seed:05d}.png", seed))
            seed += 1
    return paths


def huge_header_png(width: int, height: int) -> bytes:
    """A valid tiny PNG whose IHDR claims ``width`` x ``height`` (a decompression bomb header)."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4:ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr:ihdr + 17])) & 0xFFFFFFFF
    data[ihdr + 17:ihdr + 21] = struct.pack(">I", crc)
    return bytes(data)


def make_bad_corpus(folder: Path) -> dict[str, str | None]:
    """Write the odd files into ``folder``; map file name to expected reject reason (None: kept)."""
    folder.mkdir(parents=True, exist_ok=True)
    expected: dict[str, str | None] = {}
    good = write_image(folder / "good.jpg", 1, (64, 48), "JPEG").read_bytes()
    expected["good.jpg"] = None
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 2])
    expected["truncated.jpg"] = "truncated"
    (folder / "zero.jpg").write_bytes(b"")
    expected["zero.jpg"] = "zero-byte"
    (folder / "text.jpg").write_text("this is not an image\n")
    expected["text.jpg"] = "not-an-image"
    Image.new("CMYK", (20, 10), (0, 255, 255, 0)).save(folder / "cmyk.jpg", "JPEG")
    expected["cmyk.jpg"] = None
    Image.new("RGBA", (20, 10), (0, 0, 255, 128)).save(folder / "rgba.png")
    expected["rgba.png"] = None
    wide = np.full((10, 20), 65535, dtype=np.uint16)
    wide[:, :10] = 257 * 100
    Image.fromarray(wide).save(folder / "sixteen.png")
    expected["sixteen.png"] = None
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    Image.new("RGB", (40, 20), (10, 200, 30)).save(folder / "rotated.jpg", "JPEG", exif=exif)
    expected["rotated.jpg"] = None
    (folder / "huge.png").write_bytes(huge_header_png(100_000, 100_000))
    expected["huge.png"] = "too-many-pixels"
    Image.new("P", (20, 10), 3).save(folder / "palette.gif")
    expected["palette.gif"] = None
    return expected


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test inside its temporary folder (stages write relative to the working dir)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def venv_env() -> dict[str, str]:
    """The environment for subprocesses: this interpreter's bin first on PATH, quiet TF."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env.pop("DVC_ROOT", None)
    return env


def run(cmd: list[str], cwd: Path, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """Run a command in ``cwd``; on failure show its output in the assertion."""
    done = subprocess.run(cmd, cwd=cwd, env=venv_env(), capture_output=True, text=True, **kwargs)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done


def invoke_training_stage(cli, params: Path, data: Path, root: Path):
    """A training stage's Click command (train, detect_train, ...) run in this process on
    ``data``; its model, dvclive and checkpoint folders go under ``root``. Click's result."""
    from click.testing import CliRunner

    return CliRunner().invoke(cli, [
        "--params", str(params), "--data", str(data), "--out", str(root / "model"),
        "--live", str(root / "live"), "--checkpoint", str(root / "ckpt")])


def copy_project(dest: Path) -> Path:
    """A fresh git + DVC repository holding this project's pipeline (code, dvc.yaml, params)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("dvc.yaml", "params.yaml", ".gitignore", ".dvcignore", "none", "imagenet"):
        shutil.copy2(ROOT / name, dest / name)
    for name in ("pipeline", "stages"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    run(["git", "init", "-q", "-b", "main"], dest)
    run(["git", "config", "user.email", "test@cvpipe"], dest)
    run(["git", "config", "user.name", "cvpipe test"], dest)
    run([sys.executable, "-m", "dvc", "init", "-q"], dest)
    run([sys.executable, "-m", "dvc", "config", "core.analytics", "false"], dest)
    return dest



def keep_stages(root: Path, *names: str, metrics: tuple[str, ...] = ()) -> None:
    """Trim ``root/dvc.yaml`` to the stages ``names``, as they are (``stage@item`` keeps one item
    of a foreach stage), and, given ``metrics`` (path prefixes), its top-level metrics files
    under them: every DVC command parses dvc.yaml whole (``dvc exp show`` reads every declared
    metrics file too), and the other stages cost each call time without bearing on a test."""
    import yaml

    pipeline = yaml.safe_load((root / "dvc.yaml").read_text())
    stages: dict = {}
    for name in names:
        stage, _, item = name.partition("@")
        if not item:
            stages[stage] = pipeline["stages"][stage]
            continue
        kept = stages.setdefault(stage, {**pipeline["stages"][stage], "foreach": {}})
        kept["foreach"][item] = pipeline["stages"][stage]["foreach"][item]
    trimmed: dict = {"stages": stages}
    if metrics:
        trimmed["metrics"] = [path for path in pipeline["metrics"] if path.startswith(metrics)]
    (root / "dvc.yaml").write_text(yaml.safe_dump(trimmed, sort_keys=False))



#: The files that take longest, longest first (each runs on one xdist worker, `--dist loadfile`;
#: wall seconds in a full `make test` on 2 cores, 2026-12-03: 383, 161, 147, 144, 95, 90, 73,
#: 68, 64, 46, 40, 39, 38, 30; every other file under 25). Collected in this order, and
#: `make test` passes `--no-loadscope-reorder` so that xdist hands them out in it (by default it
#: sorts files by their number of tests): the longest start at once, the short ones fill in at
#: the end, and the workers finish together: within 20 s of each other in two fresh-clone runs
#: (706/702/711 s, 728/747/732 s), where xdist's own order once left one worker 105 s behind.
LONGEST_FIRST = ("test_dvc_pipeline.py", "test_search_runs.py", "test_training.py",
                 "test_image_size_changes.py", "test_transfer.py", "test_distribution.py",
                 "test_outside_data.py", "test_s3_remote.py", "test_documented_commands.py",
                 "test_reverse_stages.py", "test_models.py", "test_dcgan.py", "test_dvc_status.py",
                 "test_stage_output.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest files first; within a file, the order it was written in."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
