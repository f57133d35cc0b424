"""relay replay: what is sent again, what is left alone, and how the command asks."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import subprocess
import sys
from typing import Any

import psycopg
import pytest

from relay import replay, webhooks
from relay.claims import WebhookId
from relay.output import iso
from relay.receiver import Receiver
from tests.support import (
    add_webhook,
    all_delivered,
    change,
    eventually,
    relay_environment,
    running_relay,
    seed_world,
)

NEW_TODO = (
    "INSERT INTO todos (id, todo_list_id, title) VALUES ('{id}', 'lst_inbox', 'x')"
)
DELIVERIES = "SELECT * FROM relay.deliveries ORDER BY id"


def relay_replay(
    dsn: str, *arguments: str, stdin: int | None = subprocess.PIPE
) -> subprocess.CompletedProcess[str]:
    """``relay replay`` as a process; stdin is an empty pipe, not a terminal."""
    return subprocess.run(
        [sys.executable, "-m", "relay", "replay", *arguments],
        env=relay_environment(dsn),
        input="" if stdin == subprocess.PIPE else None,
        stdin=None if stdin == subprocess.PIPE else stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def replay_while_relaying(
    dsn: str, *arguments: str
) -> subprocess.CompletedProcess[str]:
    """The command in a thread, so that the relay in this loop goes on meanwhile."""
    return await asyncio.to_thread(relay_replay, dsn, *arguments)


def quiet_webhook(db: psycopg.Connection[Any], name: str) -> str:
    """A webhook no relay sends to in the test that makes it."""
    created, _ = webhooks.create(
        db,
        webhooks.NewWebhook(
            name=name, url="http://127.0.0.1:9/hook", created_by_id="usr_alice"
        ),
    )
    return str(created["id"])


def make_deliveries(
    db: psycopg.Connection[Any], webhook_id: str, states: list[str], prefix: str
) -> list[tuple[int, int]]:
    """One captured event per state and its delivery in that state, as a relay
    would have left it; return (delivery id, event id) of each."""
    made = []
    for number, state in enumerate(states):
        change(db, NEW_TODO.format(id=f"tdo_{prefix}_{number}"))
        row = db.execute(
            "UPDATE relay.events SET fanned_out_at = now()"
            " WHERE entity_id = %s AND event = 'TODO_CREATED' RETURNING id",
            (f"tdo_{prefix}_{number}",),
        ).fetchone()
        assert row is not None
        delivery = db.execute(
            "INSERT INTO relay.deliveries (event_id, webhook_id, state, attempts,"
            " delivered_at) VALUES (%s, %s, %s, %s,"
            " CASE WHEN %s = 'delivered' THEN now() END) RETURNING id",
            (row[0], webhook_id, state, 0 if state == "pending" else 1, state),
        ).fetchone()
        assert delivery is not None
        made.append((delivery[0], row[0]))
    return made


def replay_columns(db: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return db.execute(
        "SELECT id, state, attempts, replays, retry_base FROM relay.deliveries"
        " ORDER BY id"
    ).fetchall()


def delivery_id(db: psycopg.Connection[Any], event_id: int, webhook_id: str) -> int:
    row = db.execute(
        "SELECT id FROM relay.deliveries WHERE event_id = %s AND webhook_id = %s",
        (event_id, webhook_id),
    ).fetchone()
    assert row is not None
    return int(row[0])


def replays_delivered(db: psycopg.Connection[Any], expected: int) -> bool:
    row = db.execute(
        "SELECT count(*) FROM relay.deliveries WHERE replays > 0"
        " AND state = 'delivered'"
    ).fetchone()
    return row is not None and row[0] == expected


def replayed_requests(receiver: Receiver) -> list[tuple[str, str, str, str]]:
    """(path, webhook-id, X-Relay-Attempt, X-Relay-Replay) of replayed requests."""
    return sorted(
        (
            request.path,
            request.headers["webhook-id"],
            request.headers["X-Relay-Attempt"],
            request.headers["X-Relay-Replay"],
        )
        for request in receiver.requests
        if "X-Relay-Replay" in request.headers
    )


async def test_a_replay_of_a_time_window_resends_exactly_the_chosen_deliveries(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    chosen, _ = add_webhook(db, receiver, "/chosen")
    other, _ = add_webhook(db, receiver, "/other")

    async with running_relay(dsn):
        for number in range(4):
            change(db, NEW_TODO.format(id=f"tdo_window_{number}"))
        await receiver.wait_for(8)
        await eventually(lambda: all_delivered(db, expected=8))
        event_ids = [row[0] for row in db.execute("SELECT id FROM relay.events")]
        for hour, event_id in zip((10, 11, 12, 13), sorted(event_ids), strict=True):
            db.execute(
                "UPDATE relay.events SET created_at = %s WHERE id = %s",
                (f"2026-12-01T{hour}:00:00Z", event_id),
            )
        before = replay_columns(db)

        result = await replay_while_relaying(
            dsn,
            "--webhook",
            chosen,
            "--since",
            "2026-12-01T10:30Z",
            "--until",
            "2026-12-01T12:30Z",
        )
        await receiver.wait_for(10)
        await eventually(lambda: replays_delivered(db, expected=2))

    assert result.returncode == 0, result.stderr
    assert result.stdout == "Replayed 2 deliveries (0 skipped: still pending).\n"
    first, second, third, fourth = sorted(event_ids)
    assert len(receiver.requests) == 10
    assert replayed_requests(receiver) == [
        ("/chosen", f"evt_{second}", "2", "1"),
        ("/chosen", f"evt_{third}", "2", "1"),
    ]
    originals = [r for r in receiver.requests if "X-Relay-Replay" not in r.headers]
    assert sorted(
        r.headers["webhook-id"] for r in originals if r.path == "/chosen"
    ) == [f"evt_{event_id}" for event_id in (first, second, third, fourth)]
    assert all(request.signature_verified for request in receiver.requests)
    replayed = {delivery_id(db, second, chosen), delivery_id(db, third, chosen)}
    assert replay_columns(db) == [
        (row[0], "delivered", 2, 1, 1) if row[0] in replayed else row for row in before
    ]
    assert db.execute(
        "SELECT count(*) FROM relay.deliveries WHERE webhook_id = %s AND replays = 0",
        (other,),
    ).fetchone() == (4,)


async def test_replay_by_delivery_and_by_event_wakes_the_relay_at_once(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    hook_a, _ = add_webhook(db, receiver, "/a")
    hook_b, _ = add_webhook(db, receiver, "/b")

    # No safety-net poll within the test: only the doorbell wakes the relay.
    async with running_relay(dsn, poll_interval=30.0):
        for number in range(3):
            change(db, NEW_TODO.format(id=f"tdo_pick_{number}"))
        await receiver.wait_for(6)
        await eventually(lambda: all_delivered(db, expected=6))
        first, second, third = [
            row[0] for row in db.execute("SELECT id FROM relay.events ORDER BY id")
        ]

        by_delivery = await replay_while_relaying(
            dsn, "--delivery", str(delivery_id(db, first, hook_a))
        )
        await eventually(lambda: replays_delivered(db, expected=1))
        by_event = await replay_while_relaying(dsn, "--event", f"evt_{second}")
        await eventually(lambda: replays_delivered(db, expected=3))
        by_event_and_webhook = await replay_while_relaying(
            dsn, "--event", str(third), "--webhook", hook_b, "--json"
        )
        await eventually(lambda: replays_delivered(db, expected=4))

    assert by_delivery.stdout == "Replayed 1 delivery (0 skipped: still pending).\n"
    assert by_event.stdout == "Replayed 2 deliveries (0 skipped: still pending).\n"
    assert json.loads(by_event_and_webhook.stdout) == {
        "replayed": 1,
        "skipped": 0,
        "replayed_ids": [delivery_id(db, third, hook_b)],
        "skipped_ids": [],
        "disabled_webhooks": [],
    }
    assert len(receiver.requests) == 10
    assert replayed_requests(receiver) == [
        ("/a", f"evt_{first}", "2", "1"),
        ("/a", f"evt_{second}", "2", "1"),
        ("/b", f"evt_{second}", "2", "1"),
        ("/b", f"evt_{third}", "2", "1"),
    ]


async def test_a_failed_delivery_replayed_gets_the_whole_schedule_and_is_delivered(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    add_webhook(db, receiver, "/hook")
    receiver.answer("/hook", 500, 500, 500)

    async with running_relay(dsn, retry_schedule=(0.2, 0.2)):
        change(db, NEW_TODO.format(id="tdo_failing"))
        await eventually(
            lambda: (
                db.execute("SELECT state FROM relay.deliveries").fetchall()
                == [("failed",)]
            )
        )
        row = db.execute("SELECT id, event_id FROM relay.deliveries").fetchone()
        assert row is not None
        failed, event_id = row

        result = await replay_while_relaying(dsn, "--delivery", str(failed))
        await eventually(lambda: replays_delivered(db, expected=1))

    assert result.returncode == 0, result.stderr
    assert [r.headers.get("X-Relay-Replay") for r in receiver.requests] == [
        None,
        None,
        None,
        "1",
    ]
    last = receiver.requests[-1]
    assert last.headers["webhook-id"] == f"evt_{event_id}"
    assert last.headers["X-Relay-Attempt"] == "4"
    assert replay_columns(db) == [(failed, "delivered", 4, 1, 3)]
    assert db.execute(
        "SELECT attempt, outcome, replay FROM relay.attempts ORDER BY attempt"
    ).fetchall() == [
        (1, "failed", 0),
        (2, "failed", 0),
        (3, "failed", 0),
        (4, "delivered", 1),
    ]


def test_a_dry_run_lists_exactly_the_choice_and_changes_nothing(
    db: psycopg.Connection[Any], dsn: str
) -> None:
    seed_world(db)
    hook = quiet_webhook(db, "chosen")
    other = quiet_webhook(db, "other")
    (delivered, _), (failed, failed_event), (pending, pending_event) = make_deliveries(
        db, hook, ["delivered", "failed", "pending"], "a"
    )
    make_deliveries(db, other, ["failed"], "b")
    change(db, "UPDATE todos SET title = 'renamed' WHERE id = 'tdo_a_1'")
    db.execute("UPDATE relay.events SET fanned_out_at = now()")
    renamed = db.execute(
        "INSERT INTO relay.deliveries (event_id, webhook_id, state, attempts)"
        " SELECT id, %s, 'failed', 1 FROM relay.events"
        " WHERE event = 'TODO_NAME_CHANGED' RETURNING id",
        (hook,),
    ).fetchone()
    assert renamed is not None
    times = dict(db.execute("SELECT id, created_at FROM relay.events").fetchall())
    before = db.execute(DELIVERIES).fetchall()
    choice = ["--webhook", hook, "--state", "failed", "--event-name", "TODO_CREATED"]

    as_json = relay_replay(dsn, *choice, "--dry-run", "--json")
    as_table = relay_replay(dsn, *choice, "--dry-run")

    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == {
        "dry_run": True,
        "would_replay": 1,
        "skipped": 1,
        "deliveries": [
            {
                "delivery_id": failed,
                "event_id": failed_event,
                "event": "TODO_CREATED",
                "webhook_id": hook,
                "state": "failed",
                "event_created_at": iso(times[failed_event]),
            },
            {
                "delivery_id": pending,
                "event_id": pending_event,
                "event": "TODO_CREATED",
                "webhook_id": hook,
                "state": "pending",
                "event_created_at": iso(times[pending_event]),
            },
        ],
    }
    lines = as_table.stdout.splitlines()
    failed_at, pending_at = iso(times[failed_event]), iso(times[pending_event])
    assert [line.split() for line in lines[:3]] == [
        ["DELIVERY", "EVENT", "ID", "EVENT", "WEBHOOK", "STATE", "EVENT", "CREATED"],
        f"{failed} {failed_event} TODO_CREATED {hook} failed {failed_at}".split(),
        f"{pending} {pending_event} TODO_CREATED {hook} pending {pending_at}".split(),
    ]
    assert lines[3:] == ["Would replay 1 delivery (1 skipped: still pending)."]
    assert db.execute(DELIVERIES).fetchall() == before
    assert delivered not in (failed, pending)


def test_more_than_the_threshold_is_refused_without_a_terminal_and_yes(
    db: psycopg.Connection[Any], dsn: str
) -> None:
    seed_world(db)
    hook = quiet_webhook(db, "many")
    made = make_deliveries(db, hook, ["delivered"] * 3, "many")
    before = db.execute(DELIVERIES).fetchall()

    refused = relay_replay(dsn, "--webhook", hook, "--confirm-above", "2")
    unchanged = db.execute(DELIVERIES).fetchall()
    accepted = relay_replay(dsn, "--webhook", hook, "--confirm-above", "2", "--yes")

    assert refused.returncode == 2
    assert refused.stderr == (
        "relay: error: 3 deliveries chosen, more than --confirm-above 2, and no"
        " terminal to ask: check with --dry-run, then add --yes\n"
    )
    assert refused.stdout == ""
    assert unchanged == before
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout == "Replayed 3 deliveries (0 skipped: still pending).\n"
    assert replay_columns(db) == [(made_id, "pending", 1, 1, 1) for made_id, _ in made]


def test_answering_no_on_a_terminal_aborts_and_changes_nothing(
    db: psycopg.Connection[Any], dsn: str
) -> None:
    seed_world(db)
    hook = quiet_webhook(db, "asked")
    make_deliveries(db, hook, ["failed"] * 2, "asked")
    before = db.execute(DELIVERIES).fetchall()
    terminal, its_other_end = pty.openpty()

    try:
        os.write(terminal, b"n\n")
        result = relay_replay(
            dsn, "--webhook", hook, "--confirm-above", "1", stdin=its_other_end
        )
    finally:
        os.close(its_other_end)
        os.close(terminal)

    assert result.returncode == 1
    assert result.stderr == f"Replay 2 deliveries to {hook}? [y/N]: Aborted.\n"
    assert result.stdout == ""
    assert db.execute(DELIVERIES).fetchall() == before


def test_pending_deliveries_are_skipped_and_a_disabled_webhook_is_named(
    db: psycopg.Connection[Any], dsn: str
) -> None:
    seed_world(db)
    hook = quiet_webhook(db, "off")
    (delivered, _), (pending, _), (failed, _) = make_deliveries(
        db, hook, ["delivered", "pending", "failed"], "off"
    )
    db.execute("UPDATE relay.webhooks SET enabled = false WHERE id = %s", (hook,))

    result = relay_replay(dsn, "--webhook", hook, "--json")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "replayed": 2,
        "skipped": 1,
        "replayed_ids": [delivered, failed],
        "skipped_ids": [pending],
        "disabled_webhooks": [hook],
    }
    assert f"relay: warning: webhook {hook} is disabled: its 2 deliveries wait" in (
        result.stderr
    )
    assert replay_columns(db) == [
        (delivered, "pending", 1, 1, 1),
        (pending, "pending", 0, 0, 0),
        (failed, "pending", 1, 1, 1),
    ]


def test_a_delivery_that_changed_after_the_choice_is_skipped_not_replayed_twice(
    db: psycopg.Connection[Any],
) -> None:
    seed_world(db)
    hook = quiet_webhook(db, "raced")
    made = [item[0] for item in make_deliveries(db, hook, ["failed"] * 5, "raced")]
    criteria = replay.Criteria(webhook_id=WebhookId(hook))
    chosen = replay.choose(db, criteria)
    # Someone else replays the second one between the choice and the update.
    replay.replay(db, [chosen[1]])
    batches: list[int] = []

    done = replay.replay(db, chosen, on_batch=batches.append, batch_size=2)

    assert [item.delivery_id for item in chosen] == made
    assert done.replayed_ids == [made[0], *made[2:]]
    assert done.skipped_ids == [made[1]]
    assert batches == [2, 2, 1]
    assert [row[3] for row in replay_columns(db)] == [1, 1, 1, 1, 1]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ((), "nothing chosen: replay --delivery ID, --event ID or --webhook ID"),
        (
            ("--delivery", "1", "--webhook", "wh_x"),
            "--delivery names deliveries exactly: leave out --event, --webhook,"
            " --since, --until, --event-name and --state",
        ),
        (
            ("--event", "evt_1", "--since", "2h"),
            "--event replays one event: --since, --until and --event-name narrow"
            " a --webhook's deliveries instead",
        ),
        (
            ("--state", "failed"),
            "--since, --until, --event-name and --state narrow a webhook's"
            " deliveries: add --webhook ID",
        ),
        (
            ("--webhook", "wh_x", "--since", "1h", "--until", "2h"),
            "--since must be earlier than --until",
        ),
        (
            ("--webhook", "wh_x", "--event-name", "TODO_NOPE"),
            "unknown event 'TODO_NOPE': did you mean TODO_MOVED?",
        ),
        (
            ("--webhook", "wh_x"),
            "unknown webhook 'wh_x': list them with relay webhooks list",
        ),
        (
            ("--delivery", "98", "--delivery", "99"),
            "unknown delivery 98, 99; a request's X-Relay-Delivery header names its"
            " delivery",
        ),
        (
            ("--event", "evt_98"),
            "unknown event 98; a request's webhook-id header names its event"
            " (evt_<id>)",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line(
    dsn: str, arguments: tuple[str, ...], message: str
) -> None:
    result = relay_replay(dsn, *arguments)

    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"relay: error: {message}\n"


def test_a_malformed_event_id_is_a_usage_error(dsn: str) -> None:
    result = relay_replay(dsn, "--event", "tdo_1")

    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "relay: error: Invalid value for '--event': 'tdo_1' is no event id;"
        " write 12 or evt_12 (see 'relay replay --help')\n"
    )


async def test_retry_pending_brings_a_waiting_retry_forward_without_a_replay(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    webhook_id, _ = add_webhook(db, receiver, "/hook")
    receiver.answer("/hook", 500)

    # The next retry is an hour away: only --retry-pending brings it before then.
    async with running_relay(dsn, retry_schedule=(3600.0,)):
        change(db, NEW_TODO.format(id="tdo_waiting"))
        await receiver.wait_for(1, path="/hook")
        await eventually(
            lambda: db.execute("SELECT count(*) FROM relay.attempts").fetchone() == (1,)
        )
        skipped = await replay_while_relaying(dsn, "--webhook", webhook_id, "--json")
        planned = await replay_while_relaying(
            dsn, "--webhook", webhook_id, "--retry-pending", "--dry-run"
        )
        result = await replay_while_relaying(
            dsn, "--webhook", webhook_id, "--retry-pending", "--json"
        )
        await eventually(lambda: all_delivered(db, expected=1))

    assert json.loads(skipped.stdout)["skipped"] == 1
    assert planned.stdout.splitlines()[-1] == (
        "Would replay 0 deliveries and retry 1 delivery now (unless in flight)."
    )
    [(delivery,)] = db.execute("SELECT id FROM relay.deliveries").fetchall()
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "replayed": 0,
        "skipped": 0,
        "replayed_ids": [],
        "skipped_ids": [],
        "disabled_webhooks": [],
        "retried_now": 1,
        "retried_now_ids": [delivery],
    }
    first, second = receiver.on("/hook")
    assert (first.status_sent, second.status_sent) == (500, 200)
    assert second.headers["X-Relay-Attempt"] == "2"
    assert "X-Relay-Replay" not in second.headers
    assert replay_columns(db) == [(delivery, "delivered", 2, 0, 0)]
