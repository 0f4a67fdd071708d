"""A throwaway git + DVC repository holding the working tree as it would be committed.

``git clone`` would miss uncommitted work, so this copies the files git would commit now
(tracked, plus untracked ones that are not ignored) from the working tree, then makes a fresh
repository of them with one commit. Outputs (``data/``, ``models/``) are ignored, so none exist
in the copy.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, run


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
    run([sys.executable, "-m", "dvc", "config", "--local", "core.analytics", "false"], dest)
    return dest
