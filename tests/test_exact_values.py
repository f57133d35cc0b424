"""Exact values: text, numbers and times arrive as stored, through every path.

A value reaches a receiver from the live row, from the row an update kept, or
from the row a delete remembered; each path is checked on the body's bytes.
"""

from __future__ import annotations

import json
import re
from typing import Any

import psycopg
from psycopg import sql

from relay.receiver import Receiver
from tests.support import add_webhook, change, running_relay, seed_world

# Emoji, right-to-left text, combining marks, every control character but NUL,
# quotes and backslashes, and a long text: all must arrive unchanged.
EXOTIC_TEXT = (
    "🚚📦 ok 👩🏽‍💻 שלום עולם مرحبا e\u0301 \u200f"
    + "".join(chr(code) for code in range(1, 32))
    + '"quoted" back\\slash \u2028\u2029 \U0010fffd'
)
LONG_TEXT = "ab🙂" * 100_000
# An update's body carries a text twice: this one keeps it under the receiver's
# 1 MiB limit, and far above what fits inline in a row (it is TOASTed).
HALF_LONG_TEXT = LONG_TEXT[:120_000]
BIG_NUMERIC = "12345678901234567890.123456789012345678901234567890"


def in_json(text: str) -> bytes:
    """``text`` as a JSON string in the body: escaped as PostgreSQL and RFC 8259 do."""
    return json.dumps(text, ensure_ascii=False).encode()


