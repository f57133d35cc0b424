"""Events a change causes beyond its own rows.

Deletes that cascade from a list, a project or a company keep their context;
deleting a user, a tag or a custom field, or moving an assignment with an UPDATE,
gives the events the README promises, in a stable order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from relay.receiver import Receiver
from tests.support import (
    NEW_ITEM,
    add_webhook,
    all_delivered,
    bulk_todos,
    change,
    eventually,
    outbox,
    running_relay,
    seed_world,
)

# An event and where it belongs, as fan-out reads them.
WHERE_COLUMNS = ("event", "entity_id", "company_id", "project_id", "todo_list_ids")
ITEM = NEW_ITEM


async def test_deleting_a_list_cascades_into_events_that_keep_their_context(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    change(
        db,
        ITEM + " DELETE FROM relay.events",
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


async def test_deleting_a_company_cascades_into_events_that_keep_their_context(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    change(
        db,
        ITEM + "INSERT INTO todo_checklist_item_users"
        " (id, todo_checklist_item_id, user_id) VALUES ('ciu_base', 'cki_base',"
        " 'usr_carol'); DELETE FROM relay.events",
    )
    add_webhook(db, receiver, "/hook")

    change(db, "DELETE FROM companies WHERE id = 'cmp_acme'")

    # The users go first and take their assignments along; then the projects'
    # lists, tags and fields, then what was in the lists. All keep the company.
    ops, inbox = ("cmp_acme", "prj_ops"), ["lst_inbox"]
    assert outbox(db, *WHERE_COLUMNS) == [
        ("TODO_ASSIGNEE_REMOVED", "tdo_base", *ops, inbox),
        ("TODO_CHECKLIST_ITEM_ASSIGNEE_REMOVED", "cki_base", *ops, inbox),
        ("TODO_LIST_DELETED", "lst_inbox", *ops, inbox),
        ("TODO_LIST_DELETED", "lst_later", *ops, ["lst_later"]),
        ("TODO_LIST_DELETED", "lst_pipeline", "cmp_acme", "prj_sales",
         ["lst_pipeline"]),
        ("TAG_DELETED", "tag_urgent", *ops, None),
        ("CUSTOM_FIELD_DELETED", "cfd_budget", *ops, None),
        ("TODO_DELETED", "tdo_bare", *ops, inbox),
        ("TODO_DELETED", "tdo_base", *ops, inbox),
        ("COMMENT_DELETED", "cmt_base", *ops, inbox),
        ("TODO_CHECKLIST_DELETED", "chk_base", *ops, inbox),
        ("TODO_CHECKLIST_ITEM_DELETED", "cki_base", *ops, inbox),
    ]  # fmt: skip
    bodies = rendered_bodies(db)
    for key in ["TODO_DELETED:tdo_base", "TODO_ASSIGNEE_REMOVED:tdo_base"]:
        todo_list = bodies[key]["previousValue"]["todoList"]
        assert (todo_list["title"], todo_list["project"]["name"]) == (
            "Inbox",
            "Operations",
        )
        assert todo_list["project"]["company"]["name"] == "Acme"
    removed = bodies["TODO_ASSIGNEE_REMOVED:tdo_base"]
    assert [u["userId"] for u in removed["previousValue"]["todoUsers"]] == ["usr_alice"]
    assert removed["currentValue"]["todoUsers"] == []
    # Alice's assignment went with her, before the todo: its event told so.
    assert bodies["TODO_DELETED:tdo_base"]["previousValue"]["todoUsers"] == []
    pipeline = bodies["TODO_LIST_DELETED:lst_pipeline"]["previousValue"]
    assert (pipeline["project"]["slug"], pipeline["project"]["company"]["slug"]) == (
        "sales",
        "acme",
    )
    item = bodies["TODO_CHECKLIST_ITEM_DELETED:cki_base"]["previousValue"]
    company = item["todoChecklist"]["todo"]["todoList"]["project"]["company"]
    assert (company["id"], company["name"]) == ("cmp_acme", "Acme")
    tag = bodies["TAG_DELETED:tag_urgent"]["previousValue"]
    assert tag["project"]["company"]["description"] == "Makes everything"
    # Nobody is left to receive them: the webhook's creator went with the company.
    async with running_relay(dsn):
        await eventually(lambda: fanned_out(db) == 12)
    assert db.execute("SELECT count(*) FROM relay.deliveries").fetchall() == [(0,)]
    assert receiver.requests == []


def rendered_bodies(db: psycopg.Connection[Any]) -> dict[str, dict[str, Any]]:
    """Each event's body as the relay renders it now, by event:entity."""
    rows = db.execute(
        "SELECT e.event || ':' || e.entity_id, relay.payload_v2(e, w)"
        " FROM relay.events e CROSS JOIN relay.webhooks w ORDER BY e.id"
    ).fetchall()
    return {key: json.loads(body) for key, body in rows}


