"""A throwaway PostgreSQL server for the tests: Debian's ``initdb`` and ``pg_ctl`` (found on PATH
or under ``/usr/lib/postgresql/*/bin/``) make a cluster in a folder, started on a free localhost
TCP port with fsync off (no Unix socket), with a database ``cvpipe`` owned by a user with a
password. PostgreSQL refuses to run as root, so under root its commands run as the ``postgres``
system user (``runuser``, else ``su``) on a folder that user owns.
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

DEBIAN_BINS = "/usr/lib/postgresql/*/bin"
USER, DATABASE = "cvpipe", "cvpipe"
#: Settings for a test server: fast (no fsync, no WAL flush waits), TCP on 127.0.0.1 only.
SETTINGS = {"listen_addresses": "'127.0.0.1'", "unix_socket_directories": "''", "fsync": "off",
            "synchronous_commit": "off", "full_page_writes": "off", "shared_buffers": "'32MB'",
            "max_connections": "50", "logging_collector": "off"}


class Unavailable(RuntimeError):
    """No server can be started here; the message says why (the fixture skips with it)."""


def _complete(folder: Path) -> bool:
    return all((folder / name).exists() for name in ("initdb", "pg_ctl", "psql"))


def find_bin() -> Path:
    """The folder holding ``initdb``, ``pg_ctl`` and ``psql``: PATH's, else the newest Debian one."""
    on_path = shutil.which("initdb")
    if on_path and _complete(Path(on_path).resolve().parent):
        return Path(on_path).resolve().parent
    found = [p.parent for p in Path("/").glob(DEBIAN_BINS.lstrip("/") + "/initdb") if _complete(p.parent)]
    if not found:
        raise Unavailable(f"no PostgreSQL binaries: initdb, pg_ctl and psql are neither on PATH "
                          f"nor under {DEBIAN_BINS}/ (apt-get install postgresql)")
    return max(found, key=lambda p: [int(n) for n in re.findall(r"\d+", p.parent.name)] or [0])


def free_port() -> int:
    """A localhost TCP port nothing listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_server_user() -> list[str]:
    """The prefix that runs a command as the ``postgres`` user (empty when not root)."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise Unavailable("cannot switch user: running as root (PostgreSQL refuses to) and there "
                          "is no `postgres` system user") from None
    if shutil.which("runuser"):
        return ["runuser", "-u", "postgres", "--"]
    if shutil.which("su"):
        return ["su", "postgres", "-s", "/bin/sh", "-c"]
    raise Unavailable("cannot switch user: running as root and neither runuser nor su exists")


def _command(prefix: list[str], args: list[str]) -> list[str]:
    if prefix and prefix[0] == "su":
        return [*prefix, shlex.join(args)]
    return [*prefix, *args]


def _run(prefix: list[str], args: list[str], cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(_command(prefix, args), cwd=cwd, capture_output=True, text=True,
                          timeout=60, **kwargs)


def _why(done: subprocess.CompletedProcess) -> str:
    text = (done.stderr.strip() or done.stdout.strip()).splitlines()
    return " | ".join(text[-4:]) if text else f"exit status {done.returncode}"


def _start(prefix: list[str], bin_dir: Path, data: Path, log: Path) -> int:
    """Start the server on a free port (tried again when another process took it); its port."""
    conf = data / "postgresql.conf"
    base = conf.read_text()
    for attempt in range(3):
        port = free_port()
        lines = [f"{k} = {v}" for k, v in {**SETTINGS, "port": str(port)}.items()]
        conf.write_text(base + "\n# tests/postgres_server.py\n" + "\n".join(lines) + "\n")
        done = _run(prefix, [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w",
                             "-t", "30", "-o", "-F", "start"], cwd=data.parent)
        if done.returncode == 0:
            return port
        tail = log.read_text(errors="replace").strip().splitlines()[-4:] if log.exists() else []
        if attempt == 2 or not any("could not bind" in line for line in tail):
            raise Unavailable(f"pg_ctl start failed: {_why(done)} | " + " | ".join(tail))
    raise AssertionError("unreachable")


def _create_user(bin_dir: Path, port: int, admin_password: str, password: str) -> None:
    """The login role and its database, made by the superuser over TCP (psql)."""
    env = {**os.environ, "PGPASSWORD": admin_password, "PGCONNECT_TIMEOUT": "10"}
    statements = [f"CREATE ROLE {USER} LOGIN PASSWORD '{password}'",
                  f"CREATE DATABASE {DATABASE} OWNER {USER}"]  # one each: not in a transaction
    for statement in statements:
        made = subprocess.run([str(bin_dir / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U",
                               "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-qc",
                               statement], capture_output=True, text=True, env=env, timeout=60)
        if made.returncode != 0:
            raise RuntimeError(f"PostgreSQL started but `{statement.split(' PASSWORD')[0]}` "
                               f"failed: {_why(made)}")


def start_postgres(folder: Path) -> tuple[str, Callable[[], None]]:
    """Start a server with its cluster in ``folder/data``; return its SQLAlchemy URL
    ``postgresql://cvpipe:PASSWORD@127.0.0.1:PORT/cvpipe`` and a function that stops it
    (``pg_ctl stop -m immediate``; safe to call twice). :class:`Unavailable` says why when no
    server can be started; a failure after it started raises ``RuntimeError``."""
    bin_dir = find_bin()
    prefix = _as_server_user()
    folder.mkdir(parents=True, exist_ok=True)
    if prefix:
        entry = pwd.getpwnam("postgres")
        os.chown(folder, entry.pw_uid, entry.pw_gid)
        reach = _run(prefix, ["test", "-w", str(folder)], cwd=Path("/"))
        if reach.returncode != 0:
            raise Unavailable(f"cannot switch user: `{shlex.join(_command(prefix, ['true']))}` "
                              f"cannot write {folder} (a parent folder closed to other users?): "
                              f"{_why(reach)}")
    data, log = folder / "data", folder / "server.log"
    admin_password, password = secrets.token_hex(12), secrets.token_hex(12)
    pwfile = folder / "pwfile"
    pwfile.write_text(admin_password + "\n")
    if prefix:
        os.chown(pwfile, entry.pw_uid, entry.pw_gid)
    pwfile.chmod(0o600)
    done = _run(prefix, [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres",
                         f"--pwfile={pwfile}", "--auth=scram-sha-256", "-E", "UTF8",
                         "--locale=C", "--no-sync"], cwd=folder)
    pwfile.unlink()
    if done.returncode != 0:
        raise Unavailable(f"initdb failed ({bin_dir / 'initdb'}): {_why(done)}")

    def stop() -> None:
        if (data / "postmaster.pid").exists():
            _run(prefix, [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-s",
                          "stop"], cwd=folder)

    try:
        port = _start(prefix, bin_dir, data, log)
        _create_user(bin_dir, port, admin_password, password)
    except BaseException:
        stop()
        raise
    return f"postgresql://{USER}:{password}@127.0.0.1:{port}/{DATABASE}", stop


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The URL of a PostgreSQL database for this test session (skips, saying why, where no
    server can be started). Its folder is a fresh one in the system temp folder, which the
    ``postgres`` user can reach (pytest's own tmp folders are closed to other users)."""
    folder = Path(tempfile.mkdtemp(prefix="cvpipe-pg-"))
    try:
        url, stop = start_postgres(folder)
    except Unavailable as exc:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"no PostgreSQL server: {exc}")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    try:
        yield url
    finally:
        stop()
        shutil.rmtree(folder, ignore_errors=True)


__all__ = ["Unavailable", "find_bin", "postgres_url", "start_postgres"]
