"""Shared pieces of the tests: a seeded world, a running relay, webhooks, waiting."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import psycopg

from relay import webhooks
from relay.receiver import Receiver
from relay.service import RelayService
from relay.settings import Settings

T = TypeVar("T")

# Settings that make a relay quick to react in tests; timeouts stay generous.
FAST = {
    "poll_interval": 0.2,
    "retry_schedule": (0.2,) * 7,
    "request_timeout": 5.0,
    "lease": 30.0,
    "shutdown_grace": 2.0,
}

WORLD_SQL = """
INSERT INTO companies (id, slug, name, description)
VALUES ('cmp_acme', 'acme', 'Acme', 'Makes everything'),
       ('cmp_globex', 'globex', 'Globex', NULL);
INSERT INTO users (id, company_id, email, first_name, last_name)
VALUES ('usr_alice', 'cmp_acme', 'alice@acme.test', 'Alice', 'Liddell'),
       ('usr_carol', 'cmp_acme', 'carol@acme.test', 'Carol', 'Danvers'),
       ('usr_bob', 'cmp_globex', 'bob@globex.test', 'Bob', 'Belcher');
INSERT INTO projects (id, company_id, slug, name, category)
VALUES ('prj_ops', 'cmp_acme', 'ops', 'Operations', 'ENGINEERING'),
       ('prj_sales', 'cmp_acme', 'sales', 'Sales', NULL),
       ('prj_globex', 'cmp_globex', 'plans', 'Plans', NULL);
INSERT INTO project_users (project_id, user_id)
VALUES ('prj_ops', 'usr_alice'), ('prj_sales', 'usr_alice'),
       ('prj_sales', 'usr_carol'), ('prj_globex', 'usr_bob');
INSERT INTO todo_lists (id, project_id, title, position)
VALUES ('lst_inbox', 'prj_ops', 'Inbox', 131070),
       ('lst_later', 'prj_ops', 'Later', 196605),
       ('lst_pipeline', 'prj_sales', 'Pipeline', 65535);
INSERT INTO todos (id, todo_list_id, title, html, text, position, created_by_id)
VALUES ('tdo_base', 'lst_inbox', 'Call the supplier', '<p>Call</p>', 'Call',
        65535.5, 'usr_alice'),
       ('tdo_bare', 'lst_inbox', 'Water the plants', NULL, NULL, 98302.75, NULL);
