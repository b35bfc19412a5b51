"""A throw-away PostgreSQL cluster for the tests and the shared-store benchmark: `initdb` in a temporary folder, the
server on a loopback port, password (SCRAM) logins over TCP, stopped by its PID and removed.

The server refuses to run as root: as root the folder is given to the `postgres` system user and every server
program runs as that user (runuser). The binaries are Debian's (/usr/lib/postgresql/VERSION/bin), else on PATH.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

SERVER_USER = "postgres"
NO_SERVER = "PostgreSQL's server programs (initdb, postgres) are not installed: apt-get install postgresql"


def binaries() -> Path | None:
    """The folder of the newest PostgreSQL server's programs, or None when none is installed."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name)
                   if p.parent.parent.name.isdigit() else 0)
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and (Path(initdb).parent / "postgres").exists() else None


def free_port(first: int, last: int) -> int:
    """A loopback port of [first, last] that nothing listens on."""
    for port in range(first, last + 1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {first}-{last}")


class Cluster:
    """`start()`, `url(db)`, `create(db)`, `restart()`, `stop()`; the superuser is `postgres` with `password`."""

    def __init__(self, port: int, settings: dict[str, str] | None = None) -> None:
        self.bin = binaries()
        if self.bin is None:
            raise RuntimeError("PostgreSQL's server programs (initdb, postgres) are not installed")
        self.port, self.settings = port, settings or {}
        self.password = secrets.token_urlsafe(12)
        self.folder = Path(tempfile.mkdtemp(prefix="xrayviewer-pg-"))
        self.data = self.folder / "data"
        self.server: subprocess.Popen | None = None
        self.log = self.folder / "server.log"

    def _as_server_user(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", SERVER_USER, "--", *argv] if os.geteuid() == 0 else argv

    def start(self) -> "Cluster":
        """initdb on first use, then the server; on any failure nothing is left running or on disk."""
        try:
            return self._start()
        except BaseException:
            self.remove()
            raise

    def _start(self) -> "Cluster":
        if not self.data.exists():
            (self.folder / "pw").write_text(self.password)
            if os.geteuid() == 0:
                shutil.chown(self.folder, SERVER_USER, SERVER_USER)
                shutil.chown(self.folder / "pw", SERVER_USER, SERVER_USER)
            subprocess.run(self._as_server_user(
                [str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-E", "UTF8", "--no-sync",
                 "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={self.folder / 'pw'}"]),
                check=True, capture_output=True, timeout=120)
        options = {"listen_addresses": "127.0.0.1", "port": str(self.port), "unix_socket_directories": str(self.folder),
                   "max_connections": "200", **self.settings}
        argv = [str(self.bin / "postgres"), "-D", str(self.data)]
        for key, value in options.items():
            argv += ["-c", f"{key}={value}"]
        with open(self.log, "ab") as log:
            self.server = subprocess.Popen(self._as_server_user(argv), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise RuntimeError(f"PostgreSQL did not start: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    pass
                if self._ready():
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"PostgreSQL did not answer on port {self.port} within 60 s")

    def _ready(self) -> bool:
        import psycopg

        try:
            psycopg.connect(self.url("postgres"), connect_timeout=2).close()
            return True
        except psycopg.OperationalError:
            return False

    def url(self, db: str, password: bool = True) -> str:
        secret = f":{self.password}" if password else ""
        return f"postgresql://postgres{secret}@127.0.0.1:{self.port}/{db}"

    def create(self, db: str) -> str:
        """A new empty database; its URL."""
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{db}"')
        return self.url(db)

    def server_pid(self) -> int:
        """The postmaster's PID (its first line of postmaster.pid): the process to signal."""
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def stop(self, mode: int = signal.SIGINT) -> None:
        """Stop the server by its PID (SIGINT: fast shutdown, SIGQUIT: as after a crash) and wait for it."""
        if self.server is None or self.server.poll() is not None:
            return
        try:
            os.kill(self.server_pid(), mode)
        except (OSError, ValueError):
            self.server.terminate()
        try:
            self.server.wait(60)
        except subprocess.TimeoutExpired:
            os.kill(self.server_pid(), signal.SIGKILL)
            self.server.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


def running_cluster(ports: tuple[int, int]) -> Iterator[Cluster]:
    """A test module's server on a free port of `ports`, removed after it (the body of a pytest fixture)."""
    import pytest

    if binaries() is None:
        pytest.skip(NO_SERVER)
    cluster = Cluster(free_port(*ports)).start()
    yield cluster
    cluster.remove()
