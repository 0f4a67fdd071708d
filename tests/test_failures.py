"""One way to fail: exit 2 naming the key or the file for bad params or input, exit 1 with one line
for a failed run, the traceback only with ``CVPIPE_DEBUG=1``.

Real stage commands run in subprocesses, as DVC runs them (``python -m stages.<name>``) and
through the ``cvpipe`` group; the mechanism's edge cases (Ctrl-C, ``SystemExit``, Click's own
exits) run in-process on a small command of this file's own that uses :class:`stages.common.Stage`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from pipeline.io.errors import InputError
from stages.common import Stage, StageGroup
from tests.conftest import ROOT, venv_env
from tests.conftest import shipped_params_with as params_file


def stage(*args: str, cwd: Path, debug: bool = False) -> subprocess.CompletedProcess:
    """``python -m <args>`` in ``cwd`` with the project importable; CVPIPE_DEBUG set if asked."""
    env = {**venv_env(), "PYTHONPATH": str(ROOT)}
    env.pop("CVPIPE_DEBUG", None)
    if debug:
        env["CVPIPE_DEBUG"] = "1"
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)




def not_hdf5(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("this is not an HDF5 file\n")
    return path


# --- bad params or input: exit 2, naming the key or the file ---------------------------------

@pytest.mark.parametrize("entry", [["stages.embed"], ["stages.cli", "embed"]])
def test_invalid_params_exit_2_naming_each_dotted_key(tmp_path: Path, entry: list[str]) -> None:
    params_file(tmp_path, train={"lr": -1}, embed={"outt": "x"})
    done = stage(*entry, "--params", "params.yaml", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "train.lr: Input should be greater than 0, got -1" in done.stderr
    assert "embed.outt: unknown key" in done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_an_unreadable_params_file_exits_2_naming_it(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text("train: [unclosed\n")
    done = stage("stages.embed", "--params", "params.yaml", cwd=tmp_path)
    assert done.returncode == 2 and "params.yaml is not valid YAML" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_missing_input_folder_exits_2_naming_it(tmp_path: Path) -> None:
    params_file(tmp_path)
    done = stage("stages.hdf5", "--params", "params.yaml", "--splits", "no_such_splits",
                 "--out", "out", cwd=tmp_path)
    assert done.returncode == 2
    assert "'--splits'" in done.stderr and "no_such_splits" in done.stderr


def test_a_missing_input_file_exits_2_naming_it(tmp_path: Path) -> None:
    params_file(tmp_path)
    (tmp_path / "splits").mkdir()  # a folder, but the split stage never wrote into it
    done = stage("stages.hdf5", "--params", "params.yaml", "--splits", "splits", "--out", "out",
                 cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.splitlines() == ["error: no such file or folder: splits/classes.json"]
    assert not (tmp_path / "out").exists()


def test_unusable_input_named_by_a_params_key_exits_2(tmp_path: Path) -> None:
    (tmp_path / "flat").mkdir()  # kind folder wants one sub-folder per class
    params_file(tmp_path, ingest={"source": {"kind": "folder", "path": "flat"}})
    done = stage("stages.ingest", "--params", "params.yaml", "--out", "out", "--reports", "rep",
                 cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "error: flat has no class sub-folders (kind: folder expects root/<label>/...)"]
    (tmp_path / "data.csv").write_text("x\n")
    params_file(tmp_path, ingest={"source": {"kind": "folder", "path": "data.csv"}})
    done = stage("stages.ingest", "--params", "params.yaml", "--out", "out", "--reports", "rep",
                 cwd=tmp_path)
    assert done.returncode == 2 and "ingest.source.path: kind folder needs a folder" in done.stderr


def test_a_bad_input_file_to_a_cvpipe_tool_exits_2_naming_it(tmp_path: Path) -> None:
    source = tmp_path / "idx"
    source.mkdir()
    (source / "train-images-idx3-ubyte.gz").write_bytes(b"")
    done = stage("stages.cli", "data", "mnist", str(source), str(tmp_path / "out"), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"error: {source / 'train-images-idx3-ubyte.gz'} is not an unsigned-byte IDX file"]
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.png").write_bytes(b"")
    done = stage("stages.cli", "data", "mnist", str(source), str(tmp_path / "full"), cwd=tmp_path)
    assert done.returncode == 2 and "full is not an empty folder" in done.stderr


def test_click_usage_errors_keep_exit_2(tmp_path: Path) -> None:
    done = stage("stages.embed", "--no-such-option", cwd=tmp_path)
    assert done.returncode == 2 and "No such option '--no-such-option'" in done.stderr
    done = stage("stages.cli", "no_such_command", cwd=tmp_path)
    assert done.returncode == 2 and "No such command 'no_such_command'" in done.stderr


# --- a failed run: exit 1, one line; the traceback with CVPIPE_DEBUG=1 -----------------------

def corrupt_features(tmp_path: Path) -> list[str]:
    """train_logreg's arguments for a features folder whose train.h5 is not HDF5."""
    params_file(tmp_path)
    not_hdf5(tmp_path / "features" / "train.h5")
    return ["--params", "params.yaml", "--features", "features", "--out", "model",
            "--metrics", "metrics.json"]


