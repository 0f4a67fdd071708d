"""A throwaway git + DVC repository holding the working tree as it would be committed.

``git clone`` would miss uncommitted work, so this copies the files git would commit now
(tracked, plus untracked ones that are not ignored) from the working tree, then makes a fresh
repository of them with one commit. Outputs (``data/``, ``models/``) are ignored, so none exist
in the copy.

``dvc`` runs a DVC command in such a copy inside this process, through DVC's own CLI entry
point (``dvc.cli.main``, as DVC's test suite does): a subprocess would pay Python's start and
DVC's imports again on every call.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import ROOT, run

#: The loggers ``import dvc`` gives console handlers (dvc.logger.setup).
DVC_LOGGERS = ("dvc", "dvc_objects", "dvc_data")


@dataclass(frozen=True)
class DvcResult:
    """What ``dvc ARGS`` returned and printed, as a subprocess would have shown it."""

    returncode: int
    stdout: str
    stderr: str


def dvc(repo: Path, *args: str) -> DvcResult:
    """``dvc ARGS`` run in ``repo`` by ``dvc.cli.main`` in this process; its exit code and output.

    DVC's console log handlers hold the streams of the moment ``dvc`` was first imported; for
    the call they write to this call's buffers instead (warnings and errors to ``stderr``, the
    rest to ``stdout``, as in a terminal), and get their streams back after it. The environment
    is the subprocesses' of tests/conftest.py (no ``DVC_ROOT``) plus ``DVC_TEST``, as DVC's own
    tests set it: without it ``ui.write_json`` (``--json``) writes past the redirected stdout
    (to the one colorama saved), and analytics and the update check stay off either way.

    DVC leaves every directory tree it hashes in fsspec's process-wide memory filesystem, whose
    lookups scan all of it: a subprocess drops them on exit; here what the call added is dropped
    after it, else each call is slower than the one before.
    """
    from dvc.cli import main  # imported before the streams are redirected
    from fsspec.implementations.memory import MemoryFileSystem

    out, err = io.StringIO(), io.StringIO()
    handlers = {h for name in DVC_LOGGERS for h in logging.getLogger(name).handlers
                if isinstance(h, logging.StreamHandler)}
    streams = {h: h.stream for h in handlers}
    environ = dict(os.environ)
    memory = set(MemoryFileSystem.store), list(MemoryFileSystem.pseudo_dirs)
    try:
        os.environ.pop("DVC_ROOT", None)
        os.environ["DVC_TEST"] = "1"
        for handler in handlers:
            handler.stream = err if handler.level >= logging.WARNING else out
        with contextlib.chdir(repo), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    finally:
        for handler, stream in streams.items():
            handler.stream = stream
        os.environ.clear()
        os.environ.update(environ)
        for key in set(MemoryFileSystem.store) - memory[0]:
            del MemoryFileSystem.store[key]
        MemoryFileSystem.pseudo_dirs[:] = memory[1]
    return DvcResult(code, out.getvalue(), err.getvalue())


def working_tree_files(root: Path = ROOT) -> list[str]:
    """Paths git would commit from ``root`` now (deleted tracked files left out)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root, capture_output=True, check=True,
    ).stdout.decode()
    return sorted({p for p in listed.split("\0") if p and (root / p).is_file()})


def copy_working_tree(dest: Path, root: Path = ROOT) -> Path:
    """``dest``: a new git repository, one commit of ``root``'s working tree, DVC analytics off."""
    dest.mkdir(parents=True, exist_ok=True)
    for rel in working_tree_files(root):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target)
    run(["git", "init", "-q", "-b", "main"], dest)
    run(["git", "config", "user.email", "test@cvpipe"], dest)
    run(["git", "config", "user.name", "cvpipe test"], dest)
    run(["git", "config", "commit.gpgsign", "false"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-q", "--no-verify", "-m", "working tree"], dest)
    done = dvc(dest, "config", "--local", "core.analytics", "false")
    assert done.returncode == 0, f"dvc config exited {done.returncode}: {done.stderr}"
    return dest
