"""Every ``dvc exp run`` command in README.md and docs/ is one DVC accepts, with valid params.

The commands are read from fenced code blocks (backslash continuations joined, ``#`` comments
dropped) and from inline code spans, then run with ``--dry`` in a copy of the repository. DVC
applies ``-S`` before it reproduces anything: a key missing from ``params.yaml`` ("Key 'x' is
not in struct"), a value its Hydra parser refuses, a sweep without ``--queue`` or an unknown
flag fails here, naming the command and where it is documented. The params that DVC would
write are then validated by cvpipe's own schema (what ``cvpipe params check`` runs), which
also knows keys DVC accepts but no stage reads.

What ``--dry`` does in DVC 3.67: it always runs in a temporary copy under ``.dvc/tmp/exps``
(as ``--temp`` does), which holds only what git tracks, and stops with "failed to reproduce
'STAGE': [Errno 2] No such file or directory" at the first stage whose data dep no dry run can
have made. That stop comes after the params are applied and ``dvc.yaml`` is resolved with them,
so it counts as accepted. ``--dry`` with ``--queue`` queues the experiments (nothing runs).
Neither changes the workspace's ``params.yaml``.

DVC runs in this process (``tests.repo_copy.dvc``, its CLI entry point). A full dry run costs
seconds, most of them the reproduction in the temporary copy, which is handed only the targets
and the repro flags (the params are in the stashed commit; the ``-n`` name names it; ``--dry``
sets ``--temp`` itself). So the full run is made once per shape, the parsed arguments without
``-S``, ``-n`` and ``--temp``; a later command of a shape already seen through runs with
``--queue`` added, which takes DVC's same path up to the copy: parsing, the name check, ``-S``
applied to ``params.yaml``, ``dvc.yaml`` resolved with the new params and the targets collected
(the stash commits their deps), then queued instead of reproduced. The one refusal that
``--queue`` lifts, of a sweep, is DVC's ``is_sweep_override`` test, so a command it calls a
sweep gets the full run (and DVC's refusal) too. The third test shows both routes refuse what
they should.

``<...>`` placeholders are dropped; ``-S key=value`` (docs/params.md) is a pattern, checked for
every key of the params reference by the last test.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
from pathlib import Path

import pytest
import yaml

from pipeline.config import missing_inputs
from pipeline.config.loading import ParamsError, load_params
from tests.conftest import ROOT, SHARED
from tests.repo_copy import DvcResult, copy_working_tree, dvc

pytestmark = [
    pytest.mark.slow,
    # pygtrie, under DVC's graph code, 1300 times a run now that DVC runs in this process
    pytest.mark.filterwarnings("ignore:_NoneStep.value will soon raise:DeprecationWarning"),
]

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^(```|~~~)[^\n]*\n(.*?)^\1[ \t]*$", re.S | re.M)
SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.S)
PLACEHOLDER = re.compile(r"<[^<>'\"\n]*\s[^<>'\"\n]*>")  # <the mnist-best -S options above>
PATTERN = "key=value"
SHELL_OPERATORS = {"&&", "||", ";", "|", "&"}
#: The end of a dry run: a stage whose data dep no dry run could have produced.
DRY_STOP = re.compile(r"^ERROR: failed to reproduce '[^']+': \[Errno 2\] No such file or directory: ")
MISSING_PATH = re.compile(r"^([\w.]+): (?:does not exist|no such file): (\S+)")


def exp_runs(text: str) -> list[tuple[int, str]]:
    """(line, command) for each ``dvc exp run`` in ``text``'s code blocks and code spans."""
    found: list[tuple[int, str]] = []

    def block(match: re.Match[str]) -> str:
        first = text.count("\n", 0, match.start(2)) + 1
        lines = match.group(2).split("\n")
        i = 0
        while i < len(lines):
            start, line = i, lines[i]
            while line.rstrip().endswith("\\") and i + 1 < len(lines):
                i += 1
                line = line.rstrip()[:-1] + " " + lines[i].strip()
            i += 1
            for hit in re.finditer(r"(?:^|&&|;)\s*(dvc exp run\b.*)", line):
                if not line.lstrip().startswith("#"):
                    found.append((first + start, hit.group(1)))
        return "\n" * match.group(0).count("\n")  # keep line numbers for the spans

    rest = FENCE.sub(block, text)
    for match in SPAN.finditer(rest):
        body = " ".join(match.group(2).split())
        if body.startswith("dvc exp run"):
            found.append((rest.count("\n", 0, match.start()) + 1, body))
    return sorted(found)


