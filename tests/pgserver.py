"""A real PostgreSQL server for the tests: a throwaway cluster in a temporary directory, on a free port.

``initdb`` and ``pg_ctl`` come from the system (Debian's ``postgresql`` package, installed by
scripts/system-deps.sh). As root the cluster is run by the ``postgres`` user, since PostgreSQL refuses to run
as root. Each test asks for a fresh database with :meth:`PostgresServer.new_database`.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

USER = "lienthong"


def find_tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else None


@dataclass
class PostgresServer:
    port: int
    directory: Path

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{USER}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A new empty database; its SQLAlchemy URL."""
        import psycopg

        name = f"t_{secrets.token_hex(6)}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user={USER} dbname=postgres", autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _as_postgres_user() -> list[str]:
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser is None:
        raise RuntimeError("running as root, and runuser is missing: cannot start PostgreSQL as user postgres")
    return [runuser, "-u", "postgres", "--"]


@contextmanager
def postgres_server(directory: Path) -> Iterator[PostgresServer]:
    initdb, pg_ctl = find_tool("initdb"), find_tool("pg_ctl")
    if initdb is None or pg_ctl is None:
        raise FileNotFoundError("initdb/pg_ctl not found (Debian package postgresql)")
    data = directory / "pgdata"
    data.mkdir(parents=True)
    prefix = _as_postgres_user()
    if prefix:
        shutil.chown(directory, "postgres")
        shutil.chown(data, "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    subprocess.run(
        [*prefix, initdb, "-D", str(data), "-U", USER, "-A", "trust", "-E", "UTF8", "--no-sync", "--locale=C.UTF-8"],
        check=True,
        capture_output=True,
    )
    options = f"-F -p {port} -k {data} -c listen_addresses=127.0.0.1 -c max_connections=200"
    subprocess.run(
        [*prefix, pg_ctl, "-D", str(data), "-o", options, "-l", str(data / "server.log"), "-w", "start"],
        check=True,
        capture_output=True,
    )
    try:
        yield PostgresServer(port, directory)
    finally:
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], check=False, capture_output=True)
