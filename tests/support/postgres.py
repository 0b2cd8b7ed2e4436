"""A PostgreSQL for the tests: the one on 127.0.0.1:5432 if it answers, else a throwaway cluster.

The throwaway cluster is made with ``initdb`` and started with ``pg_ctl`` in a temporary directory on a
free port (as the ``postgres`` or ``nobody`` user when the tests run as root, since PostgreSQL refuses
to run as root). Each test gets its own database, cloned from a migrated template in milliseconds.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _answers(dsn: str) -> bool:
    try:
        conn = await asyncpg.connect(dsn, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await conn.close()
    return True


@dataclass
class PostgresServer:
    """A reachable server: ``dsn`` of its maintenance database, and how to stop it if we started it."""

    dsn: str
    data_dir: Path | None = None
    run_as: str | None = None

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of ``database`` on this server."""
        base = self.dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
        return f"{base}/{database}"

    async def execute(self, sql: str) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def stop(self) -> None:
        if self.data_dir is not None:
            _run_as(self.run_as, ["pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "stop"])
            shutil.rmtree(self.data_dir.parent, ignore_errors=True)


def _run_as(user: str | None, argv: list[str]) -> subprocess.CompletedProcess[str]:
    if user:
        argv = ["runuser", "-u", user, "--", *argv]
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)


def _start_throwaway() -> PostgresServer | str:
    if shutil.which("initdb") is None or shutil.which("pg_ctl") is None:
        return "no PostgreSQL answers on 127.0.0.1:5432 and initdb/pg_ctl are not on PATH"
    run_as = None
    if os.geteuid() == 0:
        for candidate in ("postgres", "nobody"):
            try:
                pwd.getpwnam(candidate)
            except KeyError:
                continue
            run_as = candidate
            break
    root = Path(tempfile.mkdtemp(prefix="ailab-pg-"))
    data_dir = root / "data"
    if run_as:
        os.chmod(root, 0o777)
    port = free_port()
    init = _run_as(run_as, ["initdb", "-D", str(data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8"])
    if init.returncode != 0:
        return f"initdb failed: {init.stderr.strip()[-300:]}"
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    start = _run_as(
        run_as, ["pg_ctl", "-D", str(data_dir), "-o", options, "-w", "-l", str(root / "log"), "start"]
    )
    if start.returncode != 0:
        return f"pg_ctl start failed: {start.stderr.strip()[-300:]}"
    return PostgresServer(f"postgresql://postgres@127.0.0.1:{port}/postgres", data_dir, run_as)


def find_or_start() -> PostgresServer | str:
    """A PostgreSQL server for the tests, or the reason there is none."""
    dsn = os.environ.get("AILAB_TEST_PG_DSN", DEFAULT_DSN)
    if asyncio.run(_answers(dsn)):
        return PostgresServer(dsn)
    return _start_throwaway()


def unique_name(prefix: str) -> str:
    """A database name no other test run uses."""
    return f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
