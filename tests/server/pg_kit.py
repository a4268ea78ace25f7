"""A throwaway PostgreSQL cluster for the tests: initdb/pg_ctl from ``pg_config --bindir`` in a
temporary folder, on a free port of 127.0.0.1, as the ``postgres`` user when the tests run as
root (PostgreSQL refuses to run as root). Stopped at the end of the session."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


class PostgresUnavailable(Exception):
    """Why no cluster can run here (the tests skip with this reason)."""


def _bindir() -> Path:
    pg_config = shutil.which("pg_config")
    candidates = []
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        candidates.append(Path(out.stdout.strip()))
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for path in candidates:
        if (path / "initdb").exists() and (path / "pg_ctl").exists():
            return path
    raise PostgresUnavailable(
        "no PostgreSQL server binaries (initdb, pg_ctl): apt-get install postgresql"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    def __init__(self) -> None:
        self.bindir = _bindir()
        self.as_root = os.geteuid() == 0
        if self.as_root and shutil.which("runuser") is None:
            raise PostgresUnavailable("running as root without runuser to become postgres")
        self.folder = Path(tempfile.mkdtemp(prefix="kobo-pg-"))
        os.chmod(self.folder, 0o755)  # the postgres user must be able to enter it
        if self.as_root:
            try:
                shutil.chown(self.folder, "postgres", "postgres")
            except (LookupError, PermissionError) as exc:
                raise PostgresUnavailable(
                    f"cannot hand the cluster folder to postgres: {exc}"
                ) from None
        self.data = self.folder / "data"
        self.port = _free_port()
        self.started = False
        self._n = 0

    def _run(self, *args: str) -> None:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
        if done.returncode != 0:
            raise PostgresUnavailable(
                f"{args[0]} failed: {(done.stderr or done.stdout).strip()[-500:]}"
            )

    def start(self) -> Cluster:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.folder / "log"),
            "-w",
            "start",
        )
        self.started = True
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        self._n += 1
        name = f"kobo_{self._n}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        if self.started:
            try:
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
            except PostgresUnavailable:
                pass
        shutil.rmtree(self.folder, ignore_errors=True)
