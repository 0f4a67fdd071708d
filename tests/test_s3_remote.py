"""An S3-compatible DVC remote, against a real S3 server on localhost, and a bare git remote.

The server is moto's server mode (``python -m moto.server``, from the dev group: moto's S3
backend behind its Flask app), the stand-in DVC's own test suite uses for S3; MinIO has neither
a PyPI nor a Debian package, and nothing may be downloaded at run time. The fixture starts it
as a process on a free localhost port, makes the bucket (boto3) and stops it after the module;
it skips, saying why, where it cannot start. DVC talks to it through dvc-s3 (s3fs), exactly as
to AWS or MinIO: only the remote's ``endpointurl`` differs.

The round trip runs in a copy of the project whose ``dvc.yaml`` keeps ingest, split and hdf5,
on 12 images of 12x10 pixels tracked with ``dvc add`` (each DVC command parses ``dvc.yaml``
whole; the other stages would cost every call without bearing on the remote). The keys and the
endpoint go into ``.dvc/config.local`` (``dvc remote modify --local``), which git never sees.
DVC runs in this process (``tests.repo_copy.dvc``); its stages run as its subprocesses.

The unreachable remote is an endpoint with nothing listening: ``dvc push`` fails non-zero,
naming the endpoint, and leaves the workspace as it was. ``dvc exp push`` to it half-succeeds
(the git ref reaches origin, the data does not) and says so, through the function that
``cvpipe search`` pushes each trial with; pushing again sends the data.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import keep_stages, make_class_folders, run, write_image
from tests.postgres_server import free_port
from tests.repo_copy import copy_working_tree, dvc

pytestmark = [
    pytest.mark.slow,
    # pygtrie, under DVC's graph code, in every DVC command run in this process
    pytest.mark.filterwarnings("ignore:_NoneStep.value will soon raise:DeprecationWarning"),
]

BUCKET, PREFIX = "cvpipe-remote", "cvpipe"
#: moto accepts any keys; these stand for a user's, kept in .dvc/config.local only.
KEYS = {"access_key_id": "cvpipe-test-key", "secret_access_key": "cvpipe-test-secret"}
KEPT = ("ingest", "split", "hdf5")
OUTPUTS = ("data/raw/shapes", "data/ingest", "data/split", "data/hdf5")


def wait_for_port(port: int, process: subprocess.Popen, limit: float = 30.0) -> bool:
    """True once something accepts TCP connections on localhost ``port``; False when
    ``process`` exits first or ``limit`` seconds pass."""
    began = time.monotonic()
    while process.poll() is None and time.monotonic() - began < limit:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.1)
    return False


@pytest.fixture(scope="module")
def aws_isolated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No AWS settings of this machine's (keys, profiles, config files, instance metadata) in
    this module's DVC calls and subprocesses: the remote's own config is all they get; the
    virtual environment's bin first on PATH, for the stages' ``python``."""
    nowhere = tmp_path_factory.mktemp("aws") / "none"  # no such file: no AWS config
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("AWS_")]:
            patch.delenv(name)
        patch.setenv("AWS_CONFIG_FILE", str(nowhere))
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(nowhere))
        patch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        patch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
        yield


