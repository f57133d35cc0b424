"""The rules a receiver relies on, beyond one event per change.

Several changes in one statement, changes of nothing tracked, deletes that
cascade, big statements, TRUNCATE, replication sessions and exact values.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg
import pytest

from relay.receiver import Receiver
from tests.support import (
    add_webhook,
    all_delivered,
    change,
    eventually,
    running_relay,
    seed_world,
)

CAPTURED_TABLES = [
    "todo_lists", "todos", "todo_users", "tags", "todo_tags", "custom_fields",
    "todo_custom_fields", "comments", "todo_checklists", "todo_checklist_items",
    "todo_checklist_item_users",
]  # fmt: skip


def outbox(db: psycopg.Connection[Any], *columns: str) -> list[tuple[Any, ...]]:
    listed = ", ".join(columns or ("event", "entity_id"))
    return db.execute(f"SELECT {listed} FROM relay.events ORDER BY id").fetchall()


def test_one_statement_changing_several_things_gives_one_event_each_in_order(
    db: psycopg.Connection[Any],
) -> None:
    seed_world(db)
    change(
        db,
        "INSERT INTO todo_checklist_items (id, todo_checklist_id, title, dued_at)"
        " VALUES ('cki_base', 'chk_base', 'Find the number', now());"
        " DELETE FROM relay.events",
    )

    change(
        db,
        "UPDATE todos SET title = title || '!', todo_list_id = 'lst_later',"
        " done = true, dued_at = '2026-12-24 09:00Z', position = 1",
    )
    change(
        db,
        "UPDATE todo_checklist_items SET dued_at = NULL, done = true, title = 'Found'",
    )

    assert outbox(db, "event", "entity_id", "changed_fields") == [
        ("TODO_NAME_CHANGED", "tdo_bare", ["title"]),
        ("TODO_MOVED", "tdo_bare", ["todoListId"]),
        ("TODO_DONE_STATUS_UPDATED", "tdo_bare", ["done"]),
        ("TODO_DUE_DATE_ADDED", "tdo_bare", ["duedAt"]),
        ("TODO_NAME_CHANGED", "tdo_base", ["title"]),
        ("TODO_MOVED", "tdo_base", ["todoListId"]),
        ("TODO_DONE_STATUS_UPDATED", "tdo_base", ["done"]),
        ("TODO_DUE_DATE_ADDED", "tdo_base", ["duedAt"]),
        ("TODO_CHECKLIST_ITEM_NAME_CHANGED", "cki_base", ["title"]),
        ("TODO_CHECKLIST_ITEM_DONE_STATUS_UPDATED", "cki_base", ["done"]),
        ("TODO_CHECKLIST_ITEM_DUE_DATE_REMOVED", "cki_base", ["duedAt"]),
    ]
    moves = outbox(db, "todo_list_ids")[1::4]
    assert moves[:2] == [(["lst_inbox", "lst_later"],), (["lst_inbox", "lst_later"],)]


def test_one_statement_adding_two_assignees_gives_two_events(
    db: psycopg.Connection[Any],
) -> None:
    seed_world(db)

    change(
        db,
        "INSERT INTO todo_users (id, todo_id, user_id)"
        " VALUES ('tdu_b', 'tdo_bare', 'usr_carol'),"
        " ('tdu_a', 'tdo_bare', 'usr_alice')",
    )

    rows = outbox(db, "event", "entity_id", "previous_value", "current_value")
    assert [row[:2] for row in rows] == [
        ("TODO_ASSIGNEE_ADDED", "tdo_bare"),
        ("TODO_ASSIGNEE_ADDED", "tdo_bare"),
    ]
    # Each carries the record's assignees before and after the whole statement.
    for _, _, previous, current in rows:
        assert previous["_todo_users"] == []
        assert sorted(row["id"] for row in current["_todo_users"]) == ["tdu_a", "tdu_b"]


def test_an_update_that_changes_nothing_tracked_emits_nothing_on_any_table(
    db: psycopg.Connection[Any],
) -> None:
    seed_world(db)
    change(
        db,
        "INSERT INTO todo_checklist_items (id, todo_checklist_id, title)"
        " VALUES ('cki_base', 'chk_base', 'Find the number');"
        " INSERT INTO todo_checklist_item_users (todo_checklist_item_id, user_id)"
        " VALUES ('cki_base', 'usr_alice');"
        " DELETE FROM relay.events",
    )

    for table in CAPTURED_TABLES:
        change(db, f"UPDATE {table} SET updated_at = now() + interval '1 hour'")
    change(
        db,
        "UPDATE todos SET title = title, done = done, dued_at = dued_at,"
        " position = position + 1, archived = true, html = 'x', text = 'x',"
        " started_at = now(), timezone = 'Europe/Paris'",
    )
    change(db, "UPDATE todo_custom_fields SET value = value")
    change(db, "UPDATE tags SET title = title, color = color")
    change(db, "UPDATE custom_fields SET name = name, type = type, position = 7")
    change(db, "UPDATE todo_checklist_items SET position = 3, started_at = now()")
    change(db, "UPDATE todo_lists SET position = 1")

    assert outbox(db) == []


async def test_deleting_a_list_cascades_into_events_that_keep_their_context(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    change(
        db,
        "INSERT INTO todo_checklist_items (id, todo_checklist_id, title)"
        " VALUES ('cki_base', 'chk_base', 'Find the number');"
        " DELETE FROM relay.events",
    )
    add_webhook(db, receiver, "/hook")

    change(db, "DELETE FROM todo_lists WHERE id = 'lst_inbox'")

    # The parent first, then what went with it; no assignee, tag or field events.
    assert outbox(db, "event", "entity_id", "company_id", "project_id") == [
        ("TODO_LIST_DELETED", "lst_inbox", "cmp_acme", "prj_ops"),
        ("TODO_DELETED", "tdo_bare", "cmp_acme", "prj_ops"),
        ("TODO_DELETED", "tdo_base", "cmp_acme", "prj_ops"),
        ("COMMENT_DELETED", "cmt_base", "cmp_acme", "prj_ops"),
        ("TODO_CHECKLIST_DELETED", "chk_base", "cmp_acme", "prj_ops"),
        ("TODO_CHECKLIST_ITEM_DELETED", "cki_base", "cmp_acme", "prj_ops"),
    ]
    payloads = await deliver_all(dsn, db, receiver, expected=6)
    todo = payloads["TODO_DELETED:tdo_base"]["previousValue"]
    assert todo["todoList"]["title"] == "Inbox"
    assert todo["todoList"]["project"]["name"] == "Operations"
    assert todo["todoList"]["project"]["company"]["name"] == "Acme"
    assert [user["userId"] for user in todo["todoUsers"]] == ["usr_alice"]
    assert [tag["tagId"] for tag in todo["todoTags"]] == ["tag_urgent"]
    assert [value["value"] for value in todo["todoCustomFields"]] == [
        {"amount": "1200.50"}
    ]
    item = payloads["TODO_CHECKLIST_ITEM_DELETED:cki_base"]["previousValue"]
    checklist = item["todoChecklist"]
    assert checklist["title"] == "Before the call"
    assert checklist["todo"]["title"] == "Call the supplier"
    assert checklist["todo"]["todoList"]["project"]["company"]["slug"] == "acme"
    comment = payloads["COMMENT_DELETED:cmt_base"]["previousValue"]
    assert comment["todo"]["todoList"]["id"] == "lst_inbox"
    assert all(payload["currentValue"] is None for payload in payloads.values())
    # What the cascade remembered is forgotten once the relay has fanned it out.
    assert db.execute("SELECT count(*) FROM relay.departed_rows").fetchone() == (0,)


async def test_deleting_a_project_reaches_the_members_it_had_with_its_context(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    add_webhook(
        db,
        receiver,
        "/hook",
        events=["TODO_DELETED", "TAG_DELETED", "CUSTOM_FIELD_DELETED"],
    )

    change(db, "DELETE FROM projects WHERE id = 'prj_ops'")

    payloads = await deliver_all(dsn, db, receiver, expected=4)
    assert sorted(payloads) == [
        "CUSTOM_FIELD_DELETED:cfd_budget",
        "TAG_DELETED:tag_urgent",
        "TODO_DELETED:tdo_bare",
        "TODO_DELETED:tdo_base",
    ]
    project = payloads["TODO_DELETED:tdo_bare"]["previousValue"]["todoList"]["project"]
    assert (project["id"], project["name"], project["company"]["name"]) == (
        "prj_ops",
        "Operations",
        "Acme",
    )
    tag = payloads["TAG_DELETED:tag_urgent"]["previousValue"]
    assert tag["project"]["slug"] == "ops"
    # The tag and the field went in the same cascade; their own delete events
    # still describe them inside the todo.
    todo = payloads["TODO_DELETED:tdo_base"]["previousValue"]
    assert [(t["tagId"], t["tag"]["title"]) for t in todo["todoTags"]] == [
        ("tag_urgent", "Urgent")
    ]
    assert [v["customField"]["name"] for v in todo["todoCustomFields"]] == ["Budget"]


async def deliver_all(
    dsn: str, db: psycopg.Connection[Any], receiver: Receiver, expected: int
) -> dict[str, dict[str, Any]]:
    """Run a relay until ``expected`` requests arrived; payloads by event:entity."""
    async with running_relay(dsn):
        requests = await receiver.wait_for(expected, path="/hook")
        await eventually(lambda: all_delivered(db, expected=expected))

    assert len(receiver.requests) == expected
    return {
        f"{request.event}:{request.payload['previousValue']['id']}": request.payload
        for request in requests
    }


def test_a_statement_of_ten_thousand_rows_gives_ten_thousand_events(
    db: psycopg.Connection[Any],
) -> None:
    seed_world(db)

    change(
        db,
        "INSERT INTO todos (id, todo_list_id, title)"
        " SELECT 'tdo_bulk_' || lpad(n::text, 5, '0'), 'lst_pipeline', 'Lead ' || n"
        " FROM generate_series(1, 10000) n",
    )
    change(db, "UPDATE todos SET done = true WHERE id LIKE 'tdo_bulk_%'")
    change(db, "DELETE FROM todos WHERE id LIKE 'tdo_bulk_%'")

    counts = db.execute(
        "SELECT event, count(*), count(DISTINCT entity_id),"
        " bool_and(project_id = 'prj_sales' AND company_id = 'cmp_acme'),"
        " min(entity_id), max(entity_id)"
        " FROM relay.events GROUP BY event ORDER BY min(id)"
    ).fetchall()
    bounds = ("tdo_bulk_00001", "tdo_bulk_10000")
    assert counts == [
        ("TODO_CREATED", 10000, 10000, True, *bounds),
        ("TODO_DONE_STATUS_UPDATED", 10000, 10000, True, *bounds),
        ("TODO_DELETED", 10000, 10000, True, *bounds),
    ]
    # Within a statement, events follow the rows' ids.
    ordered = db.execute(
        "SELECT bool_and(entity_id > previous) FROM (SELECT entity_id,"
        " lag(entity_id) OVER (PARTITION BY event ORDER BY id) AS previous"
        " FROM relay.events) AS pairs WHERE previous IS NOT NULL"
    ).fetchone()
    assert ordered == (True,)


@pytest.mark.parametrize("table", CAPTURED_TABLES)
def test_truncate_of_a_captured_table_is_refused_and_changes_nothing(
    db: psycopg.Connection[Any], table: str
) -> None:
    seed_world(db)
    before = db.execute(f"SELECT count(*) FROM {table}").fetchone()

    with pytest.raises(psycopg.errors.FeatureNotSupported) as refused:
        change(db, f"TRUNCATE {table} CASCADE")

    assert refused.value.diag.message_primary == (
        f"TRUNCATE of public.{table} is refused: relay captures every change"
        " of it for webhooks, and TRUNCATE would skip that"
    )
    assert refused.value.diag.message_hint == (
        "Use DELETE instead; it is captured like any other change."
    )
    assert db.execute(f"SELECT count(*) FROM {table}").fetchone() == before


@pytest.mark.parametrize("table", ["projects", "users", "companies"])
def test_truncate_cascading_from_a_parent_is_refused_and_changes_nothing(
    db: psycopg.Connection[Any], table: str
) -> None:
    seed_world(db)
    before = counts(db)

    with pytest.raises(psycopg.errors.FeatureNotSupported) as refused:
        change(db, f"TRUNCATE {table} CASCADE")

    # The first captured table the cascade reaches is the one named.
    assert refused.value.diag.message_primary == (
        "TRUNCATE of public.todo_lists is refused: relay captures every change"
        " of it for webhooks, and TRUNCATE would skip that"
    )
    assert refused.value.diag.message_hint == (
        "Use DELETE instead; it is captured like any other change."
    )
    assert counts(db) == before
    assert outbox(db) == []


def counts(db: psycopg.Connection[Any]) -> dict[str, list[tuple[Any, ...]]]:
    """The number of rows of every table of the application, by table."""
    tables = ["companies", "users", "projects", "project_users", *CAPTURED_TABLES]
    return {
        table: db.execute(f"SELECT count(*) FROM {table}").fetchall()
        for table in tables
    }


def test_every_capture_trigger_is_set_based(db: psycopg.Connection[Any]) -> None:
    triggers = db.execute(
        "SELECT c.relname, t.tgname,"
        # tgtype bits: 1 row-level, 2 before, 4 insert, 8 delete, 16 update.
        " t.tgtype & 1 = 1, t.tgtype & 2 = 2, t.tgtype & 28,"
        " t.tgoldtable, t.tgnewtable, t.tgenabled"
        " FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
        " WHERE t.tgname LIKE 'relay\\_capture\\_%' ORDER BY 1, 2"
    ).fetchall()

    # Statement-level AFTER triggers that read the transition tables of the
    # statement, firing under session_replication_role = replica too ('A').
    expected = [
        shape
        for table in sorted(CAPTURED_TABLES)
        for shape in [
            (table, "relay_capture_delete_trigger", False, False, 8,
             "old_rows", None, "A"),
            (table, "relay_capture_insert_trigger", False, False, 4,
             None, "new_rows", "A"),
            (table, "relay_capture_update_trigger", False, False, 16,
             "old_rows", "new_rows", "A"),
        ]
    ]  # fmt: skip
    assert triggers == expected
    assert len(triggers) == 33


def test_sessions_in_replica_mode_are_captured_too(
    db: psycopg.Connection[Any],
) -> None:
    seed_world(db)

    with db.transaction():
        db.execute("SET LOCAL session_replication_role = replica")
        db.execute(
            "INSERT INTO todos (id, todo_list_id, title)"
            " VALUES ('tdo_loaded', 'lst_inbox', 'Loaded')"
        )
        db.execute("DELETE FROM comments")

    assert outbox(db, "event", "entity_id", "project_id") == [
        ("TODO_CREATED", "tdo_loaded", "prj_ops"),
        ("COMMENT_DELETED", "cmt_base", "prj_ops"),
    ]


# Emoji, right-to-left text, combining marks, every control character but NUL,
# quotes and backslashes, and a long text: all must arrive unchanged.
EXOTIC_TEXT = (
    "🚚📦 ok 👩🏽‍💻 שלום עולם مرحبا e\u0301 \u200f"
    + "".join(chr(code) for code in range(1, 32))
    + '"quoted" back\\slash \u2028\u2029 \U0010fffd'
)
LONG_TEXT = "ab🙂" * 100_000
BIG_NUMERIC = "12345678901234567890.123456789012345678901234567890"


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


def test_a_role_with_no_rights_on_the_relay_schema_is_captured_in_full(
    db: psycopg.Connection[Any],
) -> None:
    seed_world(db)
    role = f"relay_test_writer_{uuid.uuid4().hex[:12]}"
    db.execute(f"CREATE ROLE {role} NOLOGIN")
    try:
        db.execute(
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public"
            f" TO {role}"
        )
        with db.transaction():
            db.execute(f"SET LOCAL ROLE {role}")
            db.execute(
                "INSERT INTO todo_users (todo_id, user_id)"
                " VALUES ('tdo_bare', 'usr_carol')"
            )
            db.execute("UPDATE todos SET done = true WHERE id = 'tdo_bare'")
            db.execute("DELETE FROM todo_lists WHERE id = 'lst_inbox'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege), db.transaction():
            db.execute(f"SET LOCAL ROLE {role}")
            db.execute("SELECT count(*) FROM relay.events")
    finally:
        db.execute(f"DROP OWNED BY {role}")
        db.execute(f"DROP ROLE {role}")

    assert outbox(db, "event", "entity_id", "project_id") == [
        ("TODO_ASSIGNEE_ADDED", "tdo_bare", "prj_ops"),
        ("TODO_DONE_STATUS_UPDATED", "tdo_bare", "prj_ops"),
        ("TODO_LIST_DELETED", "lst_inbox", "prj_ops"),
        ("TODO_DELETED", "tdo_bare", "prj_ops"),
        ("TODO_DELETED", "tdo_base", "prj_ops"),
        ("COMMENT_DELETED", "cmt_base", "prj_ops"),
        ("TODO_CHECKLIST_DELETED", "chk_base", "prj_ops"),
    ]


async def test_events_built_after_their_parents_were_deleted_still_show_them(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    add_webhook(db, receiver, "/hook", events=["TODO_NAME_CHANGED", "TODO_DELETED"])

    # All of it happens before a relay builds any payload.
    change(db, "UPDATE todos SET title = 'Renamed' WHERE id = 'tdo_base'")
    change(db, "DELETE FROM tags WHERE id = 'tag_urgent'")
    change(db, "DELETE FROM todo_lists WHERE id = 'lst_inbox'")
    async with running_relay(dsn):
        requests = await receiver.wait_for(3, path="/hook")

    payloads = {
        (request.event, request.payload["previousValue"]["id"]): request.payload
        for request in requests
    }
    renamed = payloads[("TODO_NAME_CHANGED", "tdo_base")]["currentValue"]
    assert renamed["title"] == "Renamed"
    assert renamed["todoList"]["title"] == "Inbox"
    assert renamed["todoList"]["project"]["name"] == "Operations"
    assert renamed["todoList"]["project"]["company"]["name"] == "Acme"
    # The tag went first: the todo's removal event kept it, and so did TAG_DELETED.
    deleted = payloads[("TODO_DELETED", "tdo_base")]["previousValue"]
    assert deleted["todoTags"] == []
    assert [value["customField"]["name"] for value in deleted["todoCustomFields"]] == [
        "Budget"
    ]
