"""Image-size params reach the outputs through DVC's run cache (treeverse/dvc#10296).

DVC leaves any key named ``size`` or ``nfiles`` out of its run-cache key. While the params were
``hdf5.size`` and friends, changing one made `dvc repro` and `dvc exp run` say "Stage 'hdf5' is
cached - skipping run", check the OLD outputs out and write the NEW value into dvc.lock, after
which `dvc status` was clean. The keys are now ``hdf5.image_size``, ``backbone.image_size``,
``dcgan.image_size`` and ``srcnn_data.patch_size``. Here each is changed A -> B -> A with
`dvc repro` and A -> C -> A with `dvc exp run -S` in a temporary copy of the project, and after
every change the outputs' shapes, dvc.lock and `dvc status` must all agree with the new value.
A first test shows the run cache really is blind to a key named ``size`` in this DVC version.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import pytest
import yaml

from tests.conftest import copy_project, run

pytestmark = pytest.mark.slow

DVC = [sys.executable, "-m", "dvc"]
SPLITS = ("train", "val", "test", "train_dev")
#: The stages the image-size params feed; the fixture reproduces these (and their upstream) only.
STAGES = ("hdf5", "extract_features", "dcgan", "srcnn_data")


def set_params(root: Path, values: dict[str, object]) -> None:
    """Write dotted ``values`` (``section.key``: value) into ``root/params.yaml``."""
    params = yaml.safe_load((root / "params.yaml").read_text())
    for dotted, value in values.items():
        *parents, name = dotted.split(".")
        node = params
        for part in parents:
            node = node[part]
        node[name] = value
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def param(root: Path, dotted: str) -> object:
    node = yaml.safe_load((root / "params.yaml").read_text())
    for part in dotted.split("."):
        node = node[part]
    return node


def locked(root: Path, stage: str, dotted: str) -> object:
    """The value dvc.lock records for ``dotted`` in ``stage`` (params listed by key or section)."""
    node = yaml.safe_load((root / "dvc.lock").read_text())["stages"][stage]["params"]["params.yaml"]
    if dotted in node:
        return node[dotted]
    for part in dotted.split("."):
        node = node[part]
    return node


def uses_run_cache(root: Path, stage: str) -> bool:
    """DVC neither saves nor restores a run-cache entry for a stage with a persistent output."""
    outs = yaml.safe_load((root / "dvc.yaml").read_text())["stages"][stage]["outs"]
    return not any(isinstance(out, dict) and next(iter(out.values())).get("persist")
                   for out in outs)


def status(root: Path, *stages: str) -> dict:
    return json.loads(run([*DVC, "status", "--with-deps", *stages, "--json"], root).stdout)


# What each stage's outputs say about the size they were made at.

def check_hdf5(root: Path, size: list[int]) -> None:
    for name in SPLITS:
        with h5py.File(root / "data/hdf5" / f"{name}.h5") as f:
            assert f["images"].shape[1:] == (*size, 1), (name, f["images"].shape)
            assert list(f.attrs["size"]) == size, (name, f.attrs["size"])


def check_features(root: Path, size: list[int]) -> None:
    # MobileNet downsamples by 32; flatten pooling keeps every cell of its 256-channel output.
    width = 256 * (size[0] // 32) * (size[1] // 32)
    for name in SPLITS:
        with h5py.File(root / "data/features" / f"{name}.h5") as f:
            assert list(f.attrs["size"]) == size, (name, f.attrs["size"])
            assert f["features"].shape[1] == width, (name, f["features"].shape)


def check_dcgan(root: Path, size: list[int]) -> None:
    import keras

    meta = json.loads((root / "models/dcgan/dcgan.json").read_text())
    assert meta["size"] == size, meta
    generator = keras.models.load_model(root / "models/dcgan/generator.keras", compile=False)
    assert tuple(generator.output_shape) == (None, *size, 1), generator.output_shape


def check_srcnn(root: Path, size: int) -> None:
    label = size - (9 - 1) - (1 - 1) - (5 - 1)  # valid convolutions of srcnn.kernels [9, 1, 5]
    for name in ("train", "val"):
        with h5py.File(root / "data/srcnn" / f"{name}.h5") as f:
            assert f["inputs"].shape[1:] == (size, size, 1), (name, f["inputs"].shape)
            assert f["labels"].shape[1:] == (label, label, 1), (name, f["labels"].shape)
    patches = json.loads((root / "data/srcnn/patches.json").read_text())
    assert patches["size"] == size and patches["label_size"] == label, patches


@dataclass(frozen=True)
class Case:
    key: str
    stage: str
    a: object  # the fixture's value, returned to after each change
    b: object  # through `dvc repro`
    c: object  # through `dvc exp run -S`
    check: Callable[[Path, object], None]


CASES = [
    Case("hdf5.image_size", "hdf5", [10, 10], [14, 12], [12, 16], check_hdf5),
    Case("backbone.image_size", "extract_features", [32, 32], [64, 32], [64, 64], check_features),
    Case("dcgan.image_size", "dcgan", [8, 8], [12, 8], [8, 16], check_dcgan),
    Case("srcnn_data.patch_size", "srcnn_data", 16, 24, 20, check_srcnn),
]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project on the embedded digits, every image-size param at its case's ``a``, the four
    stages reproduced and committed. Small: 10x10 images; MobileNet without weights; a one-epoch
    DCGAN on the val split; SRCNN sub-images every 40 pixels."""
    root = copy_project(tmp_path_factory.mktemp("image_size") / "repo")
    set_params(root, {
        **{case.key: case.a for case in CASES},
        "backbone.weights": "none", "extract_features.pooling": "flatten",
        "extract_features.batch_size": 256,
        "dcgan.split": "val", "dcgan.generator_filters": [8, 4],
        "dcgan.discriminator_filters": [4, 8], "dcgan.latent_dim": 8, "dcgan.grid": 2,
        "dcgan.epochs": 1, "dcgan.batch_size": 64,
        "srcnn_data.stride": 40,
    })
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "pipeline"], root)
    run([*DVC, "repro", *STAGES], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "first run"], root)
    return root