@pytest.mark.parametrize("entry", [["stages.train_logreg"], ["stages.cli", "train_logreg"]])
def test_a_runtime_failure_exits_1_with_one_line(tmp_path: Path, entry: list[str]) -> None:
    done = stage(*entry, *corrupt_features(tmp_path), cwd=tmp_path)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: OSError: Unable to synchronously open file")
    assert lines[0].endswith("(set CVPIPE_DEBUG=1 for the traceback)")
    assert not (tmp_path / "model").exists() and not (tmp_path / "metrics.json").exists()


def test_cvpipe_debug_shows_the_traceback(tmp_path: Path) -> None:
    done = stage("stages.train_logreg", *corrupt_features(tmp_path), cwd=tmp_path, debug=True)
    assert done.returncode == 1
    assert done.stderr.startswith("Traceback (most recent call last):")
    assert "h5py" in done.stderr
    last = done.stderr.splitlines()[-1]
    assert last.startswith("error: OSError: Unable to synchronously open file")
    assert "CVPIPE_DEBUG" not in last


def test_a_keras_command_fails_the_same_way(tmp_path: Path) -> None:
    """`cvpipe generate` imports Keras: a generator file that is not one fails in one line,
    a folder without one exits 2 naming it."""
    (tmp_path / "generator.keras").write_text("not a Keras file\n")
    done = stage("stages.cli", "generate", "generator.keras", "4", "out", cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ValueError: "), done.stderr
    assert lines[0].endswith("(set CVPIPE_DEBUG=1 for the traceback)")
    (tmp_path / "empty").mkdir()
    done = stage("stages.cli", "generate", "empty", "4", "out", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "error: no generator.keras in empty (the dcgan stage writes it)"]
    assert not (tmp_path / "out").exists()


# --- the mechanism's edges, in-process ---------------------------------------------------------

@click.group(cls=StageGroup)
def group() -> None:
    """A group like cvpipe's."""


@group.command(cls=Stage)
@click.argument("what")
def boom(what: str) -> None:
    """Raise what WHAT names."""
    if what == "input":
        raise InputError("data/x.h5: no images", ["data/x.h5: 0 rows"])
    if what == "missing":
        open("no/such/file.csv")  # noqa: SIM115
    if what == "runtime":
        raise RuntimeError("first line\n  second line")
    if what == "interrupt":
        raise KeyboardInterrupt
    if what == "exit":
        sys.exit(3)
    if what == "ctx-exit":
        click.get_current_context().exit(0)
    if what == "click":
        raise click.UsageError("bad usage")
    click.echo("fine")


@pytest.mark.parametrize(("what", "code", "stderr"), [
    ("input", 2, "error: data/x.h5: no images\n  data/x.h5: 0 rows\n"),
    ("missing", 2, "error: no such file or folder: no/such/file.csv\n"),
    ("runtime", 1, "error: RuntimeError: first line second line "
                   "(set CVPIPE_DEBUG=1 for the traceback)\n"),
    ("interrupt", 1, "\nAborted!\n"),  # Click's own Ctrl-C handling
    ("exit", 3, ""),
    ("ctx-exit", 0, ""),
    ("click", 2, None),  # Click's usage message, exit 2
    ("fine", 0, ""),
])
def test_each_kind_of_exception_ends_one_way(what: str, code: int, stderr: str | None,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CVPIPE_DEBUG", raising=False)
    for command, args in ((group, ["boom", what]), (boom, [what])):
        result = CliRunner().invoke(command, args)
        assert result.exit_code == code, result.output
        if stderr is None:
            assert result.stderr.startswith("Usage: ") and "Error: bad usage" in result.stderr
        else:
            assert result.stderr == stderr


def test_debug_keeps_the_exit_code_and_adds_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CVPIPE_DEBUG", "1")
    runtime = CliRunner().invoke(group, ["boom", "runtime"])
    assert runtime.exit_code == 1 and "Traceback" in runtime.stderr
    assert runtime.stderr.splitlines()[-1] == "error: RuntimeError: first line second line"
    bad = CliRunner().invoke(group, ["boom", "input"])
    assert bad.exit_code == 2 and "Traceback" in bad.stderr and "InputError" in bad.stderr
    monkeypatch.setenv("CVPIPE_DEBUG", "0")
    assert "Traceback" not in CliRunner().invoke(group, ["boom", "runtime"]).stderr
