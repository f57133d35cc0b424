"""The real ``relay run`` and ``relay demo`` processes: start, deliver, stop."""

from __future__ import annotations

import asyncio
import re
import signal
from typing import Any

import psycopg
import pytest

from relay import demo, demo_steps
from relay.events import CAPTURED_EVENTS
from relay.receiver import Receiver
from tests.support import (
    add_webhook,
    all_delivered,
    change,
    delivery_states,
    eventually,
    relay_command,
    relay_process,
    running_relay,
    seed_world,
)

NEW_TODO = (
    "INSERT INTO todos (id, todo_list_id, title) VALUES ('tdo_run', 'lst_inbox', 'Run')"
)
LATE_TODO = (
    "INSERT INTO todos (id, todo_list_id, title)"
    " VALUES ('tdo_late', 'lst_inbox', 'Too late')"
)
# One delivery line of the demo: number, event, signature, commit to receipt.
ROW = re.compile(r" ?(\d+)  (\w+) +(\w+) +\d+\.\d ms")


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT])
async def test_the_relay_process_delivers_and_exits_0_on_a_signal(
    db: psycopg.Connection[Any],
    dsn: str,
    receiver: Receiver,
    signal_number: signal.Signals,
) -> None:
    seed_world(db)
    webhook_id, _ = add_webhook(db, receiver, "/hook")

    async with relay_process(dsn) as relay:
        change(db, NEW_TODO)
        [request] = await receiver.wait_for(1, path="/hook")
        await eventually(lambda: all_delivered(db, expected=1))
        status = await relay.stop(signal_number)

    assert status == 0
    assert request.signature_verified is True
    assert request.payload["currentValue"]["id"] == "tdo_run"
    assert delivery_states(db) == [("TODO_CREATED", webhook_id, "delivered", 1)]
    assert relay.messages[-2:] == ["Stopping: no new claims.", "Relay stopped."]


async def test_on_sigterm_a_request_in_flight_finishes_and_nothing_new_is_claimed(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    webhook_id, _ = add_webhook(db, receiver, "/slow")
    arrived, release = asyncio.Event(), asyncio.Event()
    receiver.hold("/slow", arrived, release)

    async with relay_process(dsn, "--shutdown-grace", "10") as relay:
        change(db, NEW_TODO)
        async with asyncio.timeout(10):
            await arrived.wait()
        relay.process.send_signal(signal.SIGTERM)
        await eventually(lambda: "Stopping: no new claims." in relay.messages)
        change(db, LATE_TODO)
        # Nothing to wait for: a relay still claiming would have taken the event
        # at its next look, within one 0.2 s poll; five pass before the release.
        await asyncio.sleep(1.0)
        release.set()
        async with asyncio.timeout(15):
            status = await relay.process.wait()

    assert status == 0
    assert receiver.arrivals["/slow"] == 1
    [request] = receiver.on("/slow")
    assert request.payload["currentValue"]["id"] == "tdo_run"
    assert delivery_states(db) == [("TODO_CREATED", webhook_id, "delivered", 1)]
    assert db.execute(
        "SELECT attempt, outcome, status_code FROM relay.attempts"
    ).fetchall() == [(1, "delivered", 200)]
    # The event committed after SIGTERM waits for the next relay, not fanned out.
    assert db.execute(
        "SELECT entity_id, fanned_out_at IS NULL FROM relay.events ORDER BY id"
    ).fetchall() == [("tdo_run", False), ("tdo_late", True)]
    stopping = relay.messages.index("Stopping: no new claims.")
    assert relay.messages[stopping:] == [
        "Stopping: no new claims.",
        "Delivered TODO_CREATED.",
        "Relay stopped.",
    ]


async def test_a_request_held_past_the_grace_is_released_for_another_relay(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    webhook_id, _ = add_webhook(db, receiver, "/slow")
    arrived = asyncio.Event()
    release = asyncio.Event()
    receiver.hold("/slow", arrived, release)

    async with relay_process(dsn, "--shutdown-grace", "0.5") as relay:
        change(db, NEW_TODO)
        async with asyncio.timeout(10):
            await arrived.wait()
        status = await relay.stop(signal.SIGTERM)
    released = db.execute(
        "SELECT state, claimed_by, attempts, next_attempt_at <= now()"
        " FROM relay.deliveries"
    ).fetchall()
    attempts_recorded = db.execute("SELECT count(*) FROM relay.attempts").fetchone()

    # The held request is answered only now, long after its relay hung up.
    release.set()
    await receiver.wait_for(1, path="/slow")
    async with running_relay(dsn):
        await receiver.wait_for(2, path="/slow")
        await eventually(lambda: all_delivered(db, expected=1))

    assert status == 0
    assert released == [("pending", None, 0, True)]
    assert attempts_recorded == (0,)
    assert relay.messages[-3:] == [
        "Stopping: no new claims.",
        "Released 1 unfinished claims.",
        "Relay stopped.",
    ]
    abandoned, delivered = receiver.on("/slow")
    assert abandoned.body == delivered.body
    assert abandoned.headers["X-Relay-Attempt"] == "1"
    assert delivered.headers["X-Relay-Attempt"] == "1"
    assert delivery_states(db) == [("TODO_CREATED", webhook_id, "delivered", 1)]
    assert db.execute(
        "SELECT attempt, outcome, status_code FROM relay.attempts"
    ).fetchall() == [(1, "delivered", 200)]


def test_the_demo_delivers_each_captured_event_verified_and_cleans_up(
    db: psycopg.Connection[Any], dsn: str
) -> None:
    result = relay_command("demo", dsn=dsn, timeout=120)

    assert result.returncode == 0, result.stderr
    count = len(demo_steps.STEPS)
    lines = result.stdout.splitlines()
    header, rows = lines[0], lines[1 : 1 + count]
    summary, context = lines[1 + count], lines[2 + count :]
    assert header == demo.HEADER
    # A row that does not match stays whole, so a failure shows it.
    printed = [match.groups() if (match := ROW.fullmatch(row)) else row for row in rows]
    assert printed == [
        (str(number), step.event, "verified")
        for number, step in enumerate(demo_steps.STEPS, start=1)
    ]
    assert sorted(event for _, event, _ in printed) == sorted(CAPTURED_EVENTS)
    # The columns line up under the header, the longest event name included.
    assert {len(row) for row in rows} == {len(header)}
    assert summary.startswith(
        f"{count} events delivered, {count} signatures verified; "
    )
    assert context == [
        "TODO_CREATED carried its context: todo 'Call the supplier' in list 'Inbox'"
        " of project 'Operations' of company 'Acme'."
    ]
    assert db.execute("SELECT count(*) FROM relay.webhooks").fetchone() == (0,)
