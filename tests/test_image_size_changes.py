"""Image-size params reach the outputs through DVC's run cache (treeverse/dvc#10296).

DVC leaves any key named ``size`` or ``nfiles`` out of its run-cache key. While the params were
``hdf5.size`` and friends, changing one made `dvc repro` and `dvc exp run` say "Stage 'hdf5' is
cached - skipping run", check the OLD outputs out and write the NEW value into dvc.lock, after
which `dvc status` was clean. The keys are now ``hdf5.image_size``, ``backbone.image_size``,
``dcgan.image_size`` and ``srcnn_data.patch_size``; in a temporary copy of the project each is
changed A -> B -> A, and after every change its stage's outputs, dvc.lock and `dvc status` must
agree with the new value: a fresh value must run the stage, a returning one must come back from
the run cache (where the stage uses one: dcgan's persistent outputs keep it out, so it runs).

What this proves, and why it costs under half of what it did:

- ``backbone.image_size``, ``dcgan.image_size`` and ``srcnn_data.patch_size`` change together in
  one `dvc repro extract_features dcgan srcnn_data`. Their stages share no param and none feeds
  another (hdf5 stays as it is), so each stage's run-cache lookup sees its own key's change
  alone, exactly as when the keys were changed one at a time.
- ``hdf5.image_size`` changes on its own (its output feeds extract_features and dcgan, whose
  changed deps would run them whatever their run-cache key), by `dvc repro` and then A -> C -> A
  by `dvc exp run -S`. `dvc exp run` writes -S into params.yaml and reproduces through the same
  run-cache lookup as `dvc repro`, so one key proves that route for all; hdf5's, which runs no
  Keras, is the cheap one.
- The data is 32 small images beside the repository and one photo for SRCNN, not the embedded
  digits (whose stage no longer runs); the DCGAN has one block each side. The copy's dvc.yaml
  keeps the stages these reproduce, as they are (DVC parses it whole in every command).

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

from tests.conftest import copy_project, keep_stages, make_class_folders, run, set_dotted, write_image

pytestmark = pytest.mark.slow

DVC = [sys.executable, "-m", "dvc"]
SPLITS = ("train", "val", "test", "train_dev")
#: The stages the image-size params feed; the fixture reproduces these (and their upstream) only.
STAGES = ("hdf5", "extract_features", "dcgan", "srcnn_data")
#: Those and their upstream: the copy's dvc.yaml keeps these alone.
KEPT = ("ingest", "split", *STAGES)


def set_params(root: Path, values: dict[str, object]) -> None:
    """Write dotted ``values`` (``section.key``: value) into ``root/params.yaml``."""
    params = set_dotted(yaml.safe_load((root / "params.yaml").read_text()), values)
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
    check: Callable[[Path, object], None]


HDF5 = Case("hdf5.image_size", "hdf5", [10, 10], [14, 12], check_hdf5)
#: hdf5.image_size, C: through `dvc exp run -S`.
HDF5_C = [12, 16]
#: Keys whose stages are independent of each other: changed together in one `dvc repro`.
TOGETHER = [
    Case("backbone.image_size", "extract_features", [32, 32], [64, 32], check_features),
    Case("dcgan.image_size", "dcgan", [8, 8], [12, 8], check_dcgan),
    Case("srcnn_data.patch_size", "srcnn_data", 16, 24, check_srcnn),
]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project on 32 small images beside it (two classes; every split holds some), every
    image-size param at its case's ``a``, the four stages reproduced and committed. Small:
    10x10 images; MobileNet without weights; a one-epoch DCGAN of one block each side on the
    train split; SRCNN sub-images every 8 pixels of one 64x64 photo."""
    base = tmp_path_factory.mktemp("image_size")
    make_class_folders(base / "images", {"a": 16, "b": 16})
    write_image(base / "photos/photo.png", 0, (64, 64))
    root = copy_project(base / "repo")
    keep_stages(root, *KEPT)
    set_params(root, {
        **{case.key: case.a for case in (HDF5, *TOGETHER)},
        "ingest.source.path": str(base / "images"), "ingest.workers": 1, "hdf5.workers": 1,
        "backbone.weights": "none", "extract_features.pooling": "flatten",
        "extract_features.batch_size": 256,
        "dcgan.generator_filters": [4], "dcgan.discriminator_filters": [4], "dcgan.latent_dim": 4,
        "dcgan.grid": 2, "dcgan.epochs": 1, "dcgan.batch_size": 64,
        "srcnn_data.images": str(base / "photos"), "srcnn_data.glob": "*.png",
        "srcnn_data.stride": 8,
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


def assert_applied(root: Path, cases: list[Case], values: list[object], out: str,
                   fresh: bool) -> None:
    """After changing each case's key to its value: params, lock and outputs agree, DVC sees
    nothing to do, and each stage ran (a ``fresh`` value) or came back from the run cache."""
    for case, value in zip(cases, values, strict=True):
        assert param(root, case.key) == value
        assert locked(root, case.stage, case.key) == value, out
        case.check(root, value)
        if fresh:  # a value never seen must run (under the bug DVC said "is cached" here)
            assert f"Running stage '{case.stage}'" in out, out
        elif uses_run_cache(root, case.stage):  # the right entry was restored, not the newest
            assert f"Stage '{case.stage}' is cached - skipping run" in out, out
        else:  # persistent outputs: no run cache, so a returning value runs again
            assert f"Running stage '{case.stage}'" in out, out
    assert status(root, *(case.stage for case in cases)) == {}


def test_three_independent_image_sizes_changed_twice_by_one_repro(repo: Path) -> None:
    """backbone, dcgan and srcnn_data: A -> B (each stage runs) -> A (the run cache holds both
    now; A's entry must come back), each time all three in one `dvc repro`."""
    stages = [case.stage for case in TOGETHER]
    for case in TOGETHER:
        case.check(repo, case.a)
    for values, fresh in (([case.b for case in TOGETHER], True),
                          ([case.a for case in TOGETHER], False)):
        set_params(repo, {case.key: value for case, value in zip(TOGETHER, values, strict=True)})
        out = run([*DVC, "repro", *stages], repo).stdout
        assert "Stage 'hdf5' didn't change, skipping" in out, out  # only the three keys moved
        assert_applied(repo, TOGETHER, values, out, fresh)
    assert status(repo, *STAGES) == {}


def test_hdf5_image_size_changed_by_repro_and_by_exp_run(repo: Path) -> None:
    """hdf5: A -> B -> A by `dvc repro`, then A -> C -> A by `dvc exp run -S` in the workspace
    (no --temp, so its results are checked out here). Back at A, the stages downstream of hdf5
    (not rerun) agree with their locks again: A's restored output is the very same data."""
    HDF5.check(repo, HDF5.a)
    for value, fresh in ((HDF5.b, True), (HDF5.a, False)):
        set_params(repo, {HDF5.key: value})
        out = run([*DVC, "repro", HDF5.stage], repo).stdout
        assert_applied(repo, [HDF5], [value], out, fresh)
    try:
        for value, fresh in ((HDF5_C, True), (HDF5.a, False)):
            out = run([*DVC, "exp", "run", HDF5.stage, "-S", f"{HDF5.key}={json.dumps(value)}"],
                      repo).stdout
            assert_applied(repo, [HDF5], [value], out, fresh)
    finally:
        run([*DVC, "exp", "remove", "--all-commits"], repo, check=False)
    assert status(repo, *STAGES) == {}
