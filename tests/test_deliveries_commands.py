"""relay deliveries list and show: filters that narrow exactly, bodies as sent."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from relay import webhooks
from relay.cli import cli
from relay.output import iso
from relay.receiver import Receiver
from tests.support import (
    add_webhook,
    change,
    eventually,
    relay_command,
    running_relay,
    seed_world,
)

NEW_TODO = (
    "INSERT INTO todos (id, todo_list_id, title) VALUES ('tdo_a', 'lst_inbox', 'a')"
)
RENAME = "UPDATE todos SET title = 'b' WHERE id = 'tdo_a'"
COMMENT = (
    "INSERT INTO comments (id, todo_id, text) VALUES ('cmt_new', 'tdo_base', 'Hi')"
)


def run(dsn: str, *arguments: str) -> Any:
    """The CLI in this process; the result's output is stdout."""
    result = CliRunner().invoke(cli, [*arguments, "--dsn", dsn])
    assert result.exit_code == 0, result.output
    return result


def listed(dsn: str, *arguments: str) -> list[int]:
    result = run(dsn, "deliveries", "list", "--json", *arguments)
    return [row["id"] for row in json.loads(result.output)]


@pytest.fixture
def world(db: psycopg.Connection[Any]) -> dict[str, Any]:
    """Three events, each delivered to two webhooks, in states and times set here."""
    seed_world(db)
    ids = []
    for name in ("CRM", "Audit"):
        webhook = webhooks.NewWebhook(
            name=name, url="http://127.0.0.1:9/hook", created_by_id="usr_alice"
        )
        ids.append(webhooks.create(db, webhook)[0]["id"])
    for sql in (NEW_TODO, RENAME, COMMENT):
        change(db, sql)
    # Made 3 h, 2 h and 1 h ago.
    db.execute(
        "UPDATE relay.events e SET fanned_out_at = now(),"
        " created_at = now() - (4 - o.n) * interval '1 hour'"
        " FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM relay.events) o"
        " WHERE o.id = e.id"
    )
    db.execute(
        "INSERT INTO relay.deliveries (event_id, webhook_id)"
        " SELECT e.id, w.id FROM relay.events e, relay.webhooks w"
        " ORDER BY e.id, w.created_at, w.id"
    )
    # The CRM got the first two, failed the third; the audit has all pending.
    db.execute(
        "UPDATE relay.deliveries SET attempts = 1, last_status_code = 200,"
        " state = 'delivered', delivered_at = now() WHERE webhook_id = %s",
        (ids[0],),
    )
    db.execute(
        "UPDATE relay.deliveries SET state = 'failed', last_status_code = 500,"
        " last_error = 'HTTP 500 from the receiver', delivered_at = NULL"
        " WHERE id = (SELECT max(id) FROM relay.deliveries WHERE webhook_id = %s)",
        (ids[0],),
    )
    deliveries = [
        row[0] for row in db.execute("SELECT id FROM relay.deliveries ORDER BY id")
    ]
    return {"crm": ids[0], "audit": ids[1], "deliveries": deliveries}


def test_each_filter_narrows_exactly(dsn: str, world: dict[str, Any]) -> None:
    crm_1, audit_1, crm_2, audit_2, crm_3, audit_3 = world["deliveries"]

    assert listed(dsn) == [audit_3, crm_3, audit_2, crm_2, audit_1, crm_1]
    assert listed(dsn, "--webhook", world["crm"]) == [crm_3, crm_2, crm_1]
    assert listed(dsn, "--event", "TODO_CREATED") == [audit_1, crm_1]
    assert listed(dsn, "--event", "TODO_CREATED", "--event", "COMMENT_CREATED") == [
        audit_3,
        crm_3,
        audit_1,
        crm_1,
    ]
    assert listed(dsn, "--state", "failed") == [crm_3]
    assert listed(dsn, "--state", "pending", "--state", "failed") == [
        audit_3,
        crm_3,
        audit_2,
        audit_1,
    ]
    # Events are 3 h, 2 h and 1 h old.
    assert listed(dsn, "--since", "150m") == [audit_3, crm_3, audit_2, crm_2]
    assert listed(dsn, "--until", "150m") == [audit_1, crm_1]
    assert listed(dsn, "--since", "150m", "--until", "90m") == [audit_2, crm_2]
    # The todo's own events, and the comment made on tdo_base by its record.
    assert listed(dsn, "--record", "tdo_a") == [audit_2, crm_2, audit_1, crm_1]
    assert listed(dsn, "--record", "tdo_base") == [audit_3, crm_3]
    assert listed(dsn, "--record", "cmt_new") == [audit_3, crm_3]
    assert listed(dsn, "--limit", "2") == [audit_3, crm_3]
    assert listed(dsn, "--webhook", world["audit"], "--state", "delivered") == []


