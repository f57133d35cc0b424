"""The parts every figure uses: a server, fresh databases, the receiver, the relay.

Each figure gets its own database, cloned from a template that is migrated and
seeded once, so that no figure inherits another's rows. The receiver and the
relay run as processes of their own, as in production; the relay's peak memory
is its ``VmHWM`` from ``/proc``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import psycopg

from relay.cluster import find_server_binary
from relay.migrations import apply_migrations

TEMPLATE = "relay_bench_template"
COMPANY, USER, PROJECT, LIST = "cmp_bench", "usr_bench", "prj_bench", "lst_bench"

SEED_SQL = f"""
INSERT INTO companies (id, slug, name) VALUES ('{COMPANY}', 'bench', 'Bench');
INSERT INTO users (id, company_id, email, first_name, last_name)
VALUES ('{USER}', '{COMPANY}', 'bench@bench.test', 'Ben', 'Ch');
INSERT INTO projects (id, company_id, slug, name)
VALUES ('{PROJECT}', '{COMPANY}', 'bench', 'Bench');
INSERT INTO project_users (project_id, user_id) VALUES ('{PROJECT}', '{USER}');
INSERT INTO todo_lists (id, project_id, title) VALUES ('{LIST}', '{PROJECT}', 'Bench');
DELETE FROM relay.events;
"""

# n new todos in one statement: n TODO_CREATED events in the outbox.
INSERT_TODOS_SQL = f"""
INSERT INTO todos (todo_list_id, title, created_by_id)
SELECT '{LIST}', 'Todo number ' || g, '{USER}' FROM generate_series(1, %s) g
"""

# The relay as the benchmark runs it: defaults, except that logging stays quiet
# (one INFO line per delivery would be a cost of its own).
RELAY_FLAGS = ("--log-level", "warning")
READY_TIMEOUT = 30.0


class Server:
    """Where the databases live: a throwaway cluster, or the server of DATABASE_URL."""

    def __init__(self, url: str) -> None:
        self.url = url

    def dsn(self, dbname: str) -> str:
        parts = urlsplit(self.url)
        return urlunsplit(parts._replace(path="/" + dbname))

    def admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.dsn("postgres"), autocommit=True)

    def prepare_template(self) -> None:
        with self.admin() as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {TEMPLATE}")
            admin.execute(f"CREATE DATABASE {TEMPLATE}")
        apply_migrations(self.dsn(TEMPLATE))
        with psycopg.connect(self.dsn(TEMPLATE), autocommit=True) as db:
            db.execute(SEED_SQL)

    @contextlib.contextmanager
    def database(self, name: str) -> Iterator[str]:
        """A fresh clone of the template, dropped afterwards; yields its DSN."""
        dbname = f"relay_bench_{name}"
        with self.admin() as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
            admin.execute(f"CREATE DATABASE {dbname} TEMPLATE {TEMPLATE}")
        try:
            yield self.dsn(dbname)
        finally:
            with self.admin() as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")

    def drop_template(self) -> None:
        with self.admin() as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {TEMPLATE}")


def add_webhooks(dsn: str, receiver_url: str, names: list[str]) -> None:
    with psycopg.connect(dsn, autocommit=True) as db:
        for name in names:
            db.execute(
                "INSERT INTO relay.webhooks (name, url, secret, created_by_id)"
                " VALUES (%s, %s, 'bench-secret', %s)",
                (name, f"{receiver_url}/hook/{name}", USER),
            )


def insert_todos(dsn: str, count: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute(INSERT_TODOS_SQL, (count,))


class ReceiverProcess:
    """``python -m bench.receiver`` and a client to ask it what arrived."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.receiver"],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        if not self.url.startswith("http://"):
            raise RuntimeError("the benchmark receiver did not start")

    async def stats(self, session: aiohttp.ClientSession) -> dict[str, Any]:
        async with session.get(f"{self.url}/stats") as response:
            result: dict[str, Any] = await response.json()
            return result

    async def arrivals(
        self, session: aiohttp.ClientSession, name: str
    ) -> dict[str, float]:
        async with session.get(f"{self.url}/arrivals/{name}") as response:
            result: dict[str, float] = await response.json()
            return result

    async def reset(self, session: aiohttp.ClientSession) -> None:
        async with session.post(f"{self.url}/reset") as response:
            await response.read()

    async def wait_for(
        self,
        session: aiohttp.ClientSession,
        expected: dict[str, int],
        timeout: float,
    ) -> float:
        """Wait until each name has its distinct deliveries; return time.monotonic()."""
        deadline = time.monotonic() + timeout
        while True:
            now = time.monotonic()
            stats = await self.stats(session)
            counts = {
                name: stats.get(name, {}).get("deliveries", 0) for name in expected
            }
            if all(counts[name] >= wanted for name, wanted in expected.items()):
                return now
            if now > deadline:
                raise TimeoutError(
                    f"only {counts} of {expected} arrived in {timeout} s"
                )
            await asyncio.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@dataclass
class RelayProcess:
    process: asyncio.subprocess.Process

    def peak_rss_mb(self) -> float:
        """The relay's high-water resident memory so far, from /proc."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM in /proc status")


@contextlib.asynccontextmanager
async def relay_process(dsn: str, *flags: str) -> AsyncIterator[RelayProcess]:
    """``relay run`` in a process of its own; entered once it is listening."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relay",
        *RELAY_FLAGS,
        "run",
        "--dsn",
        dsn,
        *flags,
        stdout=subprocess.DEVNULL,
    )
    try:
        await wait_until_listening(dsn, process)
        yield RelayProcess(process)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(20):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()


async def wait_until_listening(dsn: str, process: asyncio.subprocess.Process) -> None:
    """The relay pumps as soon as its listener is connected: wait for that."""
    connection = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            listening = await connection.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database()"
                " AND application_name = 'relay-listener'"
            )
            if listening:
                return
            if process.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError("the relay did not start listening")
            await asyncio.sleep(0.02)
    finally:
        await connection.close()


def pgbench(dsn: str, script: str, *, clients: int, seconds: float) -> float:
    """Transactions per second of ``clients`` pgbench clients running ``script``."""
    command = [
        str(find_server_binary("pgbench")),
        "--no-vacuum",
        f"--client={clients}",
        f"--jobs={min(clients, os.cpu_count() or 1)}",
        f"--time={max(1, round(seconds))}",
        "--file=-",
        dsn,
    ]
    result = subprocess.run(
        command, input=script, capture_output=True, text=True, check=True
    )
    for line in result.stdout.splitlines():
        if line.startswith("tps = "):
            return float(line.split()[2])
    raise RuntimeError(f"pgbench printed no tps:\n{result.stdout}\n{result.stderr}")


async def timed(action: Callable[[], Any]) -> float:
    """Seconds that a blocking action takes, run in a thread."""
    started = time.monotonic()
    await asyncio.to_thread(action)
    return time.monotonic() - started
