"""The command line: help that explains, and no Keras import where no model is needed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stages.cli import COMMANDS
from tests.conftest import ROOT, venv_env

CHECK = """
import sys
from pathlib import Path
from click.testing import CliRunner
from stages.cli import main
result = CliRunner().invoke(main, {args!r})
assert result.exit_code == 0, result.output
print(result.output)
print("KERAS_IMPORTED" if "keras" in sys.modules else "KERAS_NOT_IMPORTED")
"""


def invoke(args: list[str]) -> str:
    done = subprocess.run([sys.executable, "-c", CHECK.format(args=args)], cwd=ROOT,
                          env=venv_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_top_level_help_lists_every_stage_without_keras() -> None:
    out = invoke(["--help"])
    for name in COMMANDS:
        assert f"  {name} " in out
    assert "KERAS_NOT_IMPORTED" in out


@pytest.mark.parametrize("stage", list(COMMANDS))
def test_stage_help_explains_itself_without_keras(stage: str) -> None:
    out = invoke([stage, "--help"])
    assert "--params" in out and len(out.splitlines()) > 6
    assert "KERAS_NOT_IMPORTED" in out


def test_stages_that_need_no_model_do_not_import_keras(tmp_path) -> None:
    code = (
        "import sys, stages.embed, stages.ingest, stages.split, stages.hdf5, pipeline.data.ingest, "
        "pipeline.data.pack, pipeline.data.split, pipeline.config, pipeline.data.embedded\n"
        "print('keras' in sys.modules, 'tensorflow' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=venv_env(),
                          capture_output=True, text=True)
    assert done.stdout.strip() == "False False", done.stderr


def test_library_does_not_import_the_command_line() -> None:
    for path in (ROOT / "pipeline").rglob("*.py"):
        text = path.read_text()
        assert "import click" not in text and "from stages" not in text, path


def test_installed_console_command() -> None:
    cvpipe = Path(sys.executable).parent / "cvpipe"
    if not cvpipe.exists():
        pytest.skip("the cvpipe entry point is not installed in this environment")
    done = subprocess.run([str(cvpipe), "params", "check"], cwd=ROOT, env=venv_env(),
                          capture_output=True, text=True)
    assert done.returncode == 0 and "valid" in done.stdout, done.stderr


def test_generate_without_a_generator_exits_2_before_keras_loads(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    code = ("import sys\nfrom click.testing import CliRunner\nfrom stages.cli import main\n"
            f"result = CliRunner().invoke(main, ['generate', {str(tmp_path / 'empty')!r}, '4', "
            f"{str(tmp_path / 'out')!r}])\n"
            "print(result.exit_code, 'keras' in sys.modules)\nprint(result.output)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=venv_env(),
                          capture_output=True, text=True)
    first, *rest = done.stdout.splitlines()
    assert first == "2 False", done.stdout + done.stderr
    assert "no generator.keras in" in "\n".join(rest)
    assert not (tmp_path / "out").exists()
