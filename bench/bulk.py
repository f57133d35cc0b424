"""Bulk: one UPDATE of 10,000 todos, with and without capture, and its delivery.

The same database holds 10,000 todos. The UPDATE first runs with relay's
triggers on ``todos`` disabled, then with them as installed, while a relay with
one webhook runs; the second UPDATE's 10,000 events are then timed from its
commit until the receiver has them all.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import psycopg
from psycopg import sql

from bench.harness import (
    LIST,
    ReceiverProcess,
    Server,
    add_webhooks,
    insert_todos,
    relay_process,
)
from bench.report import Row

UPDATE_SQL = f"UPDATE todos SET title = title || '.' WHERE todo_list_id = '{LIST}'"


def timed_update(dsn: str, capture: bool) -> float:
    """Seconds the UPDATE takes, commit included."""
    with psycopg.connect(dsn, autocommit=True) as db:
        names = [
            row[0]
            for row in db.execute(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = 'public.todos'::regclass"
                " AND NOT tgisinternal AND tgname LIKE 'relay_%'"
            )
        ]
        action = "ENABLE ALWAYS" if capture else "DISABLE"
        for name in names:
            db.execute(
                sql.SQL("ALTER TABLE public.todos {} TRIGGER {}").format(
                    sql.SQL(action), sql.Identifier(name)
                )
            )
        db.execute("SELECT count(*) FROM todos")
        started = time.monotonic()
        db.execute(UPDATE_SQL)
        return time.monotonic() - started


async def run(server: Server, receiver: ReceiverProcess, rows_count: int) -> list[Row]:
    async with aiohttp.ClientSession() as session:
        await receiver.reset(session)
        with server.database("bulk") as dsn:
            await asyncio.to_thread(insert_todos, dsn, rows_count)
            with psycopg.connect(dsn, autocommit=True) as db:
                db.execute("DELETE FROM relay.events")
                db.execute("VACUUM ANALYZE todos")
            add_webhooks(dsn, receiver.url, ["bulk"])
            async with relay_process(dsn):
                plain = await asyncio.to_thread(timed_update, dsn, False)
                captured = await asyncio.to_thread(timed_update, dsn, True)
                committed = time.monotonic()
                delivered = await receiver.wait_for(
                    session, {"bulk": rows_count}, timeout=300
                )

    return [
        Row(
            figure="bulk",
            measured=f"UPDATE of {rows_count:,} todos",
            value=captured * 1000,
            unit="ms",
            baseline_name="without capture",
            baseline=plain * 1000,
            ratio=captured / plain,
            target="report",
            met=None,
            details={"all_delivered_seconds": delivered - committed},
        ),
        Row(
            figure="bulk",
            measured="commit to all delivered",
            value=(delivered - committed) * 1000,
            unit="ms",
            baseline_name="UPDATE without capture",
            baseline=plain * 1000,
            ratio=(delivered - committed) / plain,
            target="report",
            met=None,
        ),
    ]