async def test_text_and_numbers_arrive_exactly_as_stored(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    add_webhook(db, receiver, "/hook", events=["TODO_CREATED"])

    with db.transaction():
        db.execute(
            "INSERT INTO todos (id, todo_list_id, title, text, position)"
            " VALUES ('tdo_exotic', 'lst_inbox', %s, %s, %s::numeric)",
            (EXOTIC_TEXT, LONG_TEXT, BIG_NUMERIC),
        )
        db.execute(
            "INSERT INTO todo_custom_fields (todo_id, custom_field_id, value)"
            " VALUES ('tdo_exotic', 'cfd_budget', %s::jsonb)",
            ('{"amount": 0.1000000000000000055511151231257827, "note": "\\u00e9"}',),
        )
    async with running_relay(dsn):
        [request] = await receiver.wait_for(1, path="/hook")

    todo = request.payload["currentValue"]
    assert todo["title"] == EXOTIC_TEXT
    assert todo["text"] == LONG_TEXT
    assert todo["position"] == BIG_NUMERIC
    assert f'"{BIG_NUMERIC}"'.encode() in request.body
    # A jsonb number keeps every digit in the bytes sent.
    assert b"0.1000000000000000055511151231257827" in request.body
    [field_value] = todo["todoCustomFields"]
    assert field_value["value"]["note"] == "é"
    assert json.loads(request.body)["currentValue"]["title"] == EXOTIC_TEXT


async def test_values_kept_by_an_update_and_a_delete_arrive_exactly_as_stored(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    with db.transaction():
        db.execute(
            "INSERT INTO todos (id, todo_list_id, title, html, text, position)"
            " VALUES ('tdo_exotic', 'lst_inbox', %s, %s, %s, %s::numeric)",
            (EXOTIC_TEXT, EXOTIC_TEXT, HALF_LONG_TEXT, BIG_NUMERIC),
        )
        db.execute(
            "INSERT INTO todo_custom_fields (todo_id, custom_field_id, value)"
            " VALUES ('tdo_exotic', 'cfd_budget', %s::jsonb)",
            (json.dumps({"note": EXOTIC_TEXT}),),
        )
        db.execute("DELETE FROM relay.events")
    add_webhook(db, receiver, "/hook", events=["TODO_NAME_CHANGED", "TODO_DELETED"])

    # The rename is delivered while the todo lives: its values are read then.
    async with running_relay(dsn):
        change(db, "UPDATE todos SET title = 'Plain' WHERE id = 'tdo_exotic'")
        await receiver.wait_for(1, path="/hook")
        change(db, "DELETE FROM todos WHERE id = 'tdo_exotic'")
        requests = await receiver.wait_for(2, path="/hook")

    by_event = {request.event: request for request in requests}
    renamed = by_event["TODO_NAME_CHANGED"]
    before, after = renamed.payload["previousValue"], renamed.payload["currentValue"]
    assert (before["title"], after["title"]) == (EXOTIC_TEXT, "Plain")
    for value in (before, after):
        assert (value["html"], value["text"], value["position"]) == (
            EXOTIC_TEXT,
            HALF_LONG_TEXT,
            BIG_NUMERIC,
        )
        assert [v["value"] for v in value["todoCustomFields"]] == [
            {"note": EXOTIC_TEXT}
        ]
    # The old title, the html and the field's note on both sides, byte for byte.
    assert renamed.body.count(in_json(EXOTIC_TEXT)) == 5
    assert renamed.body.count(in_json(HALF_LONG_TEXT)) == 2
    assert renamed.body.count(f'"{BIG_NUMERIC}"'.encode()) == 2

    deleted = by_event["TODO_DELETED"]
    gone = deleted.payload["previousValue"]
    assert deleted.payload["currentValue"] is None
    assert (gone["title"], gone["html"], gone["text"], gone["position"]) == (
        "Plain",
        EXOTIC_TEXT,
        HALF_LONG_TEXT,
        BIG_NUMERIC,
    )
    assert [v["value"] for v in gone["todoCustomFields"]] == [{"note": EXOTIC_TEXT}]
    assert deleted.body.count(in_json(EXOTIC_TEXT)) == 2
    assert deleted.body.count(in_json(HALF_LONG_TEXT)) == 1
    assert deleted.body.count(f'"{BIG_NUMERIC}"'.encode()) == 1


# Any text that looks like a timestamp in a body, up to its closing quote.
TIMESTAMP = re.compile(rb'"(\d{4}-\d\d-\d\dT[^"]*)"')
UTC_MILLISECONDS = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


async def test_times_arrive_in_utc_whatever_the_sessions_time_zones(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    # The relay's sessions run in a zone of their own, 3.5 hours behind UTC.
    db.execute(
        sql.SQL("ALTER DATABASE {} SET TimeZone = 'America/St_Johns'").format(
            sql.Identifier(db.info.dbname)
        )
    )
    add_webhook(
        db,
        receiver,
        "/hook",
        events=["TODO_DUE_DATE_ADDED", "TODO_NAME_CHANGED", "TODO_DELETED"],
    )

    # The writer's session is 5.5 hours ahead; in 1900 Madras time was +05:21:10.
    with psycopg.connect(dsn, autocommit=True) as writer:
        writer.execute("SET TimeZone = 'Asia/Kolkata'")
        change(
            writer,
            "UPDATE todos SET dued_at = '2026-12-24 09:00Z',"
            " started_at = '1900-01-01 00:00Z' WHERE id = 'tdo_base'",
        )
        change(writer, "UPDATE todos SET title = 'Renamed' WHERE id = 'tdo_base'")
        change(writer, "DELETE FROM todos WHERE id = 'tdo_base'")
    async with running_relay(dsn):
        requests = await receiver.wait_for(3, path="/hook")

    # The outbox kept the writer's local times; the bodies must not show them.
    kept = db.execute(
        "SELECT previous_value->>'dued_at', previous_value->>'started_at'"
        " FROM relay.events WHERE event = 'TODO_DELETED'"
    ).fetchall()
    assert kept == [("2026-12-24T14:30:00+05:30", "1900-01-01T05:21:10+05:21:10")]
    by_event = {request.event: request.payload for request in requests}
    due = "2026-12-24T09:00:00.000Z"
    started = "1900-01-01T00:00:00.000Z"
    added = by_event["TODO_DUE_DATE_ADDED"]
    assert added["previousValue"]["duedAt"] is None
    assert added["currentValue"]["duedAt"] == due
    renamed = by_event["TODO_NAME_CHANGED"]
    assert (
        renamed["previousValue"]["duedAt"] == renamed["currentValue"]["duedAt"] == due
    )
    assert renamed["previousValue"]["startedAt"] == started
    deleted = by_event["TODO_DELETED"]
    assert deleted["previousValue"]["duedAt"] == due
    assert deleted["previousValue"]["startedAt"] == started
    assert deleted["currentValue"] is None
    # Every time in every body, nested context included, is UTC with milliseconds.
    for request in requests:
        times = TIMESTAMP.findall(request.body)
        assert times
        assert [t for t in times if not UTC_MILLISECONDS.fullmatch(t)] == []
