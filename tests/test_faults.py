"""Faults that really happen, to real relay processes: SIGKILL under load, a
PostgreSQL restart, three relays sharing one database."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import signal
import socket
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest

from relay.cluster import ThrowawayCluster
from relay.migrations import apply_migrations
from relay.receiver import Receiver
from tests.support import (
    add_webhook,
    all_delivered,
    delivery_states,
    eventually,
    relay_process,
    seed_world,
)

BULK_TODOS = (
    "INSERT INTO todos (id, todo_list_id, title)"
    " SELECT 'tdo_bulk_' || n, 'lst_inbox', 'bulk ' || n"
    " FROM generate_series(1, %s) AS n"
)


def event_ids(db: psycopg.Connection[Any], where: str = "true") -> set[str]:
    rows = db.execute(
        f"SELECT DISTINCT 'evt_' || d.event_id FROM relay.deliveries d WHERE {where}"
    ).fetchall()
    return {row[0] for row in rows}


async def test_a_relay_killed_under_load_loses_nothing(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    _, secret = add_webhook(db, receiver, "/hook")
    events = 1000
    options = [
        "--lease",
        "2",
        "--request-timeout",
        "1",
        "--max-in-flight-per-webhook",
        "64",
    ]

    async with relay_process(dsn, *options) as doomed:
        db.execute(BULK_TODOS, (events,))
        await receiver.wait_for(200, path="/hook", timeout=30)
        doomed.process.kill()
        async with asyncio.timeout(10):
            await doomed.process.wait()
    worker = f"{socket.gethostname()}:{doomed.process.pid}"
    held = event_ids(db, f"d.state = 'pending' AND d.claimed_by = '{worker}'")
    received_before = len(receiver.requests)

    async with relay_process(dsn, *options) as successor:
        await eventually(lambda: all_delivered(db, expected=events), timeout=60)

    by_event: dict[str, list[Any]] = collections.defaultdict(list)
    for request in receiver.on("/hook"):
        by_event[request.headers["webhook-id"]].append(request)
    duplicated = {event for event, requests in by_event.items() if len(requests) > 1}
    assert doomed.process.returncode == -9
    assert 200 <= received_before < events
    assert held  # the kill came in the middle of a batch
    assert set(by_event) == event_ids(db)
    assert len(by_event) == events
    assert duplicated <= held
    for event in duplicated:
        requests = by_event[event]
        assert {request.headers["X-Relay-Event-Id"] for request in requests} == {event}
        assert len({request.body for request in requests}) == 1
    assert all(request.signature_verified for request in receiver.requests)
    logs = json.dumps(doomed.log + successor.log)
    assert secret not in logs
    assert "v1," not in logs
    assert not any(len(value) == 64 and value in logs for value in signatures(receiver))


def signatures(receiver: Receiver) -> set[str]:
    return {request.headers["X-Signature"] for request in receiver.requests}


async def test_three_relays_deliver_5000_events_exactly_once_per_webhook(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    add_webhook(db, receiver, "/first")
    add_webhook(db, receiver, "/second")
    events = 5000
    options = ["--batch-size", "200", "--max-in-flight-per-webhook", "32"]

    async with contextlib.AsyncExitStack() as stack:
        relays = [
            await stack.enter_async_context(relay_process(dsn, *options))
            for _ in range(3)
        ]
        db.execute(BULK_TODOS, (events,))
        await receiver.wait_for(2 * events, timeout=120)
        await eventually(lambda: all_delivered(db, expected=2 * events), timeout=60)

    received = collections.Counter(
        (request.path, request.headers["webhook-id"]) for request in receiver.requests
    )
    assert len(received) == 2 * events
    assert set(received.values()) == {1}
    assert db.execute(
        "SELECT count(*), count(DISTINCT delivery_id) FROM relay.attempts"
    ).fetchone() == (2 * events, 2 * events)
    claimed = [
        sum(line["count"] for line in relay.log if line.get("action") == "claimed")
        for relay in relays
    ]
    assert sum(claimed) == 2 * events
    # Shared: each of the three took some of the work.
    assert min(claimed) > 0, claimed


def all_of_at_least(db: psycopg.Connection[Any], count: int) -> bool:
    """Every delivery delivered, and at least ``count`` of them."""
    rows = delivery_states(db)
    return len(rows) >= count and all(row[2] == "delivered" for row in rows)


@pytest.fixture
def own_cluster() -> Any:
    """A PostgreSQL server of this test's own, free to be restarted."""
    with ThrowawayCluster(durable=False) as cluster:
        yield cluster


async def keep_writing(dsn: str, committed: list[str], stop: asyncio.Event) -> None:
    """Commit one todo at a time until told to stop, riding out an outage."""
    number = 0
    while not stop.is_set():
        try:
            async with await psycopg.AsyncConnection.connect(
                dsn, autocommit=True, connect_timeout=2
            ) as connection:
                while not stop.is_set():
                    todo = f"tdo_steady_{number}"
                    await connection.execute(
                        "INSERT INTO todos (id, todo_list_id, title)"
                        " VALUES (%s, 'lst_inbox', 'steady')",
                        (todo,),
                    )
                    committed.append(todo)
                    number += 1
                    await asyncio.sleep(0.02)
        except psycopg.OperationalError:
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def writer(dsn: str) -> AsyncIterator[list[str]]:
    committed: list[str] = []
    stop = asyncio.Event()
    task = asyncio.create_task(keep_writing(dsn, committed, stop))
    try:
        yield committed
    finally:
        stop.set()
        async with asyncio.timeout(10):
            await task


async def test_a_postgresql_restart_loses_nothing_and_ends_no_relay(
    own_cluster: ThrowawayCluster, receiver: Receiver
) -> None:
    dsn = own_cluster.dsn()
    apply_migrations(dsn)
    with psycopg.connect(dsn, autocommit=True) as db:
        seed_world(db)
        add_webhook(db, receiver, "/hook")

    async with relay_process(dsn) as relay:
        async with writer(dsn) as committed:
            await eventually(lambda: len(committed) >= 20)
            await asyncio.to_thread(own_cluster.restart)
            restarted_at = len(committed)
            await eventually(lambda: len(committed) >= restarted_at + 20)
        with psycopg.connect(dsn, autocommit=True) as db:
            await eventually(lambda: all_of_at_least(db, len(committed)), timeout=60)
        alive = relay.process.returncode is None
        status = await relay.stop(signal.SIGTERM)

    delivered = {r.payload["currentValue"]["id"] for r in receiver.on("/hook")}
    # An insert whose commit reached the server as it went down may have lost
    # only its answer: delivered, though the writer never heard it committed.
    assert set(committed) <= delivered
    assert len(delivered - set(committed)) <= 1
    assert alive
    assert status == 0
    # One warning for the whole outage, from whichever part met it first.
    warned = [
        (line["logger"], line["action"])
        for line in relay.log
        if line["level"] in ("WARNING", "ERROR")
    ]
    assert len(warned) == 1
    assert warned[0] in {
        ("relay.listener", "reconnecting"),
        ("relay.service", "reconnecting"),
        ("relay.recorder", "record"),
    }
    assert "Database available again; catching up." in relay.messages
    assert any(
        message.startswith("Listening again after") for message in relay.messages
    )
