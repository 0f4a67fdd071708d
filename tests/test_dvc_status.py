"""Editing a module makes ``dvc status`` flag exactly the stages whose deps hold it.

``test_deps.py`` checks statically that every module a stage can import lies inside its deps.
This is the same promise seen from DVC's side: in a copy of the repository whose ``dvc.lock``
matches the code (placeholder outputs, then ``dvc commit``), ``dvc status`` is empty; after an
edit it lists, as a changed dep, every stage whose ``dvc.yaml`` deps cover the edited file, and
nothing else. Every stage that can import the module must be among them (a stage DVC misses
would keep a stale result). Deps are folders, so a stage may also re-run for a module in its
folder that it never imports: that costs a run, not a wrong result.

DVC runs in this process (``tests.repo_copy.dvc``: its CLI entry point, as ``dvc status --json``
would print), all cases against one copy, each edit undone after its case.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests import test_deps
from tests.repo_copy import copy_working_tree, dvc

pytestmark = pytest.mark.slow

#: Suffixes of outputs and deps that are files; any other missing path becomes a folder.
FILE_SUFFIXES = {".csv", ".json", ".png", ".txt", ".md", ".h5", ".joblib", ".keras", ".tsv", ".yaml"}


def dvc_ok(repo: Path, *args: str) -> str:
    """The output of ``dvc ARGS`` in ``repo``; the test fails if DVC exits non-zero."""
    done = dvc(repo, *args)
    assert done.returncode == 0, f"dvc {' '.join(args)} exited {done.returncode}\n{done.stdout}{done.stderr}"
    return done.stdout


def dvc_status(repo: Path) -> dict:
    return json.loads(dvc_ok(repo, "status", "--json") or "{}")


def missing_paths(status: dict) -> set[str]:
    """Deps and outs ``dvc status`` reports as deleted."""
    out = set()
    for entries in status.values():
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            for kind in ("changed deps", "changed outs"):
                out.update(p for p, state in entry.get(kind, {}).items() if state == "deleted")
    return out


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy whose ``dvc.lock`` matches its code: ``dvc status`` is empty."""
    dest = copy_working_tree(tmp_path_factory.mktemp("status") / "repo")
    (dest / "dvc.lock").unlink(missing_ok=True)  # the committed lock may predate the code
    for rel in sorted(missing_paths(dvc_status(dest))):
        path = dest / rel
        if path.suffix in FILE_SUFFIXES:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("placeholder\n")
        else:
            path.mkdir(parents=True, exist_ok=True)
            (path / "placeholder").write_text("placeholder\n")
    dvc_ok(dest, "commit", "--force", "--quiet")
    status = dvc_status(dest)
    assert status == {}, f"the copy is not up to date after dvc commit: {status}"
    return dest


@pytest.fixture(scope="module")
def instances(repo: Path) -> dict[str, str]:
    """Every stage name ``dvc status`` uses (``evaluate@train``) -> its ``dvc.yaml`` name."""
    return {name: name.split("@")[0] for name in dvc_ok(repo, "stage", "list", "--name-only").split()}


