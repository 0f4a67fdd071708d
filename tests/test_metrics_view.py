"""`cvpipe metrics`: every metrics file DVC declares, one file at a time, within the width."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.tools.metrics_view import flatten, render
from tests.conftest import ROOT, venv_env

FILES = {
    "results/a/metrics.json": {"rank1": 0.951890034, "rank5": 1.0, "images": 291,
                               "diagnosis": {"avoidable_bias": 0.019556, "variance": 0.007967}},
    "results/b/metrics.json": {f"key_number_{i}": i / 7 for i in range(15)},
}


def test_render_keeps_every_key_within_the_width() -> None:
    text = render({path: flatten(data) for path, data in FILES.items()}, width=60)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 60
    assert lines[0] == "results/a/metrics.json"
    assert "rank1 0.95189" in text and "diagnosis.avoidable_bias 0.019556" in text
    assert all(f"key_number_{i} " in text for i in range(15))


@pytest.mark.slow
def test_reads_what_dvc_declares(tmp_path: Path) -> None:
    env = venv_env()
    for path, data in FILES.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(json.dumps(data))
    (tmp_path / "dvc.yaml").write_text("metrics:\n" + "".join(f"  - {p}\n" for p in FILES))
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        subprocess.run(cmd, cwd=tmp_path, env=env, check=True)
    done = subprocess.run([sys.executable, "-m", "stages.cli", "metrics", "--width", "72"],
                          cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line for line in lines if not line.startswith(" ")] == list(FILES)
    assert max(len(line) for line in lines) <= 72
    assert "images 291" in done.stdout and "key_number_14 2" in done.stdout