def write_demo(root: Path) -> None:
    """Two one-line stages that copy a param into a file, each listing its params section whole
    as dvc.yaml does (dvc.lock then nests the key under the section): ``blind.size`` and
    ``seen.width``; nothing but the key's name differs."""
    (root / "write.py").write_text(
        "import sys\nimport yaml\n\nsection, key = sys.argv[1:]\n"
        "value = yaml.safe_load(open('params.yaml'))[section][key]\n"
        "open(f'{section}.txt', 'w').write(str(value))\n")
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {
        section: {"cmd": f"python write.py {section} {key}", "deps": ["write.py"],
                  "params": [section], "outs": [f"{section}.txt"]}
        for section, key in (("blind", "size"), ("seen", "width"))}}))
    (root / "params.yaml").write_text(yaml.safe_dump({"blind": {"size": 1}, "seen": {"width": 1}}))


def test_dvc_run_cache_is_blind_to_a_key_named_size(tmp_path: Path) -> None:
    """Why the keys were renamed: in this DVC, a stage whose param ``size`` changes 1 -> 2 gets
    its output for 1 back from the run cache, dvc.lock says 2 and `dvc status` is clean."""
    root = copy_project(tmp_path / "demo")
    write_demo(root)
    run([*DVC, "repro"], root)
    set_params(root, {"blind.size": 2, "seen.width": 2})
    out = run([*DVC, "repro"], root).stdout
    assert (root / "seen.txt").read_text() == "2", out  # the control: any other name works
    version = run([*DVC, "--version"], root).stdout.strip()
    if (root / "blind.txt").read_text() == "2":
        pytest.skip(f"DVC {version} now keys its run cache on params named size "
                    "(treeverse/dvc#10296 fixed): the image_size/patch_size rename is harmless, "
                    "no longer needed")
    assert "Stage 'blind' is cached - skipping run" in out, out
    assert (root / "blind.txt").read_text() == "1"  # stale
    assert locked(root, "blind", "blind.size") == 2  # yet the lock records the new value
    assert status(root) == {}  # and DVC sees nothing to do


def assert_applied(root: Path, case: Case, value: object, out: str, fresh: bool) -> None:
    """After a change to ``value``: params, lock and outputs agree, and DVC sees nothing to do."""
    assert param(root, case.key) == value
    assert locked(root, case.stage, case.key) == value, out
    case.check(root, value)
    assert status(root, case.stage) == {}
    if fresh:  # a value never seen must run (under the bug DVC said "is cached" here)
        assert f"Running stage '{case.stage}'" in out, out
    elif uses_run_cache(root, case.stage):  # the right entry was restored, not the newest
        assert f"Stage '{case.stage}' is cached - skipping run" in out, out


@pytest.mark.parametrize("case", CASES, ids=[case.key for case in CASES])
def test_changing_an_image_size_twice_reaches_outputs_and_lock(repo: Path, case: Case) -> None:
    case.check(repo, case.a)
    # dvc repro: A -> B (runs) -> A (the run cache holds both now; A's entry must come back).
    for value, fresh in ((case.b, True), (case.a, False)):
        set_params(repo, {case.key: value})
        out = run([*DVC, "repro", case.stage], repo).stdout
        assert_applied(repo, case, value, out, fresh)
    # dvc exp run -S, in the workspace (no --temp), so its results are checked out here.
    try:
        for value, fresh in ((case.c, True), (case.a, False)):
            out = run([*DVC, "exp", "run", case.stage, "-S", f"{case.key}={json.dumps(value)}"],
                      repo).stdout
            assert_applied(repo, case, value, out, fresh)
    finally:
        run([*DVC, "exp", "remove", "--all-commits"], repo, check=False)
    # Back at the fixture's values, every stage agrees with its lock (the downstream ones too).
    assert status(repo, *STAGES) == {}