@pytest.fixture(scope="module")
def s3_endpoint(aws_isolated: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of a moto S3 server holding an empty bucket ``BUCKET``."""
    try:
        import boto3
        import flask  # noqa: F401  (moto's server mode)
        import moto.server  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"no S3 server: moto's server mode is not installed ({exc}; uv sync --group dev)")
    log_path = tmp_path_factory.mktemp("moto") / "server.log"
    with log_path.open("w") as log:
        for _ in range(3):  # another process may take the free port first
            port = free_port()
            server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                       "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
            if wait_for_port(port, server):
                break
            server.kill()
            server.wait()
        else:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
            pytest.skip("no S3 server: moto.server did not start: " + " | ".join(tail))
    url = f"http://127.0.0.1:{port}"
    try:
        boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                     aws_access_key_id=KEYS["access_key_id"],
                     aws_secret_access_key=KEYS["secret_access_key"]).create_bucket(Bucket=BUCKET)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def ok(repo: Path, *args: str) -> str:
    """``dvc ARGS`` in ``repo``, which must succeed; its output."""
    done = dvc(repo, *args)
    assert done.returncode == 0, f"dvc {' '.join(args)} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    return done.stdout + done.stderr


def git(repo: Path, *args: str) -> str:
    return run(["git", *args], repo).stdout.strip()


def use_remote(repo: Path, endpoint: str, add: bool) -> None:
    """The README's set-up: the remote in ``.dvc/config`` (committed), its endpoint and keys in
    ``.dvc/config.local``. ``add``: add it (the first clone); else it came with git."""
    if add:
        ok(repo, "remote", "add", "-d", "s3", f"s3://{BUCKET}/{PREFIX}")
    ok(repo, "remote", "modify", "--local", "s3", "endpointurl", endpoint)
    for key, value in KEYS.items():
        ok(repo, "remote", "modify", "--local", "s3", key, value)
    ok(repo, "config", "--local", "core.analytics", "false")


def digests(repo: Path) -> dict[str, str]:
    """SHA-256 of every file in the DVC-tracked folders, by path relative to ``repo``."""
    return {str(p.relative_to(repo)): hashlib.sha256(p.read_bytes()).hexdigest()
            for out in OUTPUTS for p in sorted((repo / out).rglob("*")) if p.is_file()}


def tiny_project(repo: Path) -> None:
    """Trim the copy to ingest, split and hdf5 on 12 small images (``data/raw/shapes``)."""
    keep_stages(repo, *KEPT)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["ingest"]["source"]["path"] = "data/raw/shapes"
    params["ingest"]["workers"] = params["hdf5"]["workers"] = 1
    params["split"].update(val=0.25, test=0.25, train_dev=0.0)
    params["hdf5"]["image_size"] = [8, 8]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    make_class_folders(repo / "data/raw/shapes", {"circle": 6, "square": 6})


def test_push_pull_old_commits_and_experiments(s3_endpoint: str, tmp_path: Path) -> None:
    """Push, pull with no cache, an old commit pulled in a second clone, an experiment pushed
    and pulled: every DVC-tracked file comes back byte for byte."""
    from pipeline.search.runner import push_experiment  # imports Optuna

    bare = tmp_path / "origin.git"
    run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], tmp_path)
    repo = copy_working_tree(tmp_path / "repo")
    tiny_project(repo)
    use_remote(repo, s3_endpoint, add=True)
    git(repo, "rm", "-q", "dvc.lock")  # its outputs are in no cache here
    ok(repo, "add", "data/raw/shapes")
    ok(repo, "repro")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "12 images")
    first = git(repo, "rev-parse", "HEAD")
    committed = git(repo, "show", "HEAD:.dvc/config")
    assert f"s3://{BUCKET}/{PREFIX}" in committed
    assert not any(v in committed for v in (*KEYS.values(), s3_endpoint)), committed
    assert "config.local" not in git(repo, "ls-files", ".dvc")
    ok(repo, "push")
    git(repo, "remote", "add", "origin", str(bare))
    git(repo, "push", "-q", "origin", "main")
    one = digests(repo)
    assert sum(path.startswith("data/raw/") for path in one) == 12
    assert all(any(path.startswith(f"{out}/") for path in one) for out in OUTPUTS), sorted(one)

    # No cache, no outputs: `dvc pull` gives them all back from the server, byte for byte.
    shutil.rmtree(repo / ".dvc/cache")
    for out in OUTPUTS:
        shutil.rmtree(repo / out)
    ok(repo, "pull")
    assert digests(repo) == one

    # A second commit with changed data (two more images, one replaced): pushed too.
    write_image(repo / "data/raw/shapes/circle/img_00005.png", 99)
    make_class_folders(repo / "data/raw/shapes", {"circle": 1, "square": 1}, start=100)
    ok(repo, "add", "data/raw/shapes")
    ok(repo, "repro")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "14 images")
    ok(repo, "push")
    git(repo, "push", "-q", "origin", "main")
    two = digests(repo)
    assert sum(path.startswith("data/raw/") for path in two) == 14
    assert all(two[path] != one[path] for path in ("data/raw/shapes/circle/img_00005.png",
                                                   "data/ingest/manifest.csv"))

    # A second clone of the git remote, same S3 remote, empty cache: the first commit checked
    # out and pulled is the first commit's data; main's is the second's.
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(bare), str(clone)], tmp_path)
    use_remote(clone, s3_endpoint, add=False)
    git(clone, "checkout", "-q", first)
    ok(clone, "pull")
    assert digests(clone) == one
    git(clone, "checkout", "-q", "main")
    ok(clone, "pull")
    assert digests(clone) == two
    assert "changed" not in ok(clone, "status")

    # An experiment (split alone, a larger validation share) pushed with its data, pulled into
    # the clone and applied there: its outputs come back identical.
    ok(repo, "exp", "run", "-n", "val-half", "split", "-S", "split.val=0.5")
    made = {k: v for k, v in digests(repo).items() if k.startswith("data/split/")}
    assert made != {k: v for k, v in two.items() if k.startswith("data/split/")}
    # Pushed while the S3 endpoint is unreachable (as `cvpipe search` pushes each trial), DVC
    # pushes the experiment's git ref first and then fails on its data, naming the endpoint;
    # pushing again once the server answers sends the data.
    nowhere = f"http://127.0.0.1:{free_port()}"
    ok(repo, "remote", "modify", "--local", "s3", "endpointurl", nowhere)
    failed = push_experiment(repo, "origin", "val-half")
    assert failed and failed.startswith("dvc exp push origin val-half exited 255: "), failed
    assert "failed to push cache" in failed and f'endpoint URL: "{nowhere}/{BUCKET}/' in failed
    assert "val-half" in git(bare, "for-each-ref", "refs/exps")
    ok(repo, "remote", "modify", "--local", "s3", "endpointurl", s3_endpoint)
    ok(repo, "exp", "push", "origin", "val-half")
    ok(clone, "exp", "pull", "origin", "val-half")
    assert "val-half" in ok(clone, "exp", "list", "--name-only")
    ok(clone, "exp", "apply", "val-half")
    assert {k: v for k, v in digests(clone).items() if k.startswith("data/split/")} == made
    assert yaml.safe_load((clone / "params.yaml").read_text())["split"]["val"] == 0.5


def workspace_files(repo: Path) -> dict[str, bytes]:
    """Every file in ``repo`` but git's and DVC's own state, with its bytes."""
    files = (p for p in sorted(repo.rglob("*")) if p.is_file())
    return {rel: p.read_bytes() for p in files
            if not (rel := p.relative_to(repo).as_posix()).startswith((".git/", ".dvc/tmp/"))}


def test_push_to_an_unreachable_remote_fails_naming_it(aws_isolated: None, tmp_path: Path) -> None:
    """Nothing listens at the endpoint: ``dvc push`` exits non-zero with DVC's message naming
    the endpoint, and the workspace (data, .dvc files, config) is as it was."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    ok(repo, "init", "-q")
    write_image(repo / "data/raw/one.png", 1)
    ok(repo, "add", "data/raw/one.png")
    endpoint = f"http://127.0.0.1:{free_port()}"
    use_remote(repo, endpoint, add=True)
    before = workspace_files(repo)
    began = time.monotonic()
    done = dvc(repo, "push")
    assert done.returncode != 0
    assert endpoint in done.stderr, done.stderr
    assert workspace_files(repo) == before
    assert time.monotonic() - began < 60
