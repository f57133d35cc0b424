"""The claim query on its own: what holds a slot of a webhook's in-flight limit."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import asyncpg
import psycopg

from relay import claims, payloads
from relay.receiver import Receiver
from tests.support import add_webhook, change, seed_world

NEW_TODO = (
    "INSERT INTO todos (id, todo_list_id, title) VALUES ('{id}', 'lst_inbox', 'x')"
)
LEASE = 60.0


async def test_a_request_that_has_ended_holds_no_slot_while_its_result_waits(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    add_webhook(db, receiver, "/one")
    for todo in ("tdo_first", "tdo_second"):
        change(db, NEW_TODO.format(id=todo))
    relay = await asyncpg.connect(dsn)
    try:
        assert await claims.fan_out(relay, 100) == 2
        first, bodies = await claims.claim(
            relay, "relay-a", 10, LEASE, per_webhook=1, build=True
        )
        assert [item.attempt for item in first] == [1]
        # The body that comes with the claim is the one built on its own.
        built = await payloads.build(relay, [first[0].delivery_id])
        assert bodies == built
        assert json.loads(built[first[0].delivery_id])["currentValue"]["id"] == (
            "tdo_first"
        )

        # Its request is still on the wire: the one slot is taken, for every relay.
        assert await claims.claim(relay, "relay-a", 10, LEASE, per_webhook=1) == (
            [],
            {},
        )
        # Its answer came and its result is on the way to the database: the relay
        # that knows it may use the slot at once.
        answered = [first[0].delivery_id]
        second, _ = await claims.claim(
            relay, "relay-a", 10, LEASE, 1, answered=answered
        )
    finally:
        await relay.close()

    assert [item.event_id for item in second] == [first[0].event_id + 1]
    rows = db.execute(
        "SELECT claimed_by, attempts FROM relay.deliveries ORDER BY id"
    ).fetchall()
    assert rows == [("relay-a", 1), ("relay-a", 1)]


async def test_a_late_success_from_before_a_replay_does_not_end_the_replay(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    add_webhook(db, receiver, "/one")
    change(db, NEW_TODO.format(id="tdo_replayed"))
    relay = await asyncpg.connect(dsn)
    try:
        await claims.fan_out(relay, 100)
        [stale], _ = await claims.claim(relay, "relay-a", 10, LEASE, per_webhook=1)
        # Its lease ran out, another relay delivered it, and an operator replayed it.
        change(
            db,
            "UPDATE relay.deliveries SET state = 'pending', replays = 1,"
            " retry_base = 2, attempts = 2, claimed_by = NULL,"
            " next_attempt_at = now()",
        )
        # Only now does the first relay's success come in.
        await claims.write_attempts(
            relay,
            [
                claims.AttemptRecord(
                    claim=stale,
                    outcome="delivered",
                    status_code=200,
                    duration_ms=1.0,
                    error=None,
                    response_excerpt="ok",
                    attempted_at=datetime.now(UTC),
                    retry_in_seconds=None,
                    body=b"{}",
                )
            ],
        )
    finally:
        await relay.close()

    # The attempt is history; the replay still waits to be sent.
    assert db.execute(
        "SELECT state, replays, attempts FROM relay.deliveries"
    ).fetchall() == [("pending", 1, 2)]
    assert db.execute(
        "SELECT attempt, outcome, replay, body FROM relay.attempts"
    ).fetchall() == [(1, "delivered", 0, "{}")]