def fanned_out(db: psycopg.Connection[Any]) -> int:
    row = db.execute(
        "SELECT count(*) FROM relay.events WHERE fanned_out_at IS NOT NULL"
    ).fetchone()
    return row[0] if row else 0


@dataclass(frozen=True)
class Secondary:
    """A change whose events the README promises beyond its own table's."""

    name: str
    sql: str
    # (event, entity_id, changed_fields, members before, members after): the
    # members are the ids in the record's assignees, tags or field values.
    events: list[tuple[str, str, list[str] | None, Any, Any]]
    setup: str = ""


SECONDARY = [
    Secondary(
        "a value set for a field",
        "INSERT INTO todo_custom_fields (id, todo_id, custom_field_id, value)"
        " VALUES ('tcf_size', 'tdo_base', 'cfd_size', '\"L\"')",
        [("TODO_CUSTOM_FIELD_UPDATED", "tdo_base", ["cfd_size"],
          ["cfd_budget"], ["cfd_budget", "cfd_size"])],
        setup="INSERT INTO custom_fields (id, project_id, name)"
        " VALUES ('cfd_size', 'prj_ops', 'Size')",
    ),
    Secondary(
        "a value removed",
        "DELETE FROM todo_custom_fields WHERE id = 'tcf_base'",
        [("TODO_CUSTOM_FIELD_UPDATED", "tdo_base", ["cfd_budget"],
          ["cfd_budget"], [])],
    ),
    Secondary(
        "a field in use deleted",
        "DELETE FROM custom_fields WHERE id = 'cfd_budget'",
        [("CUSTOM_FIELD_DELETED", "cfd_budget", None, None, None),
         ("TODO_CUSTOM_FIELD_UPDATED", "tdo_base", ["cfd_budget"],
          ["cfd_budget"], [])],
    ),
    Secondary(
        "a tag in use deleted",
        "DELETE FROM tags WHERE id = 'tag_urgent'",
        [("TAG_DELETED", "tag_urgent", None, None, None),
         ("TODO_TAG_REMOVED", "tdo_base", ["todoTags"], ["tag_urgent"], [])],
    ),
    Secondary(
        "a user deleted",
        "DELETE FROM users WHERE id = 'usr_alice'",
        # Her todos, lists and comments only lose their creator: no event.
        [("TODO_ASSIGNEE_REMOVED", "tdo_base", ["todoUsers"], ["usr_alice"], []),
         ("TODO_CHECKLIST_ITEM_ASSIGNEE_REMOVED", "cki_base",
          ["todoChecklistItemUsers"], ["usr_alice"], [])],
        setup=ITEM + "INSERT INTO todo_checklist_item_users"
        " (todo_checklist_item_id, user_id) VALUES ('cki_base', 'usr_alice')",
    ),
    Secondary(
        "an assignment given to another user",
        "UPDATE todo_users SET user_id = 'usr_carol' WHERE id = 'tdu_base'",
        [("TODO_ASSIGNEE_REMOVED", "tdo_base", ["todoUsers"],
          ["usr_alice"], ["usr_carol"]),
         ("TODO_ASSIGNEE_ADDED", "tdo_base", ["todoUsers"],
          ["usr_alice"], ["usr_carol"])],
    ),
    Secondary(
        "an assignment moved to another todo, in the order of the todos' ids",
        "UPDATE todo_users SET todo_id = 'tdo_bare' WHERE id = 'tdu_base'",
        [("TODO_ASSIGNEE_ADDED", "tdo_bare", ["todoUsers"], [], ["usr_alice"]),
         ("TODO_ASSIGNEE_REMOVED", "tdo_base", ["todoUsers"], ["usr_alice"], [])],
    ),
    Secondary(
        "a tagging changed to another tag",
        "UPDATE todo_tags SET tag_id = 'tag_later' WHERE id = 'tdt_base'",
        [("TODO_TAG_REMOVED", "tdo_base", ["todoTags"],
          ["tag_urgent"], ["tag_later"]),
         ("TODO_TAG_ADDED", "tdo_base", ["todoTags"],
          ["tag_urgent"], ["tag_later"])],
        setup="INSERT INTO tags (id, project_id, title)"
        " VALUES ('tag_later', 'prj_ops', 'Later')",
    ),
    Secondary(
        "a checklist item's assignment given to another user",
        "UPDATE todo_checklist_item_users SET user_id = 'usr_carol'",
        [("TODO_CHECKLIST_ITEM_ASSIGNEE_REMOVED", "cki_base",
          ["todoChecklistItemUsers"], ["usr_alice"], ["usr_carol"]),
         ("TODO_CHECKLIST_ITEM_ASSIGNEE_ADDED", "cki_base",
          ["todoChecklistItemUsers"], ["usr_alice"], ["usr_carol"])],
        setup=ITEM + "INSERT INTO todo_checklist_item_users"
        " (todo_checklist_item_id, user_id) VALUES ('cki_base', 'usr_alice')",
    ),
    Secondary(
        "a value moved to another field",
        "UPDATE todo_custom_fields SET custom_field_id = 'cfd_size'",
        [("TODO_CUSTOM_FIELD_UPDATED", "tdo_base", ["cfd_budget"],
          ["cfd_budget"], ["cfd_size"]),
         ("TODO_CUSTOM_FIELD_UPDATED", "tdo_base", ["cfd_size"],
          ["cfd_budget"], ["cfd_size"])],
        setup="INSERT INTO custom_fields (id, project_id, name)"
        " VALUES ('cfd_size', 'prj_ops', 'Size')",
    ),
    Secondary(
        "a field renamed and retyped",
        "UPDATE custom_fields SET name = 'Budget (EUR)', type = 'NUMBER'",
        [("CUSTOM_FIELD_UPDATED", "cfd_budget", ["name", "type"], None, None)],
    ),
]  # fmt: skip

