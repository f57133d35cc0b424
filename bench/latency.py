"""Latency: from a writer's commit to the receiver's receipt, at a steady rate.

One writer commits one todo every 1/rate seconds; the receiver (its own process)
notes when each event arrives; both clocks are this machine's ``time.time()``.
The baseline is the same relay with its doorbell silenced (the trigger on the
outbox disabled), so that only the safety-net poll, every second, finds events.
"""

from __future__ import annotations

import asyncio
import statistics
import time

import aiohttp
import asyncpg
import psycopg

from bench.harness import (
    LIST,
    USER,
    ReceiverProcess,
    Server,
    add_webhooks,
    relay_process,
)
from bench.report import Row
from bench.writes import disable_triggers

INSERT_ONE = (
    "INSERT INTO todos (todo_list_id, title, created_by_id)"
    f" VALUES ('{LIST}', 'Latency probe', '{USER}') RETURNING id"
)


async def write_steadily(dsn: str, rate: float, seconds: float) -> dict[str, float]:
    """Commit one todo per 1/rate s; return the commit time of each todo id."""
    committed: dict[str, float] = {}
    connection = await asyncpg.connect(dsn)
    try:
        start = time.monotonic()
        for index in range(round(rate * seconds)):
            delay = start + index / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            todo_id = await connection.fetchval(INSERT_ONE)
            committed[todo_id] = time.time()
    finally:
        await connection.close()
    return committed


async def measure(
    dsn: str,
    receiver: ReceiverProcess,
    session: aiohttp.ClientSession,
    rate: float,
    seconds: float,
) -> list[float]:
    """Milliseconds from commit to receipt of every event written."""
    await receiver.reset(session)
    async with relay_process(dsn):
        committed = await write_steadily(dsn, rate, seconds)
        await receiver.wait_for(session, {"latency": len(committed)}, timeout=30)
    arrivals = await receiver.arrivals(session, "latency")

    with psycopg.connect(dsn) as db:
        events: dict[str, int] = dict(
            db.execute(
                "SELECT entity_id, id FROM relay.events WHERE entity_id = ANY (%s)",
                (list(committed),),
            ).fetchall()
        )
    return [
        (arrivals[f"evt_{events[todo_id]}"] - committed_at) * 1000
        for todo_id, committed_at in committed.items()
    ]


def percentile(values: list[float], point: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[point - 1]


async def run(
    server: Server, receiver: ReceiverProcess, rate: float, seconds: float
) -> list[Row]:
    async with aiohttp.ClientSession() as session:
        with server.database("latency") as dsn:
            add_webhooks(dsn, receiver.url, ["latency"])
            woken = await measure(dsn, receiver, session, rate, seconds)
            with psycopg.connect(dsn, autocommit=True) as db:
                disable_triggers(db, "relay.events", "relay_%")
            polled = await measure(dsn, receiver, session, rate, seconds)

    details = {
        "rate_per_second": rate,
        "seconds": seconds,
        "events": len(woken),
        "max_ms": max(woken),
        "baseline_max_ms": max(polled),
    }
    rows = []
    for point, target in ((50, 5.0), (99, 25.0)):
        value, baseline = percentile(woken, point), percentile(polled, point)
        rows.append(
            Row(
                figure="latency",
                measured=f"p{point} commit to receipt",
                value=value,
                unit="ms",
                baseline_name="polling every 1 s",
                baseline=baseline,
                ratio=value / baseline,
                target=f"<= {target:g} ms",
                met=value <= target,
                details=details,
            )
        )
    return rows
