"""Events a change causes beyond its own rows: deletes that cascade."""

from __future__ import annotations

from typing import Any

import psycopg

from relay.receiver import Receiver
from tests.support import (
    add_webhook,
    all_delivered,
    change,
    eventually,
    outbox,
    running_relay,
    seed_world,
)


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