def test_the_table_and_json_carry_the_same_facts(
    dsn: str, world: dict[str, Any]
) -> None:
    as_json = json.loads(run(dsn, "deliveries", "list", "--json").output)
    table = run(dsn, "deliveries", "list").output.splitlines()

    assert table[0].split() == [
        "ID",
        "EVENT",
        "ID",
        "EVENT",
        "WEBHOOK",
        "STATE",
        "ATTEMPTS",
        "LAST",
        "STATUS/ERROR",
        "CREATED",
        "DELIVERED",
    ]
    failed = as_json[1]
    assert failed["state"] == "failed"
    assert table[2].split() == [
        str(failed["id"]),
        str(failed["event_id"]),
        "COMMENT_CREATED",
        world["crm"],
        "failed",
        "1",
        "HTTP",
        "500",
        "from",
        "the",
        "receiver",
        failed["event_created_at"],
        "-",
    ]
    delivered = as_json[3]
    assert table[4].split() == [
        str(delivered["id"]),
        str(delivered["event_id"]),
        "TODO_NAME_CHANGED",
        world["crm"],
        "delivered",
        "1",
        "200",
        delivered["event_created_at"],
        delivered["delivered_at"],
    ]
    assert len(table) == 1 + len(as_json) == 7


async def test_show_prints_every_attempt_and_the_exact_body_sent(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    webhook_id, _ = add_webhook(db, receiver, "/hook")
    receiver.answer_with("/hook", 503, body="try later")
    async with running_relay(dsn):
        change(db, NEW_TODO)
        requests = await receiver.wait_for(2, path="/hook")
        await eventually(
            lambda: (
                db.execute("SELECT state FROM relay.deliveries").fetchone()
                == ("delivered",)
            )
        )
    [(delivery_id, event_id)] = db.execute(
        "SELECT id, event_id FROM relay.deliveries"
    ).fetchall()
    times = [row[0] for row in db.execute("SELECT attempted_at FROM relay.attempts")]

    shown = json.loads(
        run(dsn, "deliveries", "show", str(delivery_id), "--json").output
    )
    table = run(dsn, "deliveries", "show", str(delivery_id)).output
    body = relay_command("deliveries", "show", str(delivery_id), "--body", dsn=dsn)

    assert shown["delivery"]["id"] == delivery_id
    assert shown["delivery"]["state"] == "delivered"
    assert shown["event"] == {
        "id": event_id,
        "event": "TODO_CREATED",
        "entity": "todo",
        "entity_id": "tdo_a",
        "todo_id": "tdo_a",
        "created_at": shown["event"]["created_at"],
        "backfill_id": None,
    }
    assert shown["webhook"] == {
        "id": webhook_id,
        "name": "test /hook",
        "url": receiver.url("/hook"),
        "status": "HEALTHY",
        "enabled": True,
    }
    assert [
        (a["attempt"], a["outcome"], a["status_code"], a["response_excerpt"])
        for a in shown["attempts"]
    ] == [(1, "failed", 503, "try later"), (2, "delivered", 200, "ok")]
    assert [a["attempted_at"] for a in shown["attempts"]] == [iso(t) for t in times]
    assert [a["body"].encode() for a in shown["attempts"]] == [
        request.body for request in requests
    ]
    assert body.returncode == 0
    assert body.stdout.encode() == requests[1].body
    lines = table.splitlines()
    assert lines[0] == f"Delivery {delivery_id}: delivered; attempts: 2; replays: 0"
    attempts_at = lines.index("Attempts:")
    assert lines[attempts_at + 2].split()[:5] == [
        "1",
        "0",
        iso(times[0]),
        "failed",
        "503",
    ]
    assert lines[attempts_at + 3].split()[:5] == [
        "2",
        "0",
        iso(times[1]),
        "delivered",
        "200",
    ]
    assert lines[-2:] == ["Body sent at attempt 2:", requests[1].body.decode()]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["list", "--event", "TODO_CREATE"],
            "unknown event 'TODO_CREATE': did you mean TODO_CREATED?",
        ),
        (["list", "--event", "nothing"], "unknown event 'nothing': e.g. TODO_CREATED"),
        (
            ["list", "--webhook", "wh_missing"],
            "unknown webhook 'wh_missing': list them with relay webhooks list",
        ),
        (
            ["list", "--since", "1h", "--until", "2h"],
            "--since must be before --until",
        ),
        (["show", "999"], "no delivery 999: list them with relay deliveries list"),
        (
            ["show", "12x"],
            "malformed delivery id '12x': a number, as relay deliveries list prints it",
        ),
    ],
)
def test_bad_input_is_one_line_and_status_2(
    dsn: str, arguments: list[str], message: str
) -> None:
    result = relay_command("deliveries", *arguments, dsn=dsn)

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [f"relay: error: {message}"]