def shell_words(command: str) -> tuple[str, ...]:
    """The words a POSIX shell passes, up to the first control operator; comments dropped."""
    lexer = shlex.shlex(PLACEHOLDER.sub(" ", command), posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    words = []
    for word in lexer:
        if word in SHELL_OPERATORS:
            break
        words.append(word)
    return tuple(words)


def documented() -> dict[tuple[str, ...], list[str]]:
    """Shell words of each distinct documented command -> where it is written (file:line)."""
    out: dict[tuple[str, ...], list[str]] = {}
    for doc in DOCS:
        for line, command in exp_runs(doc.read_text(encoding="utf-8")):
            where = f"{doc.relative_to(ROOT)}:{line}"
            try:
                words = shell_words(command)
            except ValueError as exc:  # unbalanced quotes: no shell would run it either
                words = ("unparsable", command, str(exc))
            out.setdefault(words, []).append(where)
    return out


COMMANDS = documented()


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repository; ``../shared`` beside it when the checkout has one."""
    base = tmp_path_factory.mktemp("docs")
    if SHARED.is_dir():
        (base / "shared").symlink_to(SHARED, target_is_directory=True)
    return copy_working_tree(base / "repo")


@pytest.fixture(scope="module")
def shapes_run() -> set[tuple[str, ...]]:
    """The shapes (``run_shape``) whose full dry run DVC has accepted in this module's copy."""
    return set()


def refusal(done: DvcResult) -> str | None:
    """DVC's error output when it did not accept the command, else None."""
    output = f"{done.stdout}\n{done.stderr}"
    errors = [line for line in output.splitlines() if line.startswith("ERROR")]
    if done.returncode == 0:
        return None
    if "Reproducing experiment" in output and errors and all(DRY_STOP.match(e) for e in errors):
        return None
    return output.strip() or f"exit {done.returncode}, no output"


def dvc_dry_run(repo: Path, args: list[str], queue: bool = False) -> str | None:
    """Run ``dvc exp run --dry [--queue] ARGS`` in ``repo``; DVC's refusal, or None.

    The workspace stays as it was.
    """
    before = (repo / "params.yaml").read_bytes()
    done = dvc(repo, "exp", "run", "--dry", *(["--queue"] if queue else []), *args)
    assert (repo / "params.yaml").read_bytes() == before, "dvc exp run --dry changed params.yaml"
    return refusal(done)


def parsed(args: list[str]) -> argparse.Namespace | None:
    """``dvc exp run --dry ARGS`` as DVC's CLI parser reads it; None where it refuses them."""
    from dvc.cli import DvcParserError, parse_args

    try:
        return parse_args(["exp", "run", "--dry", *args])
    except DvcParserError:
        return None


#: Parsed arguments the reproduction in the temporary copy is not handed (see the docstring).
NOT_REPRODUCED = ("func", "parser", "set_param", "name", "tmp_dir")


def run_shape(args: argparse.Namespace) -> tuple[str, ...]:
    """What the reproduction in the temporary copy gets of ``args``: targets and flags."""
    return tuple(sorted(f"{k}={v!r}" for k, v in vars(args).items() if k not in NOT_REPRODUCED))


def is_sweep(args: argparse.Namespace) -> bool:
    """Whether DVC takes the ``-S`` values for a sweep (dvc/repo/experiments/run.py's test).

    A value Hydra cannot parse counts as one: the full run shows DVC's refusal of it.
    """
    from dvc.utils.cli_parse import to_path_overrides
    from dvc.utils.hydra import to_hydra_overrides
    from hydra.errors import OverrideParseException

    try:
        return any(override.is_sweep_override()
                   for overrides in to_path_overrides(args.set_param or []).values()
                   for override in to_hydra_overrides(overrides))
    except OverrideParseException:
        return True


def dvc_accepts(repo: Path, args: list[str], shapes_run: set[tuple[str, ...]]) -> str | None:
    """DVC's refusal of ``dvc exp run --dry ARGS``, or None: a full dry run for a new shape, a
    sweep, a queued command or arguments DVC's parser refuses; else the same with ``--queue``."""
    namespace = parsed(args)
    if namespace is None or namespace.queue or is_sweep(namespace):
        return dvc_dry_run(repo, args)
    shape = run_shape(namespace)
    if shape in shapes_run:
        return dvc_dry_run(repo, args, queue=True)
    refused = dvc_dry_run(repo, args)
    if refused is None:
        shapes_run.add(shape)
    return refused


def params_after(repo: Path, scratch: Path, args: list[str]) -> list[Path]:
    """The params files DVC writes for ``dvc exp run ARGS`` (one per sweep point), via DVC's code."""
    from dvc.cli import parse_args
    from dvc.utils.cli_parse import to_path_overrides
    from dvc.utils.hydra import apply_overrides, get_hydra_sweeps

    overrides = to_path_overrides(parse_args(["exp", "run", *args]).set_param or [])
    files = []
    for i, point in enumerate(get_hydra_sweeps(overrides) if overrides else [{}]):
        folder = scratch / f"point{i}"
        folder.mkdir()
        shutil.copy2(repo / "params.yaml", folder / "params.yaml")
        for name, values in point.items():
            target = folder / name
            if not target.exists():
                shutil.copy2(repo / name, target)
            apply_overrides(target, values)
        files.append(folder / "params.yaml")
    return files


def schema_errors(params: Path, repo: Path) -> tuple[list[str], list[str]]:
    """cvpipe's complaints about ``params`` read from ``repo``: (errors, inputs under ../shared).

    A missing input inside the repository (``data/raw/mnist``: the docs make it one command
    earlier) is not an error here; one under ``../shared`` is, where ``../shared`` exists.
    """
    try:
        loaded = load_params(params)
    except ParamsError as exc:
        lines = exc.lines
    else:
        lines = missing_inputs(loaded)  # what `cvpipe params check` adds to the schema's checks
        if not lines:
            return [], []
    errors, shared = [], []
    for line in lines:
        missing = MISSING_PATH.match(line)
        if missing is None:
            errors.append(line)
            continue
        path = Path(os.path.normpath(repo / missing.group(2)))  # ../shared may be a link
        if path.is_relative_to(repo):
            continue
        if SHARED.is_dir() or not path.is_relative_to(repo.parent / "shared"):
            errors.append(line)
        else:
            shared.append(missing.group(2))
    return errors, shared


@pytest.mark.parametrize("words", list(COMMANDS), ids=[",".join(w) for w in COMMANDS.values()])
def test_documented_exp_run_is_accepted(repo: Path, shapes_run: set[tuple[str, ...]],
                                        words: tuple[str, ...], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    where = ", ".join(COMMANDS[words])
    assert words[0] != "unparsable", f"{where}: the shell cannot parse `{words[1]}`: {words[2]}"
    assert words[:3] == ("dvc", "exp", "run"), f"{where}: not a dvc exp run: {words}"
    if any(PATTERN in w for w in words):
        pytest.skip(f"{where}: `{shlex.join(words)}` is a pattern (see the params-reference test)")
    args = [w.replace("${PWD}", str(repo)).replace("$PWD", str(repo)) for w in words[3:]]
    shown = shlex.join(["dvc", "exp", "run", *args])

    refused = dvc_accepts(repo, args, shapes_run)
    assert refused is None, f"{where}: DVC refuses `{shown}`:\n{refused}"

    monkeypatch.chdir(repo)  # params name paths relative to the repository
    problems, need_shared = [], []
    for params in params_after(repo, tmp_path, args):
        errors, shared = schema_errors(params, repo)
        problems += errors
        need_shared += shared
    assert not problems, f"{where}: `{shown}`: cvpipe params check fails:\n  " + "\n  ".join(problems)
    if need_shared:
        pytest.skip(f"{where}: DVC accepts it; cvpipe's check needs ../shared ({', '.join(need_shared)})")


def test_the_checks_catch_a_key_dvc_refuses_and_one_only_cvpipe_refuses(
        repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--dry`` does apply ``-S``, with or without ``--queue`` (the route of a shape already
    run in full); ``+key`` gets past DVC but not past the schema."""
    seen = {run_shape(parsed([])), run_shape(parsed(["nonexistent_stage"]))}
    refused = dvc_accepts(repo, ["-S", "train.bogus=1"], set())  # the full dry run
    assert refused and "Key 'bogus' is not in struct" in refused
    refused = dvc_accepts(repo, ["-n", "named", "-S", "train.bogus=1"], seen)  # with --queue
    assert refused and "Key 'bogus' is not in struct" in refused
    refused = dvc_accepts(repo, ["-S", "ensemble.members=3"], seen)  # dvc.yaml's foreach
    assert refused and "failed to resolve 'stages.train_member.foreach'" in refused
    refused = dvc_accepts(repo, ["nonexistent_stage"], seen)
    assert refused and "'nonexistent_stage' does not exist" in refused
    # these always get the full run: a value Hydra cannot parse, a sweep, an unknown flag
    refused = dvc_accepts(repo, ["-S", "train.lr=[1"], seen)
    assert refused and "no viable alternative" in refused  # DVC: "unexpected error"
    refused = dvc_accepts(repo, ["-S", "train.lr=0.1,0.01"], seen)
    assert refused and "Sweep overrides can't be used without `--queue`" in refused
    refused = dvc_accepts(repo, ["--no-such-flag"], seen)
    assert refused and "unrecognized arguments: --no-such-flag" in refused
    monkeypatch.chdir(repo)
    (params,) = params_after(repo, tmp_path, ["-S", "+train.bogus=1"])
    errors, _ = schema_errors(params, repo)
    assert errors == ["train.bogus: unknown key"]


def hydra_value(value: object) -> str:
    """``value`` in Hydra's override grammar, as ``-S key=VALUE`` takes it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "\\'") + "'"
    if isinstance(value, list):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{hydra_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no Hydra form for {value!r}")


def reference_defaults() -> dict[str, object]:
    """Every leaf key of docs/params.md's table with its default (keys without one left out)."""
    out = {}
    for line in (ROOT / "docs" / "params.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) != 4 or not cells[0].startswith("`") or cells[1] == "section":
            continue
        key, default = cells[0].strip("`"), cells[2]
        if default.startswith("`") and default.endswith("`"):
            out[key] = json.loads(default.strip("`"))
    return out


def has_key(data: object, dotted: str) -> bool:
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return False
        data = data[part]
    return True


def test_every_params_reference_key_is_settable_with_dash_s(repo: Path,
                                                            shapes_run: set[tuple[str, ...]],
                                                            tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/params.md: "``dvc exp run -S key=value`` works for each of them" (every key)."""
    defaults = reference_defaults()
    assert len(defaults) > 50, "the params reference table was not found in docs/params.md"
    data = yaml.safe_load((repo / "params.yaml").read_text(encoding="utf-8"))
    absent = sorted(k for k in defaults if not has_key(data, k))
    args = [a for key, value in defaults.items() for a in ("-S", f"{key}={hydra_value(value)}")]

    refused = dvc_accepts(repo, args, shapes_run)
    assert not absent and refused is None, (
        f"docs/params.md promises `dvc exp run -S key=value` for every key; DVC refuses "
        f"{len(absent)} missing from params.yaml: {', '.join(absent)}\n{refused or ''}")

    monkeypatch.chdir(repo)
    (params,) = params_after(repo, tmp_path, args)
    written = yaml.safe_load(params.read_text(encoding="utf-8"))
    for key, value in defaults.items():
        got = written
        for part in key.split("."):
            got = got[part]
        if isinstance(value, float) and isinstance(got, str):
            # DVC writes 1e-05 without a dot, which YAML 1.1 (PyYAML) reads as a string; the
            # schema takes it as the float it is
            got = float(got)
        assert got == value, f"-S {key}={hydra_value(value)} wrote {got!r}, not {value!r}"
    errors, _ = schema_errors(params, repo)
    assert not errors, "the reference defaults fail cvpipe params check:\n  " + "\n  ".join(errors)
