"""relay prune and the relay's scheduled prune remove only what is past retention."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Any

import psycopg
import pytest

from relay import prune, retention
from relay.receiver import Receiver
from tests.support import (
    add_webhook,
    all_delivered,
    change,
    eventually,
    relay_command,
    running_relay,
    seed_world,
)

WEBHOOKS = """
INSERT INTO relay.webhooks (id, name, url, secret)
VALUES ('wh_a', 'a', 'http://a.test/', 'sa'), ('wh_b', 'b', 'http://b.test/', 'sb');
"""
ADD_EVENT = """
INSERT INTO relay.events (event, entity, entity_id, current_value, created_at,
                          fanned_out_at)
VALUES (%(event)s, 'todo', %(label)s, %(current_value)s,
        now() - make_interval(days => %(days)s),
        CASE WHEN %(fanned_out)s THEN now() END)
RETURNING id
"""
ADD_DELIVERY = """
INSERT INTO relay.deliveries (event_id, webhook_id, state)
VALUES (%s, %s, %s) RETURNING id
"""
ADD_ATTEMPT = """
INSERT INTO relay.attempts (delivery_id, attempt, outcome, duration_ms, attempted_at)
VALUES (%s, %s, 'failed', 1, now() - make_interval(days => %s))
"""
REMAINING = """
SELECT e.entity_id, count(DISTINCT d.id)::int, count(a.id)::int
FROM relay.events e
LEFT JOIN relay.deliveries d ON d.event_id = e.id
LEFT JOIN relay.attempts a ON a.delivery_id = d.id
GROUP BY e.id ORDER BY e.id
"""


def add_event(
    db: psycopg.Connection[Any],
    label: str,
    days_old: float,
    states: Sequence[str] = ("delivered",),
    attempts_days_old: Sequence[float] = (),
    *,
    deleted: bool = False,
    fanned_out: bool = True,
) -> int:
    """An event ``days_old`` with a delivery per state (to wh_a, wh_b), each with
    attempts made that many days ago."""
    row = db.execute(
        ADD_EVENT,
        {
            "event": "TODO_DELETED" if deleted else "TODO_UPDATED",
            "label": label,
            "current_value": None if deleted else json.dumps({"id": label}),
            "days": days_old,
            "fanned_out": fanned_out,
        },
    ).fetchone()
    assert row is not None
    for webhook_id, state in zip(("wh_a", "wh_b"), states, strict=False):
        delivery = db.execute(ADD_DELIVERY, (row[0], webhook_id, state)).fetchone()
        assert delivery is not None
        for number, age in enumerate(attempts_days_old, start=1):
            db.execute(ADD_ATTEMPT, (delivery[0], number, age))
    return int(row[0])


def remaining(db: psycopg.Connection[Any]) -> list[tuple[str, int, int]]:
    """(label, deliveries, attempts) of every event left, in id order."""
    return [tuple(row) for row in db.execute(REMAINING).fetchall()]  # type: ignore[misc]


def add_mixed_ages(db: psycopg.Connection[Any]) -> None:
    db.execute(WEBHOOKS)
    add_event(db, "old_delivered", 40, ["delivered"], [40, 40])
    add_event(db, "young_delivered", 10, ["delivered"], [10, 10])
    add_event(db, "old_pending", 40, ["pending"], [40, 39, 35])
    add_event(db, "old_failed", 40, ["failed"], [40, 39])
    add_event(db, "old_half_done", 40, ["delivered", "pending"], [40])
    add_event(db, "old_not_fanned_out", 40, [], fanned_out=False)
    add_event(db, "old_for_nobody", 40, [])
    add_event(db, "young_pending", 1, ["pending"], [1, 1])


def prune_json(dsn: str, *options: str) -> dict[str, Any]:
    result = relay_command("prune", "--json", *options, dsn=dsn)
    assert result.returncode == 0, result.stderr
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


def test_prune_removes_only_what_is_past_retention(
    db: psycopg.Connection[Any], dsn: str
) -> None:
    add_mixed_ages(db)

    summary = prune_json(dsn, "--older-than", "30d")

    assert remaining(db) == [
        ("young_delivered", 1, 2),
        ("old_pending", 1, 1),
        ("old_failed", 1, 1),
        ("old_half_done", 2, 2),
        ("old_not_fanned_out", 0, 0),
        ("young_pending", 1, 2),
    ]
    # The latest attempt of a delivery that stays is the one it still shows.
    assert db.execute(
        "SELECT a.attempt FROM relay.attempts a"
        " JOIN relay.deliveries d ON d.id = a.delivery_id"
        " JOIN relay.events e ON e.id = d.event_id"
        " WHERE e.entity_id IN ('old_pending', 'old_failed') ORDER BY e.id"
    ).fetchall() == [(3,), (2,)]
    assert {key: summary[key] for key in ("events", "deliveries", "attempts")} == {
        "events": 2,
        "deliveries": 1,
        # 2 with old_delivered, 2 of old_pending and 1 of old_failed trimmed
        "attempts": 5,
    }
    assert (summary["dry_run"], summary["older_than"]) == (False, "30d")


def test_include_failed_gives_up_failed_deliveries_too(
    db: psycopg.Connection[Any], dsn: str
) -> None:
    add_mixed_ages(db)

    summary = prune_json(dsn, "--older-than", "30d", "--include-failed")

    assert [label for label, _, _ in remaining(db)] == [
        "young_delivered",
        "old_pending",
        "old_half_done",
        "old_not_fanned_out",
        "young_pending",
    ]
    assert (summary["events"], summary["deliveries"], summary["attempts"]) == (
        3,
        2,
        6,
    )


def test_a_dry_run_deletes_nothing_and_counts_what_a_run_deletes(
    db: psycopg.Connection[Any], dsn: str
) -> None:
    add_mixed_ages(db)
    before = remaining(db)

    dry = prune_json(dsn, "--dry-run")
    after_dry_run = remaining(db)
    real = prune_json(dsn)

    assert after_dry_run == before
    assert dry["dry_run"] is True
    assert {k: dry[k] for k in ("events", "deliveries", "attempts")} == {
        k: real[k] for k in ("events", "deliveries", "attempts")
    }
    assert (real["events"], real["deliveries"], real["attempts"]) == (2, 1, 5)


def test_the_table_says_what_went(db: psycopg.Connection[Any], dsn: str) -> None:
    add_mixed_ages(db)

    result = relay_command("prune", "--dry-run", dsn=dsn)

    assert result.returncode == 0
    assert result.stdout.splitlines()[:4] == [
        "ROWS        WOULD DELETE",
        "events      2",
        "deliveries  1",
        "attempts    5",
    ]


def test_batches_of_two_delete_all_seven_old_events(
    db: psycopg.Connection[Any], dsn: str
) -> None:
    db.execute(WEBHOOKS)
    for number in range(7):
        add_event(db, f"old_{number}", 40, ["delivered"], [40])
    add_event(db, "young", 1, ["delivered"], [1])
    policy = prune.PrunePolicy(older_than=30 * 86400, batch_size=2)

    with prune.connect(dsn) as connection:
        pruner = prune.Pruner(connection, policy)
        batches = list(pruner.event_batches())

    assert [(batch.ids, batch.deleted.events) for batch in batches] == [
        (2, 2),
        (2, 2),
        (2, 2),
        (1, 1),
    ]
    assert remaining(db) == [("young", 1, 1)]


def test_a_delete_event_stays_while_an_older_event_may_still_need_it(
    db: psycopg.Connection[Any], dsn: str
) -> None:
    # A payload of old_waiting, built at its next attempt, may take the context
    # of a deleted parent from a later delete event.
    db.execute(WEBHOOKS)
    add_event(db, "deleted_before", 41, ["delivered"], deleted=True)
    waiting = add_event(db, "old_waiting", 40, ["pending"])
    add_event(db, "deleted_after", 39, ["delivered"], deleted=True)
    add_event(db, "updated_after", 39, ["delivered"])

    first = prune_json(dsn)
    db.execute(
        "UPDATE relay.deliveries SET state = 'delivered' WHERE event_id = %s",
        (waiting,),
    )
    kept_until_now = remaining(db)
    second = prune_json(dsn)

    assert first["events"] == 2
    assert kept_until_now == [("old_waiting", 1, 0), ("deleted_after", 1, 0)]
    assert second["events"] == 2
    assert remaining(db) == []


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["prune", "--older-than", "abc"],
            "--older-than: malformed duration 'abc': write a number with s, m, h or d",
        ),
        (
            ["prune", "--older-than", "30"],
            "--older-than must be from 1h to 36500d, not 30 seconds",
        ),
        (
            ["run", "--retention", "10m"],
            "--retention must be from 1h to 36500d, not 600 seconds",
        ),
        (
            ["run", "--retention", "30d", "--prune-interval", "0"],
            "--prune-interval must be between 0.1 and 604800 seconds, not 0.0",
        ),
    ],
)
def test_a_bad_retention_is_one_line_and_status_2(
    dsn: str, arguments: list[str], message: str
) -> None:
    result = relay_command(*arguments, dsn=dsn)

    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [f"relay: error: {message}"]


def test_a_second_prune_at_once_fails_in_one_line(
    db: psycopg.Connection[Any], dsn: str
) -> None:
    with psycopg.connect(dsn) as other:
        other.execute("SELECT pg_advisory_lock(7250431002)")

        result = relay_command("prune", dsn=dsn)

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "relay: error: another prune is running on this database;"
        " try again when it ends"
    ]


async def test_the_relay_prunes_on_its_schedule_while_it_delivers(
    db: psycopg.Connection[Any],
    dsn: str,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    seed_world(db)
    add_webhook(db, receiver, "/hook")
    new_todo = (
        "INSERT INTO todos (id, todo_list_id, title) VALUES ('{0}', 'lst_inbox', '{0}')"
    )
    caplog.set_level(logging.INFO, logger="relay.retention")

    async with running_relay(dsn, retention=30 * 86400.0, prune_interval=0.2):
        change(db, new_todo.format("tdo_aged"))
        await eventually(lambda: all_delivered(db, expected=1))
        db.execute("UPDATE relay.events SET created_at = now() - interval '40 days'")
        db.execute(
            "UPDATE relay.attempts SET attempted_at = now() - interval '40 days'"
        )
        change(db, new_todo.format("tdo_fresh"))

        await eventually(
            lambda: (
                db.execute("SELECT entity_id FROM relay.events").fetchall()
                == [("tdo_fresh",)]
            )
        )
        await eventually(lambda: all_delivered(db, expected=1))

    assert [r.payload["currentValue"]["id"] for r in receiver.requests] == [
        "tdo_aged",
        "tdo_fresh",
    ]
    assert "Pruned 1 events, 1 deliveries and 1 attempts." in caplog.messages


async def test_a_failed_scheduled_prune_is_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    policy = prune.PrunePolicy(older_than=86400.0)
    nowhere = "postgresql://postgres@127.0.0.1:1/none?connect_timeout=2"

    async with asyncio.timeout(20):
        await retention.run_once(nowhere, policy, asyncio.Event())

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "Could not prune; trying again at the next run."
    ]
    assert warnings[0].error.startswith("cannot reach PostgreSQL")  # type: ignore[attr-defined]