@pytest.fixture(scope="module")
def imports(repo: Path) -> dict[str, set[Path]]:
    """Each ``dvc.yaml`` stage -> the files of every module it can import (``test_deps.reachable``).

    The stages share most of their modules, so each module's imports are parsed once for all of
    them (``functools.cache`` around ``test_deps.imported_names`` while this runs).
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(test_deps, "imported_names", functools.cache(test_deps.imported_names))
        return {base: {p.resolve() for p in test_deps.reachable(entry, repo).values()}
                for base, (entry, _) in test_deps.stage_specs(repo).items()}


def covering(path: str, deps: list[str]) -> list[str]:
    """The deps (files or folders) that hold ``path``."""
    parents = Path(path).parents
    return [d for d in deps if "${" not in d and (Path(d) == Path(path) or Path(d) in parents)]


def changed_code_deps(status: dict) -> set[tuple[str, str]]:
    """(stage, dep) for every changed dep; anything else in the status fails the test."""
    out = set()
    for stage, entries in status.items():
        for entry in entries:
            assert isinstance(entry, dict) and set(entry) == {"changed deps"}, (
                f"{stage}: more than a changed dep: {entry}")
            for dep, state in entry["changed deps"].items():
                assert state == "modified", f"{stage}: dep {dep} is {state}"
                out.add((stage, dep))
    return out


def flip_first_bool_default(text: str) -> str:
    """A schema default changed: the first ``Field(True`` / ``Field(False`` flipped."""
    new, count = re.subn(r"Field\(\s*(True|False)\b",
                         lambda m: m.group(0).replace(m.group(1), str(m.group(1) != "True")),
                         text, count=1)
    assert count == 1, "no Field(True/False, ...) default to change"
    return new


def append_comment(text: str) -> str:
    return text + "\n# edited by tests/test_dvc_status.py\n"


#: (file, how it is edited; None creates it). Each runs against the same copy, restored after.
EDITS: dict[str, tuple[str, Callable[[str], str] | None]] = {
    "schema-default": ("pipeline/config/training.py", flip_first_bool_default),
    "dcgan-module": ("pipeline/generative/dcgan.py", append_comment),
    "stages-common": ("stages/common.py", append_comment),
    "foreach-script": ("stages/evaluate.py", append_comment),
    "new-module": ("pipeline/generative/added_by_test.py", None),
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_an_edit_flags_exactly_the_stages_that_depend_on_it(repo: Path, instances: dict[str, str],
                                                            imports: dict[str, set[Path]],
                                                            edit: str) -> None:
    rel, change = EDITS[edit]
    path = repo / rel
    original = path.read_bytes() if path.exists() else None
    if change is None:
        assert original is None, f"{rel} already exists"
        path.write_text('"""A module added by a test."""\n')
    else:
        assert original is not None, f"{rel} does not exist"
        path.write_text(change(original.decode()))
    try:
        changed = changed_code_deps(dvc_status(repo))
    finally:
        if original is None:
            path.unlink()
        else:
            path.write_bytes(original)

    specs = test_deps.stage_specs(repo)
    expected = {(name, dep) for name, base in instances.items() for dep in covering(rel, specs[base][1])}
    assert expected, f"no stage depends on {rel}: the edit shows nothing"
    assert changed == expected, (f"after editing {rel}\n  dvc status flags: {sorted(changed)}\n"
                                 f"  dvc.yaml deps say: {sorted(expected)}")

    importers = {base for base, files in imports.items() if path.resolve() in files}
    flagged = {instances[name] for name, _ in changed}
    assert importers <= flagged, f"{rel}: stages that import it but DVC does not flag: {importers - flagged}"
    if rel == "stages/common.py":
        assert {name for name, _ in changed} == set(instances)  # every stage, foreach ones included
    if rel == "pipeline/generative/dcgan.py":
        assert {"dcgan", "gan_score"} <= flagged and "ingest" not in flagged
    if rel == "stages/evaluate.py":
        assert {name for name, _ in changed} == {n for n, b in instances.items() if b == "evaluate"}

    assert dvc_status(repo) == {}, f"restoring {rel} did not bring the copy back up to date"


def test_bytecode_beside_the_code_is_no_change(repo: Path) -> None:
    """``.dvcignore`` keeps ``__pycache__`` out of the folder deps' hashes."""
    cache = repo / "pipeline" / "generative" / "__pycache__"
    assert not cache.exists()
    cache.mkdir()
    (cache / "dcgan.cpython-311.pyc").write_bytes(b"\x00bytecode")
    (repo / "stages" / "common.pyc").write_bytes(b"\x00bytecode")
    try:
        assert dvc_status(repo) == {}
    finally:
        shutil.rmtree(cache)
        (repo / "stages" / "common.pyc").unlink()
