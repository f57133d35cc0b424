"""One SQL change per captured event reaches a real receiver exactly once.

Each case runs its change after the webhook exists, against a seeded world
(tests/support.py), and checks what the receiver got: the event name, the
signature recomputed from the raw body, the nested context and the values of
previousValue and currentValue as the contract describes them.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from relay.events import CAPTURED_EVENTS, HEALTH_CHECK_EVENT
from relay.receiver import Receiver
from tests.support import (
    add_webhook,
    all_delivered,
    change,
    eventually,
    running_relay,
    seed_world,
)

TODO_KEYS = {
    "id", "uid", "title", "html", "text", "position", "archived", "done",
    "startedAt", "duedAt", "timezone", "createdAt", "updatedAt", "createdById",
    "todoListId", "todoUsers", "todoTags", "todoCustomFields", "todoList",
}  # fmt: skip
LIST_KEYS = {
    "id", "uid", "title", "position", "createdAt", "updatedAt", "createdById",
    "projectId", "project",
}  # fmt: skip
PROJECT_KEYS = {
    "id", "uid", "slug", "name", "description", "archived", "category",
    "createdAt", "updatedAt", "companyId", "company",
}  # fmt: skip
COMPANY_KEYS = {"id", "uid", "slug", "name", "description", "createdAt", "updatedAt"}
COMMENT_KEYS = {
    "id", "uid", "html", "text", "createdAt", "updatedAt", "createdById",
    "todoId", "todo",
}  # fmt: skip
CHECKLIST_KEYS = {
    "id", "uid", "title", "position", "createdAt", "updatedAt", "createdById",
    "todoId", "todo",
}  # fmt: skip
ITEM_KEYS = {
    "id", "uid", "title", "position", "done", "startedAt", "duedAt", "createdAt",
    "updatedAt", "createdById", "todoChecklistId", "todoChecklistItemUsers",
    "todoChecklist",
}  # fmt: skip
TAG_KEYS = {
    "id", "uid", "title", "color", "createdAt", "updatedAt", "projectId", "project",
}  # fmt: skip
FIELD_KEYS = {
    "id", "uid", "name", "type", "position", "createdAt", "updatedAt", "projectId",
    "project",
}  # fmt: skip
KEYS = {
    "todo": TODO_KEYS,
    "list": LIST_KEYS,
    "comment": COMMENT_KEYS,
    "checklist": CHECKLIST_KEYS,
    "item": ITEM_KEYS,
    "tag": TAG_KEYS,
    "field": FIELD_KEYS,
}
ITEM = (
    "INSERT INTO todo_checklist_items (id, todo_checklist_id, title, dued_at)"
    " VALUES ('cki_base', 'chk_base', 'Find the number', '2026-12-24 09:00+00');"
)


@dataclass(frozen=True)
class Case:
    event: str
    kind: str
    sql: str
    # Expected values in previousValue / currentValue; None means the value is null.
    # A key "list.key" means [item[key] for item in value[list]].
    previous: dict[str, Any] | None
    current: dict[str, Any] | None
    # Run before the webhook exists; its events are not part of the case.
    setup: str = ""


CASES = [
    Case(
        "TODO_CREATED",
        "todo",
        "INSERT INTO todos (id, todo_list_id, title, position, created_by_id)"
        " VALUES ('tdo_new', 'lst_inbox', 'Write the brief', 131070.25, 'usr_alice')",
        None,
        {"id": "tdo_new", "title": "Write the brief", "position": "131070.25",
         "todoListId": "lst_inbox", "done": False, "archived": False,
         "createdById": "usr_alice", "todoUsers": [], "todoTags": []},
    ),
    Case(
        "TODO_DELETED",
        "todo",
        "DELETE FROM todos WHERE id = 'tdo_bare'",
        {"id": "tdo_bare", "title": "Water the plants", "position": "98302.75",
         "todoListId": "lst_inbox", "html": None},
        None,
    ),
    Case(
        "TODO_MOVED",
        "todo",
        "UPDATE todos SET todo_list_id = 'lst_later' WHERE id = 'tdo_base'",
        {"id": "tdo_base", "todoListId": "lst_inbox"},
        {"id": "tdo_base", "todoListId": "lst_later"},
    ),
    Case(
        "TODO_NAME_CHANGED",
        "todo",
        "UPDATE todos SET title = 'Call the supplier today' WHERE id = 'tdo_base'",
        {"id": "tdo_base", "title": "Call the supplier"},
        {"id": "tdo_base", "title": "Call the supplier today", "html": "<p>Call</p>"},
    ),
    Case(
        "TODO_CHECKLIST_CREATED",
        "checklist",
        "INSERT INTO todo_checklists (id, todo_id, title)"
        " VALUES ('chk_new', 'tdo_base', 'Prepare')",
        None,
        {"id": "chk_new", "title": "Prepare", "todoId": "tdo_base"},
    ),
    Case(
        "TODO_CHECKLIST_NAME_CHANGED",
        "checklist",
        "UPDATE todo_checklists SET title = 'Before calling' WHERE id = 'chk_base'",
        {"id": "chk_base", "title": "Before the call"},
        {"id": "chk_base", "title": "Before calling"},
    ),
    Case(
        "TODO_CHECKLIST_DELETED",
        "checklist",
        "DELETE FROM todo_checklists WHERE id = 'chk_base'",
        {"id": "chk_base", "title": "Before the call", "todoId": "tdo_base"},
        None,
    ),
    Case(
        "TODO_CHECKLIST_ITEM_CREATED",
        "item",
        "INSERT INTO todo_checklist_items (id, todo_checklist_id, title, dued_at)"
        " VALUES ('cki_new', 'chk_base', 'Find the number',"
        " '2026-12-24 17:30:00.1234+01')",
        None,
        {"id": "cki_new", "title": "Find the number", "done": False,
         "duedAt": "2026-12-24T16:30:00.123Z", "todoChecklistId": "chk_base"},
    ),
    Case(
        "TODO_LIST_CREATED",
        "list",
        "INSERT INTO todo_lists (id, project_id, title, position)"
        " VALUES ('lst_new', 'prj_ops', 'Done', 262140)",
        None,
        {"id": "lst_new", "title": "Done", "position": 262140, "projectId": "prj_ops"},
    ),
    Case(
        "TODO_LIST_DELETED",
        "list",
        "DELETE FROM todo_lists WHERE id = 'lst_later'",
        {"id": "lst_later", "title": "Later", "position": 196605},
        None,
    ),
    Case(
        "TODO_LIST_NAME_CHANGED",
        "list",
        "UPDATE todo_lists SET title = 'Someday' WHERE id = 'lst_later'",
        {"id": "lst_later", "title": "Later"},
        {"id": "lst_later", "title": "Someday"},
    ),
    Case(
        "COMMENT_CREATED",
        "comment",
        "INSERT INTO comments (id, todo_id, html, text, created_by_id)"
        " VALUES ('cmt_new', 'tdo_base', '<p>Ask 🙂</p>', 'Ask 🙂', 'usr_alice')",
        None,
        {"id": "cmt_new", "html": "<p>Ask 🙂</p>", "text": "Ask 🙂",
         "todoId": "tdo_base", "createdById": "usr_alice"},
    ),
    Case(
        "COMMENT_DELETED",
        "comment",
        "DELETE FROM comments WHERE id = 'cmt_base'",
        {"id": "cmt_base", "text": "First", "todoId": "tdo_base"},
        None,
    ),
    Case(
        "COMMENT_UPDATED",
        "comment",
        "UPDATE comments SET text = 'Edited', html = '<p>Edited</p>'"
        " WHERE id = 'cmt_base'",
        {"id": "cmt_base", "text": "First", "html": "<p>First</p>"},
        {"id": "cmt_base", "text": "Edited", "html": "<p>Edited</p>"},
    ),
    Case(
        "TODO_DONE_STATUS_UPDATED",
        "todo",
        "UPDATE todos SET done = true WHERE id = 'tdo_base'",
        {"id": "tdo_base", "done": False},
        {"id": "tdo_base", "done": True, "title": "Call the supplier"},
    ),
    Case(
        "TODO_DUE_DATE_ADDED",
        "todo",
        "UPDATE todos SET dued_at = '2026-12-24 17:30:00.1234+01'"
        " WHERE id = 'tdo_base'",
        {"id": "tdo_base", "duedAt": None},
        {"id": "tdo_base", "duedAt": "2026-12-24T16:30:00.123Z"},
    ),
    Case(
        "TODO_DUE_DATE_UPDATED",
        "todo",
        "UPDATE todos SET dued_at = '2027-01-02 08:00Z' WHERE id = 'tdo_base'",
        {"id": "tdo_base", "duedAt": "2026-12-24T09:00:00.000Z"},
        {"id": "tdo_base", "duedAt": "2027-01-02T08:00:00.000Z"},
        setup="UPDATE todos SET dued_at = '2026-12-24 09:00Z' WHERE id = 'tdo_base'",
    ),
    Case(
        "TODO_DUE_DATE_REMOVED",
        "todo",
        "UPDATE todos SET dued_at = NULL WHERE id = 'tdo_base'",
        {"id": "tdo_base", "duedAt": "2026-12-24T09:00:00.000Z"},
        {"id": "tdo_base", "duedAt": None},
        setup="UPDATE todos SET dued_at = '2026-12-24 09:00Z' WHERE id = 'tdo_base'",
    ),
    Case(
        "TODO_ASSIGNEE_ADDED",
        "todo",
        "INSERT INTO todo_users (id, todo_id, user_id)"
        " VALUES ('tdu_new', 'tdo_base', 'usr_carol')",
        {"id": "tdo_base", "todoUsers.userId": ["usr_alice"]},
        {"id": "tdo_base", "todoUsers.userId": ["usr_alice", "usr_carol"],
         "todoUsers.id": ["tdu_base", "tdu_new"]},
    ),
    Case(
        "TODO_ASSIGNEE_REMOVED",
        "todo",
        "DELETE FROM todo_users WHERE id = 'tdu_base'",
        {"id": "tdo_base", "todoUsers.userId": ["usr_alice"]},
        {"id": "tdo_base", "todoUsers": []},
    ),
    Case(
        "TODO_TAG_ADDED",
        "todo",
        "INSERT INTO todo_tags (id, todo_id, tag_id)"
        " VALUES ('tdt_new', 'tdo_base', 'tag_later')",
        {"id": "tdo_base", "todoTags.tagId": ["tag_urgent"]},
        {"id": "tdo_base", "todoTags.tagId": ["tag_urgent", "tag_later"]},
        setup="INSERT INTO tags (id, project_id, title, color)"
        " VALUES ('tag_later', 'prj_ops', 'Later', 'grey')",
    ),
    Case(
        "TODO_TAG_REMOVED",
        "todo",
        "DELETE FROM todo_tags WHERE id = 'tdt_base'",
        {"id": "tdo_base", "todoTags.tagId": ["tag_urgent"]},
        {"id": "tdo_base", "todoTags": []},
    ),
    Case(
        "TODO_CUSTOM_FIELD_UPDATED",
        "todo",
        "UPDATE todo_custom_fields SET value = '{\"amount\": \"1300.00\"}'"
        " WHERE id = 'tcf_base'",
        {"id": "tdo_base", "todoCustomFields.value": [{"amount": "1200.50"}]},
        {"id": "tdo_base", "todoCustomFields.value": [{"amount": "1300.00"}],
         "todoCustomFields.customFieldId": ["cfd_budget"]},
    ),
    Case(
        "TODO_CHECKLIST_ITEM_NAME_CHANGED",
        "item",
        "UPDATE todo_checklist_items SET title = 'Find the phone number'"
        " WHERE id = 'cki_base'",
        {"id": "cki_base", "title": "Find the number"},
        {"id": "cki_base", "title": "Find the phone number"},
        setup=ITEM,
    ),
    Case(
        "TODO_CHECKLIST_ITEM_DELETED",
        "item",
        "DELETE FROM todo_checklist_items WHERE id = 'cki_base'",
        {"id": "cki_base", "title": "Find the number",
         "todoChecklistItemUsers.userId": ["usr_carol"]},
        None,
        setup=ITEM + "INSERT INTO todo_checklist_item_users"
        " (todo_checklist_item_id, user_id) VALUES ('cki_base', 'usr_carol')",
    ),
    Case(
        "TODO_CHECKLIST_ITEM_DUE_DATE_ADDED",
        "item",
        "UPDATE todo_checklist_items SET dued_at = '2026-12-20 10:00Z'"
        " WHERE id = 'cki_base'",
        {"id": "cki_base", "duedAt": None},
        {"id": "cki_base", "duedAt": "2026-12-20T10:00:00.000Z"},
        setup=ITEM + "UPDATE todo_checklist_items SET dued_at = NULL",
    ),
    Case(
        "TODO_CHECKLIST_ITEM_DUE_DATE_UPDATED",
        "item",
        "UPDATE todo_checklist_items SET dued_at = '2026-12-23 09:00:00.5Z'"
        " WHERE id = 'cki_base'",
        {"id": "cki_base", "duedAt": "2026-12-24T09:00:00.000Z"},
        {"id": "cki_base", "duedAt": "2026-12-23T09:00:00.500Z"},
        setup=ITEM,
    ),
    Case(
        "TODO_CHECKLIST_ITEM_DUE_DATE_REMOVED",
        "item",
        "UPDATE todo_checklist_items SET dued_at = NULL WHERE id = 'cki_base'",
        {"id": "cki_base", "duedAt": "2026-12-24T09:00:00.000Z"},
        {"id": "cki_base", "duedAt": None},
        setup=ITEM,
    ),
    Case(
        "TODO_CHECKLIST_ITEM_ASSIGNEE_ADDED",
        "item",
        "INSERT INTO todo_checklist_item_users (id, todo_checklist_item_id, user_id)"
        " VALUES ('ciu_new', 'cki_base', 'usr_alice')",
        {"id": "cki_base", "todoChecklistItemUsers": []},
        {"id": "cki_base", "todoChecklistItemUsers.id": ["ciu_new"],
         "todoChecklistItemUsers.userId": ["usr_alice"]},
        setup=ITEM,
    ),
    Case(
        "TODO_CHECKLIST_ITEM_ASSIGNEE_REMOVED",
        "item",
        "DELETE FROM todo_checklist_item_users WHERE id = 'ciu_base'",
        {"id": "cki_base", "todoChecklistItemUsers.userId": ["usr_carol"]},
        {"id": "cki_base", "todoChecklistItemUsers": []},
        setup=ITEM + "INSERT INTO todo_checklist_item_users"
        " (id, todo_checklist_item_id, user_id)"
        " VALUES ('ciu_base', 'cki_base', 'usr_carol')",
    ),
    Case(
        "TODO_CHECKLIST_ITEM_DONE_STATUS_UPDATED",
        "item",
        "UPDATE todo_checklist_items SET done = true WHERE id = 'cki_base'",
        {"id": "cki_base", "done": False},
        {"id": "cki_base", "done": True},
        setup=ITEM,
    ),
    Case(
        "CUSTOM_FIELD_CREATED",
        "field",
        "INSERT INTO custom_fields (id, project_id, name, type, position)"
        " VALUES ('cfd_new', 'prj_ops', 'Delivery date', 'DATE', 131070.5)",
        None,
        {"id": "cfd_new", "name": "Delivery date", "type": "DATE",
         "position": 131070.5, "projectId": "prj_ops"},
    ),
    Case(
        "CUSTOM_FIELD_DELETED",
        "field",
        "DELETE FROM custom_fields WHERE id = 'cfd_new'",
        {"id": "cfd_new", "name": "Delivery date", "projectId": "prj_ops"},
        None,
        setup="INSERT INTO custom_fields (id, project_id, name, type)"
        " VALUES ('cfd_new', 'prj_ops', 'Delivery date', 'DATE')",
    ),
    Case(
        "CUSTOM_FIELD_UPDATED",
        "field",
        "UPDATE custom_fields SET name = 'Budget (EUR)' WHERE id = 'cfd_budget'",
        {"id": "cfd_budget", "name": "Budget", "type": "CURRENCY"},
        {"id": "cfd_budget", "name": "Budget (EUR)", "type": "CURRENCY"},
    ),
    Case(
        "TAG_CREATED",
        "tag",
        "INSERT INTO tags (id, project_id, title, color)"
        " VALUES ('tag_new', 'prj_ops', 'Blocked 🚧', '#ff0000')",
        None,
        {"id": "tag_new", "title": "Blocked 🚧", "color": "#ff0000",
         "projectId": "prj_ops"},
    ),
    Case(
        "TAG_DELETED",
        "tag",
        "DELETE FROM tags WHERE id = 'tag_later'",
        {"id": "tag_later", "title": "Later", "color": "grey"},
        None,
        setup="INSERT INTO tags (id, project_id, title, color)"
        " VALUES ('tag_later', 'prj_ops', 'Later', 'grey')",
    ),
    Case(
        "TAG_UPDATED",
        "tag",
        "UPDATE tags SET color = 'orange' WHERE id = 'tag_urgent'",
        {"id": "tag_urgent", "title": "Urgent", "color": "red"},
        {"id": "tag_urgent", "title": "Urgent", "color": "orange"},
    ),
]  # fmt: skip


def test_the_cases_cover_every_captured_event() -> None:
    assert sorted(case.event for case in CASES) == sorted(CAPTURED_EVENTS)


README = Path(__file__).resolve().parents[1] / "README.md"
# A row of the README's events table: | `EVENT` | cause | changed fields |
EVENT_ROW = re.compile(r"^\| `([A-Z_]+)` \| (.*?) \|(.*)\|$")


def readme_events_table() -> dict[str, str]:
    """The cause of each event in the table under "## Events", by event name."""
    section = README.read_text(encoding="utf-8").split("\n## Events\n")[1]
    section = section.split("\n## ")[0]
    causes: dict[str, str] = {}
    for line in section.splitlines():
        row = EVENT_ROW.match(line)
        if row:
            assert row[1] not in causes, f"{row[1]} is listed twice"
            causes[row[1]] = row[2].strip()
    return causes


def test_readme_lists_every_event_with_its_cause() -> None:
    causes = readme_events_table()

    assert sorted(causes) == sorted([*CAPTURED_EVENTS, HEALTH_CHECK_EVENT])
    assert len(causes) == 38
    assert [event for event, cause in causes.items() if not cause] == []
    assert causes["TODO_NAME_CHANGED"] == "UPDATE of `todos.title`"
    assert causes[HEALTH_CHECK_EVENT] == (
        "`relay webhooks enable` on a disabled webhook"
    )


@pytest.mark.parametrize("case", CASES, ids=[case.event for case in CASES])
async def test_one_change_gives_one_signed_nested_delivery(
    case: Case, db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    if case.setup:
        change(db, case.setup + "; DELETE FROM relay.events")
    webhook_id, secret = add_webhook(db, receiver, "/hook")

    async with running_relay(dsn):
        change(db, case.sql, actor="usr_alice")
        [request] = await receiver.wait_for(1, path="/hook")
        await eventually(lambda: all_delivered(db, expected=1))

    assert len(receiver.requests) == 1
    expected_signature = hmac.new(
        secret.encode(), request.body, hashlib.sha256
    ).hexdigest()
    assert request.headers["X-Signature"] == expected_signature
    assert request.headers["Content-Type"] == "application/json"
    payload = request.payload
    assert set(payload) == {"event", "webhook", "previousValue", "currentValue"}
    assert payload["event"] == case.event
    assert payload["webhook"]["id"] == webhook_id
    assert "secret" not in payload["webhook"]
    check_value(payload["previousValue"], case.previous, case.kind)
    check_value(payload["currentValue"], case.current, case.kind)
    assert db.execute("SELECT event, actor_id FROM relay.events").fetchall() == [
        (case.event, "usr_alice")
    ]


def check_value(value: Any, expected: dict[str, Any] | None, kind: str) -> None:
    if expected is None:
        assert value is None
        return
    assert set(value) == KEYS[kind]
    assert {key: pick(value, key) for key in expected} == expected
    check_context(value, kind)


def pick(value: dict[str, Any], key: str) -> Any:
    """``value[key]``, or for "list.key" that key of each item of the list."""
    if "." not in key:
        return value[key]
    outer, inner = key.split(".")
    return [item[inner] for item in value[outer]]


def check_context(value: dict[str, Any], kind: str) -> None:
    """The record, list, project and company arrive nested inside the entity."""
    if kind == "item":
        assert set(value["todoChecklist"]) == CHECKLIST_KEYS
        value, kind = value["todoChecklist"], "checklist"
    if kind in ("comment", "checklist"):
        assert value["todo"]["id"] == "tdo_base"
        value, kind = value["todo"], "todo"
    if kind == "todo":
        assert set(value["todoList"]) == LIST_KEYS
        assert value["todoList"]["id"] == value["todoListId"]
        value = value["todoList"]
    project = value["project"]
    assert set(project) == PROJECT_KEYS
    assert project["id"] == value["projectId"] == "prj_ops"
    assert project["name"] == "Operations"
    assert project["category"] == "ENGINEERING"
    assert set(project["company"]) == COMPANY_KEYS
    assert project["company"]["id"] == project["companyId"] == "cmp_acme"
    assert project["company"]["name"] == "Acme"


async def test_a_record_carries_its_assignees_tags_and_custom_fields(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    add_webhook(db, receiver, "/hook")

    async with running_relay(dsn):
        change(db, "UPDATE todos SET title = 'Renamed' WHERE id = 'tdo_base'")
        [request] = await receiver.wait_for(1, path="/hook")

    todo = request.payload["currentValue"]
    assert [(item["id"], item["userId"]) for item in todo["todoUsers"]] == [
        ("tdu_base", "usr_alice")
    ]
    assert todo["todoUsers"][0]["user"]["email"] == "alice@acme.test"
    assert [(item["tagId"], item["tag"]["title"]) for item in todo["todoTags"]] == [
        ("tag_urgent", "Urgent")
    ]
    [field_value] = todo["todoCustomFields"]
    assert field_value["customFieldId"] == "cfd_budget"
    assert field_value["value"] == {"amount": "1200.50"}
    assert field_value["customField"]["name"] == "Budget"
    assert todo["createdAt"].endswith("Z")
    assert len(todo["createdAt"]) == len("2026-01-05T09:00:00.000Z")


async def test_renaming_and_moving_in_one_statement_gives_two_events_in_order(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    add_webhook(db, receiver, "/hook")

    change(
        db,
        "UPDATE todos SET title = 'Moved', todo_list_id = 'lst_later'"
        " WHERE id = 'tdo_base'",
    )
    async with running_relay(dsn):
        requests = await receiver.wait_for(2, path="/hook")

    assert [request.event for request in requests] == [
        "TODO_NAME_CHANGED",
        "TODO_MOVED",
    ]
    # Both carry the whole todo before and after the statement.
    for request in requests:
        before, after = (
            request.payload["previousValue"],
            request.payload["currentValue"],
        )
        assert (before["id"], before["title"], before["todoListId"]) == (
            "tdo_base",
            "Call the supplier",
            "lst_inbox",
        )
        assert (before["todoList"]["id"], before["todoList"]["title"]) == (
            "lst_inbox",
            "Inbox",
        )
        assert (after["id"], after["title"], after["todoListId"]) == (
            "tdo_base",
            "Moved",
            "lst_later",
        )
        assert (after["todoList"]["id"], after["todoList"]["title"]) == (
            "lst_later",
            "Later",
        )


async def test_an_update_that_changes_nothing_tracked_emits_nothing(
    db: psycopg.Connection[Any],
) -> None:
    seed_world(db)

    change(db, "UPDATE todos SET updated_at = now(), title = title")
    change(db, "UPDATE comments SET updated_at = now() WHERE id = 'cmt_base'")
    change(db, "UPDATE todo_lists SET title = title, position = 1")

    assert db.execute("SELECT count(*) FROM relay.events").fetchone() == (0,)


def test_a_session_search_path_can_neither_break_nor_hijack_capture(
    db: psycopg.Connection[Any],
) -> None:
    seed_world(db)
    db.execute(
        "CREATE SCHEMA decoy;"
        " CREATE TABLE decoy.todo_lists (id text, project_id text);"
        " INSERT INTO decoy.todo_lists VALUES ('lst_inbox', 'prj_globex');"
        " CREATE TABLE decoy.events (LIKE relay.events);"
    )

    with db.transaction():
        db.execute("SET LOCAL search_path = decoy, public")
        db.execute(
            "INSERT INTO todos (id, todo_list_id, title)"
            " VALUES ('tdo_decoy', 'lst_inbox', 'Decoy')"
        )
    with db.transaction():
        db.execute("SET LOCAL search_path = nowhere")
        db.execute("UPDATE public.todos SET title = 'No path' WHERE id = 'tdo_decoy'")

    captured = db.execute(
        "SELECT event, entity_id, company_id, project_id FROM relay.events ORDER BY id"
    ).fetchall()
    assert captured == [
        ("TODO_CREATED", "tdo_decoy", "cmp_acme", "prj_ops"),
        ("TODO_NAME_CHANGED", "tdo_decoy", "cmp_acme", "prj_ops"),
    ]
    assert db.execute("SELECT count(*) FROM decoy.events").fetchone() == (0,)


def test_the_actor_is_whoever_the_transaction_names_or_null(
    db: psycopg.Connection[Any],
) -> None:
    seed_world(db)

    change(db, "UPDATE todos SET title = 'By Carol' WHERE id = 'tdo_base'", "usr_carol")
    change(db, "UPDATE todos SET title = 'By nobody' WHERE id = 'tdo_base'", None)

    assert db.execute("SELECT actor_id FROM relay.events ORDER BY id").fetchall() == [
        ("usr_carol",),
        (None,),
    ]
