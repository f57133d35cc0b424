"""Webhook health: UNHEALTHY after failures in a row, HEALTHY again on a success,
disabled after failing too long; every change recorded and announced. And one
slow endpoint holds only its own deliveries."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import psycopg

from relay.receiver import Receiver
from tests.support import (
    add_webhook,
    all_delivered,
    change,
    delivery_states,
    eventually,
    running_relay,
    seed_world,
)

NEW_TODO = (
    "INSERT INTO todos (id, todo_list_id, title) VALUES ('{id}', 'lst_inbox', 'x')"
)
CHANGES = (
    "SELECT old_status, new_status, old_enabled, new_enabled, reason"
    " FROM relay.webhook_status_changes WHERE webhook_id = %s ORDER BY id"
)
# When the disabling change was recorded, and the first failure of the run that
# led to it (the ISO form is how reasons print it); seconds between the two.
DISABLED_AFTER = """
SELECT relay.iso_time_v1(f.first_failure),
       extract(epoch FROM c.changed_at - f.first_failure)
FROM relay.webhook_status_changes c,
     (SELECT min(a.attempted_at) AS first_failure
      FROM relay.attempts a
      JOIN relay.deliveries d ON d.id = a.delivery_id
      JOIN relay.events e ON e.id = d.event_id
      WHERE e.entity_id = %s) AS f