INSERT INTO todo_users (id, todo_id, user_id)
VALUES ('tdu_base', 'tdo_base', 'usr_alice');
INSERT INTO tags (id, project_id, title, color)
VALUES ('tag_urgent', 'prj_ops', 'Urgent', 'red');
INSERT INTO todo_tags (id, todo_id, tag_id)
VALUES ('tdt_base', 'tdo_base', 'tag_urgent');
INSERT INTO custom_fields (id, project_id, name, type)
VALUES ('cfd_budget', 'prj_ops', 'Budget', 'CURRENCY');
INSERT INTO todo_custom_fields (id, todo_id, custom_field_id, value)
VALUES ('tcf_base', 'tdo_base', 'cfd_budget', '{"amount": "1200.50"}');
INSERT INTO comments (id, todo_id, html, text, created_by_id)
VALUES ('cmt_base', 'tdo_base', '<p>First</p>', 'First', 'usr_alice');
INSERT INTO todo_checklists (id, todo_id, title, created_by_id)
VALUES ('chk_base', 'tdo_base', 'Before the call', 'usr_alice');
"""


# The checklist item that the seeded checklist lacks, for tests of item events.
NEW_ITEM = (
    "INSERT INTO todo_checklist_items (id, todo_checklist_id, title)"
    " VALUES ('cki_base', 'chk_base', 'Find the number');"
)


def bulk_todos(count: int, list_id: str) -> str:
    """SQL adding ``count`` todos, tdo_bulk_00001 and on, to one list."""
    return (
        "INSERT INTO todos (id, todo_list_id, title)"
        f" SELECT 'tdo_bulk_' || lpad(n::text, 5, '0'), '{list_id}', 'Bulk ' || n"
        f" FROM generate_series(1, {count}) n;"
    )


def seed_world(db: psycopg.Connection[Any]) -> None:
    """Acme (Alice in Ops and Sales, Carol in Sales only) and Globex (Bob)."""
    with db.transaction():
        db.execute(WORLD_SQL)
        # The seed's own events predate every webhook; a clean outbox is clearer.
        db.execute("DELETE FROM relay.events")


def add_webhook(
    db: psycopg.Connection[Any],
    receiver: Receiver,
    path: str,
    *,
    created_by: str = "usr_alice",
    events: Sequence[str] = (),
    project_ids: Sequence[str] = (),
    secret: str | None = None,
) -> tuple[str, str]:
    """Register a webhook POSTing to ``path``; return its id and secret."""
    created, secret = webhooks.create(
        db,
        webhooks.NewWebhook(
            name=f"test {path}",
            url=receiver.url(path),
            created_by_id=created_by,
            events=events,
            project_ids=project_ids,
            secret=secret,
        ),
    )
    receiver.expect_secret(path, secret)
    return created["id"], secret


def change(
    db: psycopg.Connection[Any], sql: str, actor: str | None = "usr_alice"
) -> None:
    """Run ``sql`` in one transaction, naming the acting user as the README says."""
    with db.transaction():
        if actor is not None:
            db.execute("SELECT set_config('relay.actor_id', %s, true)", (actor,))
        db.execute(sql)


def outbox(db: psycopg.Connection[Any], *columns: str) -> list[tuple[Any, ...]]:
    """These columns (event and entity_id by default) of every event, in order."""
    listed = ", ".join(columns or ("event", "entity_id"))
    return db.execute(f"SELECT {listed} FROM relay.events ORDER BY id").fetchall()


@contextlib.asynccontextmanager
async def running_relay(dsn: str, **overrides: Any) -> AsyncIterator[RelayService]:
    """A relay in this process, ready (listening) on entry, drained on exit."""
    settings = dataclasses.replace(Settings(dsn=dsn, **FAST), **overrides)
    relay = RelayService(settings)
    task = asyncio.create_task(relay.run())
    ready = asyncio.create_task(relay.ready.wait())
    try:
        await asyncio.wait(
            {task, ready}, timeout=15, return_when=asyncio.FIRST_COMPLETED
        )
        if task.done():
            task.result()  # raises why the relay could not start
        assert relay.ready.is_set(), "the relay did not start within 15 s"
        yield relay
    finally:
        ready.cancel()
        relay.stop()
        async with asyncio.timeout(20):
            await task


async def eventually(
    check: Callable[[], T], *, timeout: float = 10.0, interval: float = 0.02
) -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s: {check}")
        await asyncio.sleep(interval)


def delivery_states(db: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    """(event, webhook_id, state, attempts) of every delivery, in event order."""
    return db.execute(
        "SELECT e.event, d.webhook_id, d.state, d.attempts"
        " FROM relay.deliveries d JOIN relay.events e ON e.id = d.event_id"
        " ORDER BY d.event_id, d.webhook_id"
    ).fetchall()


def all_delivered(db: psycopg.Connection[Any], expected: int) -> bool:
    rows = delivery_states(db)
    return len(rows) == expected and all(row[2] == "delivered" for row in rows)


# The same, as flags of ``relay run``.
FAST_FLAGS = ["--poll-interval", "0.2", "--retry-schedule", "0.2s,0.2s,0.2s"]


def relay_environment(dsn: str | None, **extra: str) -> dict[str, str]:
    """This process's environment with DATABASE_URL set to ``dsn`` (or unset)."""
    environment = {
        key: value for key, value in os.environ.items() if key != "DATABASE_URL"
    }
    if dsn is not None:
        environment["DATABASE_URL"] = dsn
    return {**environment, **extra}


def relay_command(
    *arguments: str, dsn: str | None = None, timeout: float = 60, **extra_env: str
) -> subprocess.CompletedProcess[str]:
    """Run the real ``relay`` command with DATABASE_URL set to ``dsn`` (or unset)."""
    return subprocess.run(
        [sys.executable, "-m", "relay", *arguments],
        env=relay_environment(dsn, **extra_env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class RelayProcess:
    process: asyncio.subprocess.Process
    # The JSON log lines of its stderr, parsed, as they arrive.
    log: list[dict[str, Any]] = field(default_factory=list)

    @property
    def messages(self) -> list[str]:
        return [line["message"] for line in self.log]

    async def stop(self, signal_number: signal.Signals) -> int:
        """Send the signal and return the exit status, which must come within 15 s."""
        self.process.send_signal(signal_number)
        async with asyncio.timeout(15):
            return await self.process.wait()


@contextlib.asynccontextmanager
async def relay_process(
    dsn: str, *options: str, **extra_env: str
) -> AsyncIterator[RelayProcess]:
    """``relay run`` as a subprocess, started (listening) on entry, killed if left."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relay",
        "--log-format",
        "json",
        "run",
        *FAST_FLAGS,
        *options,
        env=relay_environment(dsn, **extra_env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    relay = RelayProcess(process)
    reader = asyncio.create_task(read_log(process, relay.log))
    try:
        await eventually(
            lambda: "Relay started." in relay.messages or reader.done(), timeout=15
        )
        assert "Relay started." in relay.messages, reader.result()
        yield relay
    finally:
        if process.returncode is None:
            process.kill()
        async with asyncio.timeout(15):
            await process.wait()
            await reader


async def read_log(process: asyncio.subprocess.Process, log: list[Any]) -> str:
    """Parse every stderr line as JSON until the end; return what was no JSON."""
    assert process.stderr is not None
    unparsed = []
    async for line in process.stderr:
        try:
            log.append(json.loads(line))
        except json.JSONDecodeError:
            unparsed.append(line.decode())
    return "".join(unparsed)
