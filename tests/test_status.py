"""relay status: what it reports, and the exit status a monitoring check reads."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

import psycopg
import pytest

from relay import webhooks
from relay.output import iso
from relay.receiver import Receiver
from relay.status import duration
from tests.support import (
    add_webhook,
    change,
    eventually,
    relay_command,
    relay_environment,
    running_relay,
    seed_world,
)

NEW_TODO = (
    "INSERT INTO todos (id, todo_list_id, title) VALUES ('{id}', 'lst_inbox', 'x')"
)


def status(dsn: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    return relay_command("status", *arguments, dsn=dsn)


def status_json(dsn: str, *arguments: str) -> tuple[int, dict[str, Any]]:
    result = status(dsn, "--json", *arguments)
    assert result.stderr == ""
    return result.returncode, json.loads(result.stdout)


def states(db: psycopg.Connection[Any]) -> dict[str, str]:
    rows = db.execute("SELECT webhook_id, state FROM relay.deliveries").fetchall()
    return dict(rows)


async def test_all_is_well_after_everything_was_delivered(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    webhook_id, _ = add_webhook(db, receiver, "/hook")
    async with running_relay(dsn):
        change(db, NEW_TODO.format(id="tdo_fine"))
        await receiver.wait_for(1, path="/hook")
        await eventually(lambda: states(db) == {webhook_id: "delivered"})

    code, report = status_json(dsn)
    table = status(dsn)

    [attempted_at] = db.execute("SELECT attempted_at FROM relay.attempts").fetchone()
    assert code == 0
    assert report["ok"] is True
    assert report["problems"] == []
    assert report["capture"] == {"triggers": 33, "off": 0}
    assert report["outbox"] == {
        "events": 0,
        "oldest_created_at": None,
        "oldest_age_seconds": None,
    }
    assert report["deliveries"] == {
        "pending": 0,
        "due": 0,
        "in_flight": 0,
        "waiting_retry": 0,
        "held": 0,
        "oldest_event_created_at": None,
        "oldest_event_age_seconds": None,
        "oldest_due_wait_seconds": None,
        "failed": 0,
        "delivered": 1,
        "delivered_is_exact": True,
    }
    [webhook] = report["webhooks"]
    assert webhook == {
        "id": webhook_id,
        "name": "test /hook",
        "enabled": True,
        "status": "HEALTHY",
        "consecutive_failures": 0,
        "failing_since": None,
        "last_success_at": iso(attempted_at),
        "last_failure_at": None,
        "last_failure_outcome": None,
        "last_failure_status_code": None,
        "last_failure_error": None,
        "pending": 0,
        "failed": 0,
        "disabled_reason": None,
        "disabled_at": None,
        "disabled_by_relay": False,
    }
    assert report["claims"] == []
    assert table.returncode == 0
    lines = table.stdout.splitlines()
    assert lines[0] == "OK: nothing needs attention."
    assert lines[3] == "Capture: 33 of 33 capture triggers on"
    assert lines[4] == "Outbox: 0 events not fanned out"
    assert lines[5] == (
        "Deliveries: 0 pending (0 due, 0 in flight, 0 waiting for a retry,"
        " 0 held by disabled webhooks); 0 failed; 1 delivered"
    )
    assert lines[9].split() == [
        webhook_id,
        "test",
        "/hook",
        "yes",
        "HEALTHY",
        "0",
        "-",
        iso(attempted_at),
        "-",
        "-",
        "0",
        "0",
    ]
    assert lines[-2:] == ["Relays holding claims:", "None."]


def test_a_stuck_backlog_with_no_relay_running_needs_attention(
    db: psycopg.Connection[Any], dsn: str
) -> None:
    seed_world(db)
    webhook = webhooks.NewWebhook(
        name="CRM", url="http://127.0.0.1:9/hook", created_by_id="usr_alice"
    )
    webhook_id = webhooks.create(db, webhook)[0]["id"]
    for number in range(3):
        change(db, NEW_TODO.format(id=f"tdo_stuck_{number}"))
    # Two were fanned out 20 minutes ago and never claimed; one never fanned out.
    db.execute(
        "UPDATE relay.events SET created_at = now() - interval '12 minutes',"
        " fanned_out_at = CASE WHEN entity_id <> 'tdo_stuck_2' THEN now() END"
    )
    db.execute(
        "INSERT INTO relay.deliveries (event_id, webhook_id, next_attempt_at)"
        " SELECT id, %s, now() - interval '20 minutes' FROM relay.events"
        " WHERE fanned_out_at IS NOT NULL",
        (webhook_id,),
    )

    code, report = status_json(dsn)
    table = status(dsn)
    relaxed, _ = status_json(dsn, "--max-backlog-age", "1h")

    assert code == 3
    assert report["ok"] is False
    assert report["problems"] == [
        "the oldest event not fanned out is 12 min old (threshold 5 min):"
        " is a relay running?",
        "the oldest due delivery has waited 20 min (threshold 5 min); 2 are due",
    ]
    assert report["outbox"]["events"] == 1
    assert 720 <= report["outbox"]["oldest_age_seconds"] < 780
    deliveries = report["deliveries"]
    assert (deliveries["pending"], deliveries["due"], deliveries["held"]) == (2, 2, 0)
    assert 1200 <= deliveries["oldest_due_wait_seconds"] < 1260
    assert 720 <= deliveries["oldest_event_age_seconds"] < 780
    assert report["webhooks"][0]["pending"] == 2
    assert table.returncode == 3
    assert table.stdout.splitlines()[:2] == [
        f"ATTENTION: {problem}" for problem in report["problems"]
    ]
    assert "Outbox: 1 events not fanned out, oldest 12 min old" in table.stdout
    assert relaxed == 0


async def test_unhealthy_and_relay_disabled_webhooks_need_attention_not_operator_ones(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    down, _ = add_webhook(db, receiver, "/down")
    gone, _ = add_webhook(db, receiver, "/gone")
    fine, _ = add_webhook(db, receiver, "/fine")
    paused, _ = add_webhook(db, receiver, "/paused")
    webhooks.set_enabled(db, paused, False)
    receiver.answer("/down", *[500] * 8)
    receiver.answer("/gone", 410)

    async with running_relay(dsn):
        change(db, NEW_TODO.format(id="tdo_watched"))
        await eventually(
            lambda: states(db) == {down: "failed", gone: "pending", fine: "delivered"}
        )

    code, report = status_json(dsn)
    acknowledged, _ = status_json(
        dsn, "--ignore-webhook", down, "--ignore-webhook", gone
    )
    strict, strict_report = status_json(
        dsn, "--ignore-webhook", down, "--ignore-webhook", gone, "--max-failed", "0"
    )

    last_failure = db.execute(
        "SELECT a.attempted_at FROM relay.attempts a"
        " JOIN relay.deliveries d ON d.id = a.delivery_id"
        " WHERE d.webhook_id = %s AND a.attempt = 8",
        (down,),
    ).fetchone()
    assert code == 3
    assert report["problems"] == [
        f"webhook {down} (test /down) is UNHEALTHY: 8 failures in a row",
        f"webhook {gone} (test /gone) was disabled by the relay:"
        " the receiver answered 410 Gone",
    ]
    by_id = {webhook["id"]: webhook for webhook in report["webhooks"]}
    assert by_id[down]["status"] == "UNHEALTHY"
    assert by_id[down]["failed"] == 1
    assert by_id[down]["last_success_at"] is None
    assert by_id[down]["last_failure_at"] == iso(last_failure[0])
    assert by_id[down]["last_failure_status_code"] == 500
    assert by_id[down]["last_failure_error"] == "HTTP 500 from the receiver"
    assert (by_id[gone]["enabled"], by_id[gone]["disabled_by_relay"]) == (False, True)
    assert by_id[gone]["pending"] == 1
    assert by_id[gone]["last_failure_outcome"] == "gone"
    assert by_id[paused]["disabled_reason"] == "disabled by postgres"
    assert by_id[paused]["disabled_by_relay"] is False
    assert report["deliveries"]["held"] == 1
    assert acknowledged == 0
    assert strict == 3
    assert strict_report["problems"] == [
        "1 deliveries failed for good (threshold 0):"
        " see relay deliveries list --state failed"
    ]


async def test_relays_holding_claims_are_listed_with_their_oldest_claim(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    add_webhook(db, receiver, "/slow")
    arrived, release = asyncio.Event(), asyncio.Event()
    receiver.hold("/slow", arrived, release)

    async with running_relay(dsn, worker_id="relay-under-test"):
        change(db, NEW_TODO.format(id="tdo_held"))
        async with asyncio.timeout(15):
            await arrived.wait()
        code, report = await asyncio.to_thread(status_json, dsn)
        release.set()

    attempted = db.execute("SELECT attempted_at FROM relay.attempts").fetchone()
    assert code == 0
    [claim] = report["claims"]
    assert claim["relay"] == "relay-under-test"
    assert claim["claims"] == 1
    assert attempted is not None
    assert claim["oldest_claimed_at"] <= iso(attempted[0])
    assert report["deliveries"]["in_flight"] == 1


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["--max-backlog-age", "soon"],
            "malformed duration 'soon': write a number with s, m, h or d",
        ),
        (
            ["--ignore-webhook", "wh_missing"],
            "unknown webhook 'wh_missing' in --ignore-webhook:"
            " list them with relay webhooks list",
        ),
    ],
)
def test_bad_input_is_one_line_and_status_2(
    dsn: str, arguments: list[str], message: str
) -> None:
    result = status(dsn, *arguments)

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [f"relay: error: {message}"]


def test_an_unreachable_database_is_one_line_and_status_1() -> None:
    result = status("postgresql://postgres@127.0.0.1:1/nowhere")

    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith(
        "relay: error: cannot reach PostgreSQL (nowhere on 127.0.0.1:1): "
    )


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0, "0 s"),
        (119.9, "119 s"),
        (120, "2 min"),
        (300, "5 min"),
        (7199, "119 min"),
        (7200, "2 h"),
        (172799, "47 h"),
        (172800, "2 d"),
    ],
)
def test_durations_read_as_a_person_says_them(seconds: float, words: str) -> None:
    assert duration(seconds) == words


def test_a_reader_that_stops_early_does_not_change_the_exit_status(
    db: psycopg.Connection[Any], dsn: str
) -> None:
    seed_world(db)
    change(db, NEW_TODO.format(id="tdo_stuck"))
    change(db, "UPDATE relay.events SET created_at = now() - interval '1 hour'")

    # `relay status | head -1` where head is gone before status writes.
    process = subprocess.Popen(
        [sys.executable, "-m", "relay", "status"],
        env=relay_environment(dsn),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    process.stdout.close()
    _, stderr = process.communicate(timeout=60)

    assert (process.returncode, stderr) == (3, b"")


async def test_the_last_success_and_failure_outlive_newer_deliveries_and_prune(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    webhook_id, _ = add_webhook(db, receiver, "/hook")
    receiver.answer("/hook", 500)

    async with running_relay(dsn, retry_schedule=(0.2,)):
        change(db, NEW_TODO.format(id="tdo_failed_once"))
        await receiver.wait_for(2, path="/hook")
        for number in range(3):
            change(db, NEW_TODO.format(id=f"tdo_fine_{number}"))
        await receiver.wait_for(5, path="/hook")
        await eventually(
            lambda: (
                states(db) == {webhook_id: "delivered"}
                and db.execute(
                    "SELECT count(*) FROM relay.deliveries WHERE state = 'delivered'"
                ).fetchone()
                == (4,)
            )
        )
    failed_at, succeeded_at = db.execute(
        "SELECT min(attempted_at) FILTER (WHERE outcome = 'failed'),"
        " max(attempted_at) FILTER (WHERE outcome = 'delivered') FROM relay.attempts"
    ).fetchone() or (None, None)
    change(
        db,
        "UPDATE relay.events SET created_at = created_at - interval '2 days';"
        " UPDATE relay.attempts SET attempted_at = attempted_at - interval '2 days'",
    )
    pruned = relay_command("prune", "--older-than", "1d", dsn=dsn)

    code, report = status_json(dsn)
    assert pruned.returncode == 0, pruned.stderr
    assert db.execute("SELECT count(*) FROM relay.attempts").fetchone() == (0,)
    [webhook] = report["webhooks"]
    assert (code, webhook["last_success_at"]) == (0, iso(succeeded_at))
    assert (
        webhook["last_failure_at"],
        webhook["last_failure_status_code"],
        webhook["last_failure_error"],
    ) == (iso(failed_at), 500, "HTTP 500 from the receiver")


def test_capture_that_is_off_needs_attention(
    db: psycopg.Connection[Any], dsn: str
) -> None:
    seed_world(db)
    uninstalled = relay_command("triggers", "uninstall", "--yes", dsn=dsn)

    code, report = status_json(dsn)
    installed = relay_command("triggers", "install", dsn=dsn)
    code_after, _ = status_json(dsn)

    assert (uninstalled.returncode, installed.returncode) == (0, 0)
    assert (code, code_after) == (3, 0)
    assert report["capture"] == {"triggers": 33, "off": 33}
    assert report["problems"] == [
        "33 of 33 capture triggers are missing or disabled: changes to their"
        " tables make no events (see relay triggers status; relay triggers"
        " install puts them back)"
    ]
