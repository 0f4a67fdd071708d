"""Every stage's ``deps`` in ``dvc.yaml`` cover every project module the stage can import.

The imports are read from the source with :mod:`ast` (module-level and inside functions), followed
transitively through the project's own packages, with each parent package's ``__init__`` (Python
runs it first). ``importlib.import_module("a.b")`` counts as an import of ``a.b``; an f-string
such as ``f"pipeline.models.{name}"`` counts as an import of every module in ``pipeline.models``.
A module outside a stage's deps is one DVC cannot see: editing it would leave stale results.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

PACKAGES = ("pipeline", "stages")


def module_file(name: str, root: Path = ROOT) -> Path | None:
    """The file that defines module ``name`` under ``root``, or None if it is not the project's."""
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _package_modules(package: str, root: Path) -> set[str]:
    folder = root.joinpath(*package.split("."))
    return {".".join(p.relative_to(root).with_suffix("").parts) for p in folder.glob("*.py")}


def imported_names(path: Path, name: str, root: Path = ROOT) -> set[str]:
    """Dotted names ``path`` (module ``name``) imports anywhere in its body."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*parts, module] if module else parts)
            out.add(module)
            out.update(f"{module}.{alias.name}" for alias in node.names)
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module"
              and node.args):
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                out.add(arg.value)
            elif (isinstance(arg, ast.JoinedStr) and arg.values
                  and isinstance(arg.values[0], ast.Constant)):
                prefix = str(arg.values[0].value)
                if prefix.endswith("."):
                    out.update(_package_modules(prefix.rstrip("."), root))
    return {m for m in out if m.split(".")[0] in PACKAGES}


def reachable(entry: str, root: Path = ROOT) -> dict[str, Path]:
    """Every project module importing ``entry`` can run, by name."""
    seen: dict[str, Path] = {}
    todo = [entry]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = module_file(name, root)
        if path is None:  # a name imported from a module, not a module
            continue
        seen[name] = path
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))
        todo.extend(imported_names(path, name, root))
    return seen


def stage_specs(root: Path = ROOT) -> dict[str, tuple[str, list[str]]]:
    """Stage name -> (entry module from ``python -m``, deps), for plain and foreach stages."""
    spec = yaml.safe_load((root / "dvc.yaml").read_text())
    out = {}
    for name, stage in spec["stages"].items():
        body = stage.get("do", stage)
        match = re.search(r"python -m ([\w.]+)", body["cmd"])
        assert match, f"{name}: cmd does not run `python -m MODULE`: {body['cmd']}"
        out[name] = (match.group(1), [str(d) for d in body.get("deps", [])])
    return out


def uncovered(entry: str, deps: list[str], root: Path = ROOT) -> list[str]:
    """Modules ``entry`` can reach whose file lies in none of ``deps`` (files or folders)."""
    paths = [Path(d.rstrip("/")) for d in deps if "${" not in d]
    missing = []
    for name, file in sorted(reachable(entry, root).items()):
        rel = file.relative_to(root)
        if not any(rel == d or d in rel.parents for d in paths):
            missing.append(f"{name} ({rel})")
    return missing


STAGES = stage_specs()


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_deps_cover_every_module_it_can_import(stage: str) -> None:
    entry, deps = STAGES[stage]
    missing = uncovered(entry, deps)
    assert not missing, f"stage {stage}: imports outside its deps in dvc.yaml: {', '.join(missing)}"


def test_the_check_sees_function_level_and_registry_imports() -> None:
    """The walk must find what a stage imports late: the check is only as good as this."""
    train = reachable("stages.train")
    assert "pipeline.train.training" in train  # imported inside the command function
    assert "pipeline.models.lenet" in train  # loaded by name through the registry
    assert "pipeline.models.lenet" not in reachable("stages.ingest")


def test_a_removed_dep_is_reported() -> None:
    entry, deps = STAGES["gan_score"]
    kept = [d for d in deps if d != "pipeline/generative"]
    assert kept != deps
    assert any("pipeline/generative" in m for m in uncovered(entry, kept))


def test_deps_name_only_paths_that_exist() -> None:
    for stage, (_, deps) in STAGES.items():
        for dep in deps:
            if dep.startswith(("pipeline", "stages")):
                assert (ROOT / dep).exists(), f"stage {stage}: dep {dep} does not exist"
