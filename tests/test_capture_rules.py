"""The rules a receiver relies on, beyond one event per change.

Several changes in one statement, changes of nothing tracked, big statements,
set-based triggers, TRUNCATE, replication sessions and the writer's rights.
Cascades are in test_secondary_events.py, exact values in test_exact_values.py.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import psycopg
import pytest

from tests.support import NEW_ITEM, bulk_todos, change, outbox, seed_world

CAPTURED_TABLES = [
    "todo_lists", "todos", "todo_users", "tags", "todo_tags", "custom_fields",
    "todo_custom_fields", "comments", "todo_checklists", "todo_checklist_items",
    "todo_checklist_item_users",
]  # fmt: skip


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
        NEW_ITEM
        + " INSERT INTO todo_checklist_item_users (todo_checklist_item_id, user_id)"
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


def test_a_statement_of_ten_thousand_rows_gives_ten_thousand_events(
    db: psycopg.Connection[Any],
) -> None:
    seed_world(db)

    change(db, bulk_todos(10000, "lst_pipeline"))
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


def test_ten_thousand_assignments_in_one_statement_stay_set_based(
    db: psycopg.Connection[Any],
) -> None:
    seed_world(db)
    change(db, bulk_todos(10000, "lst_pipeline") + " DELETE FROM relay.events")

    costs = [
        statement_cost(db, statement)
        for statement in [
            "INSERT INTO todo_users (todo_id, user_id)"
            " SELECT id, 'usr_carol' FROM todos WHERE id LIKE 'tdo_bulk_%'",
            "UPDATE todo_users SET user_id = 'usr_alice'"
            " WHERE todo_id LIKE 'tdo_bulk_%'",
            "DELETE FROM todo_users WHERE todo_id LIKE 'tdo_bulk_%'",
        ]
    ]

    counts = db.execute(
        "SELECT event, count(*), count(DISTINCT entity_id),"
        " bool_and(project_id = 'prj_sales' AND company_id = 'cmp_acme')"
        " FROM relay.events GROUP BY event ORDER BY event"
    ).fetchall()
    assert counts == [
        ("TODO_ASSIGNEE_ADDED", 20000, 10000, True),
        ("TODO_ASSIGNEE_REMOVED", 20000, 10000, True),
    ]
    # Capture reads each table a few times per statement, never once per row: a
    # lookup per assignment that cannot use an index reads 10,000 x 10,000 rows.
    # The time bound is loose (about 1 s here); a quadratic capture took 40 s.
    # So are the row bounds: a plan may scan a table once more (30,012 rows of
    # todos was seen), which is linear still; quadratic would be 100,000,000.
    for seconds, rows_read in costs:
        assert rows_read["todos"] <= 5 * 10_002
        assert rows_read["todo_users"] <= 5 * 10_001
        assert seconds < 10


def statement_cost(
    db: psycopg.Connection[Any], statement: str
) -> tuple[float, dict[str, int]]:
    """How long ``statement`` took, and the rows it read by scanning each table."""
    with db.transaction():
        started = time.monotonic()
        db.execute(statement)
        seconds = time.monotonic() - started
        rows_read = db.execute(
            "SELECT relname, seq_tup_read FROM pg_stat_xact_user_tables"
            " WHERE schemaname = 'public'"
        ).fetchall()
    return seconds, dict(rows_read)


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