WHERE c.webhook_id = %s AND c.old_enabled AND NOT c.new_enabled
"""
ENABLE = "UPDATE relay.webhooks SET enabled = true WHERE id = %s"


def disabled(db: psycopg.Connection[Any], webhook_id: str) -> bool:
    row = db.execute(
        "SELECT enabled FROM relay.webhooks WHERE id = %s", (webhook_id,)
    ).fetchone()
    return row == (False,)


def announced(listening: psycopg.Connection[Any], count: int) -> list[Any]:
    return [
        json.loads(notification.payload)
        for notification in listening.notifies(timeout=5, stop_after=count)
    ]


async def test_a_webhook_turns_unhealthy_after_five_failures_and_back_on_a_success(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    webhook_id, _ = add_webhook(db, receiver, "/flaky")
    receiver.answer("/flaky", 500, 500, 500, 500, 500)
    db.execute("LISTEN relay_webhook_status_v1")

    async with running_relay(dsn, retry_schedule=(0.05,) * 6):
        change(db, NEW_TODO.format(id="tdo_flaky"))
        await eventually(lambda: all_delivered(db, expected=1))
        notifications = announced(db, 2)

    assert [request.status_sent for request in receiver.on("/flaky")] == [
        500,
        500,
        500,
        500,
        500,
        200,
    ]
    assert db.execute(CHANGES, (webhook_id,)).fetchall() == [
        ("HEALTHY", "UNHEALTHY", True, True, "5 failures in a row"),
        ("UNHEALTHY", "HEALTHY", True, True, "delivered again"),
    ]
    assert notifications == [
        {
            "webhook_id": webhook_id,
            "old_status": "HEALTHY",
            "new_status": "UNHEALTHY",
            "enabled": True,
            "reason": "5 failures in a row",
        },
        {
            "webhook_id": webhook_id,
            "old_status": "UNHEALTHY",
            "new_status": "HEALTHY",
            "enabled": True,
            "reason": "delivered again",
        },
    ]
    assert db.execute(
        "SELECT status, enabled, consecutive_failures, failing_since"
        " FROM relay.webhooks WHERE id = %s",
        (webhook_id,),
    ).fetchone() == ("HEALTHY", True, 0, None)


async def test_a_webhook_failing_past_the_window_is_disabled_until_enabled(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    webhook_id, _ = add_webhook(db, receiver, "/down")
    receiver.answer("/down", *[503] * 100)
    window = 1.0

    async with running_relay(
        dsn, retry_schedule=(0.1,) * 50, retry_jitter=0.0, disable_after=window
    ):
        change(db, NEW_TODO.format(id="tdo_down"))
        await eventually(lambda: disabled(db, webhook_id))
        attempts_when_disabled = receiver.arrivals["/down"]
        # Disabled: a new event is not fanned out to it, the pending one waits.
        change(db, NEW_TODO.format(id="tdo_while_disabled"))
        await eventually(
            lambda: (
                db.execute(
                    "SELECT bool_and(fanned_out_at IS NOT NULL) FROM relay.events"
                ).fetchone()
                == (True,)
            )
        )
        # An operator enables it again: its health starts afresh.
        db.execute(ENABLE, (webhook_id,))
        after_enable = await eventually(
            lambda: db.execute(
                "SELECT enabled, consecutive_failures > 0 FROM relay.webhooks"
                " WHERE id = %s AND consecutive_failures > 0",
                (webhook_id,),
            ).fetchone()
        )
    first_failure, disabled_after = db.execute(
        DISABLED_AFTER, ("tdo_down", webhook_id)
    ).fetchone() or (None, None)

    assert attempts_when_disabled >= 6
    # Not at the 5th failure or any other: only once the window had passed.
    assert disabled_after >= window
    # The failures before the disable do not disable it again at its next one.
    assert after_enable == (True, True)
    assert db.execute(CHANGES, (webhook_id,)).fetchall()[:3] == [
        ("HEALTHY", "UNHEALTHY", True, True, "5 failures in a row"),
        ("UNHEALTHY", "UNHEALTHY", True, False, f"no success since {first_failure}"),
        ("UNHEALTHY", "UNHEALTHY", False, True, "enabled by postgres"),
    ]
    # The waiting delivery, and the health check the enable queued.
    assert [(event, state) for event, _, state, _ in delivery_states(db)] == [
        ("TODO_CREATED", "pending"),
        ("WEBHOOK_HEALTH_CHECK", "pending"),
    ]


async def test_a_success_inside_the_window_starts_the_window_again(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    webhook_id, _ = add_webhook(db, receiver, "/wobbly")
    # The first event fails three times, then gets through; the second never does.
    receiver.answer("/wobbly", 503, 503, 503, 200, *[503] * 100)
    window = 1.0

    async with running_relay(
        dsn, retry_schedule=(0.1,) * 50, retry_jitter=0.0, disable_after=window
    ):
        change(db, NEW_TODO.format(id="tdo_first"))
        await eventually(lambda: all_delivered(db, expected=1))
        change(db, NEW_TODO.format(id="tdo_second"))
        await eventually(lambda: disabled(db, webhook_id))
    success_after = db.execute(
        "SELECT extract(epoch FROM max(attempted_at) - min(attempted_at))"
        " FROM relay.attempts"
        " WHERE delivery_id = (SELECT min(id) FROM relay.deliveries)"
    ).fetchone()
    second_failure, disabled_after = db.execute(
        DISABLED_AFTER, ("tdo_second", webhook_id)
    ).fetchone() or (None, None)

    assert [r.status_sent for r in receiver.on("/wobbly")][:4] == [503, 503, 503, 200]
    # The success came inside the window of the first failures ...
    assert success_after is not None and success_after[0] < window
    # ... and the window was counted again from the first failure after it.
    assert disabled_after >= window
    assert db.execute(CHANGES, (webhook_id,)).fetchall() == [
        ("HEALTHY", "UNHEALTHY", True, True, "5 failures in a row"),
        ("UNHEALTHY", "UNHEALTHY", True, False, f"no success since {second_failure}"),
    ]


async def test_enabling_a_webhook_in_plain_sql_sends_one_health_check(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    webhook_id, _ = add_webhook(db, receiver, "/back", events=["TODO_CREATED"])
    db.execute("UPDATE relay.webhooks SET enabled = false WHERE id = %s", (webhook_id,))

    async with running_relay(dsn):
        with db.transaction(force_rollback=True):
            db.execute(ENABLE, (webhook_id,))
        db.execute(ENABLE, (webhook_id,))
        db.execute(ENABLE, (webhook_id,))  # already enabled: no second check
        # A later event: any second check would be fanned out before it.
        change(db, NEW_TODO.format(id="tdo_after"))
        requests = await receiver.wait_for(2, path="/back")
        await eventually(lambda: all_delivered(db, expected=2))
    webhook = db.execute(
        "SELECT relay.webhook_json_v2(w) FROM relay.webhooks w WHERE w.id = %s",
        (webhook_id,),
    ).fetchone()

    [check] = [request for request in requests if request.event != "TODO_CREATED"]
    assert check.event == "WEBHOOK_HEALTH_CHECK"
    assert check.signature_verified is True
    assert webhook is not None
    assert check.payload == {
        "event": "WEBHOOK_HEALTH_CHECK",
        "webhook": webhook[0],
        "previousValue": None,
        "currentValue": None,
    }
    assert delivery_states(db) == [
        ("WEBHOOK_HEALTH_CHECK", webhook_id, "delivered", 1),
        ("TODO_CREATED", webhook_id, "delivered", 1),
    ]
    assert db.execute(
        "SELECT entity_id, for_webhook_id FROM relay.events"
        " WHERE event = 'WEBHOOK_HEALTH_CHECK'"
    ).fetchall() == [(webhook_id, webhook_id)]
    assert db.execute(CHANGES, (webhook_id,)).fetchall() == [
        ("HEALTHY", "HEALTHY", True, False, "disabled by postgres"),
        ("HEALTHY", "HEALTHY", False, True, "enabled by postgres"),
    ]


async def test_a_hanging_endpoint_holds_only_its_own_slots_over_all_relays(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    add_webhook(db, receiver, "/hanging")
    add_webhook(db, receiver, "/healthy")
    arrived, release = asyncio.Event(), asyncio.Event()
    receiver.hold("/hanging", arrived, release)
    events = 30

    # Two relays: the limit counts the claims of both.
    limits = {"max_in_flight": 6, "max_in_flight_per_webhook": 2}
    async with (
        running_relay(dsn, request_timeout=20.0, worker_id="relay-a", **limits),
        running_relay(dsn, request_timeout=20.0, worker_id="relay-b", **limits),
    ):
        values = ", ".join(
            f"('tdo_{number}', 'lst_inbox', 'x')" for number in range(events)
        )
        change(db, f"INSERT INTO todos (id, todo_list_id, title) VALUES {values}")
        healthy = await receiver.wait_for(events, path="/healthy", timeout=15)
        held = receiver.arrivals["/hanging"]
        in_flight = db.execute(
            "SELECT count(*) FROM relay.deliveries d JOIN relay.webhooks w"
            " ON w.id = d.webhook_id WHERE w.url LIKE '%%/hanging'"
            " AND d.claimed_by IS NOT NULL"
        ).fetchone()
        release.set()
        await eventually(lambda: all_delivered(db, expected=2 * events), timeout=20)

    assert len({request.headers["webhook-id"] for request in healthy}) == events
    assert held == 2
    assert in_flight == (2,)