# Where each kind of record keeps its set, and the key of a member in it.
MEMBERS = {
    "_todo_users": "user_id",
    "_todo_tags": "tag_id",
    "_todo_custom_fields": "custom_field_id",
    "_todo_checklist_item_users": "user_id",
}


@pytest.mark.parametrize("case", SECONDARY, ids=[case.name for case in SECONDARY])
def test_a_change_gives_the_events_the_readme_promises_elsewhere(
    case: Secondary, db: psycopg.Connection[Any]
) -> None:
    seed_world(db)
    if case.setup:
        change(db, case.setup + "; DELETE FROM relay.events")

    change(db, case.sql)

    rows = outbox(db, *WHERE_COLUMNS, "changed_fields", "previous_value",
                  "current_value")  # fmt: skip
    assert [
        (event, entity_id, changed, members(before), members(after))
        for event, entity_id, _, _, _, changed, before, after in rows
    ] == case.events
    # Each event knows where it belongs, for fan-out's scope and filters.
    assert [row[2:4] for row in rows] == [("cmp_acme", "prj_ops")] * len(rows)


def members(value: dict[str, Any] | None) -> list[str] | None:
    """The sorted member ids of the set the value carries, if it carries one."""
    for key, member_key in MEMBERS.items():
        if value is not None and key in value:
            return sorted(row[member_key] for row in value[key])
    return None


def test_many_assignments_given_to_others_each_give_the_removal_first(
    db: psycopg.Connection[Any],
) -> None:
    seed_world(db)
    change(
        db,
        bulk_todos(2000, "lst_inbox") + " INSERT INTO todo_users (todo_id, user_id)"
        " SELECT id, 'usr_alice' FROM todos WHERE id LIKE 'tdo_bulk_%';"
        " DELETE FROM relay.events",
    )

    change(db, "UPDATE todo_users SET user_id = 'usr_carol'")

    # A sort by record and assignment alone leaves the two in any order.
    events = outbox(db, "entity_id", "event")
    expected = [
        (todo, event)
        for todo in sorted({todo for todo, _ in events})
        for event in ["TODO_ASSIGNEE_REMOVED", "TODO_ASSIGNEE_ADDED"]
    ]
    assert len(events) == 2 * 2001
    assert events == expected
