"""Webhook filters, scope at fan-out and the health check sent on re-enable.

The first tests put events straight into the outbox, shaped as the capture
triggers write them, and run the real fan-out query: each filter's rule is
shown on exact cases. The others run real changes through the triggers and a
real relay to real receivers. To show that something was not delivered, they
deliver a later event that is, then check that the earlier one never became a
delivery.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from relay import claims, webhooks
from relay.db import connect_async
from relay.receiver import Receiver
from tests.support import (
    all_delivered,
    change,
    eventually,
    relay_command,
    running_relay,
    seed_world,
)

NOWHERE = "http://127.0.0.1:9/nowhere"
NEW_TODO = (
    "INSERT INTO todos (id, todo_list_id, title) VALUES ('tdo_new', 'lst_inbox', 'x')"
)
NEW_COMMENT = "INSERT INTO comments (todo_id, text) VALUES ('tdo_base', 'Noted')"


def add_filtered_webhook(
    db: psycopg.Connection[Any],
    name: str,
    receiver: Receiver | None = None,
    *,
    created_by: str = "usr_alice",
    **filters: Sequence[str],
) -> str:
    """Register webhook ``name`` (POSTing to /name on the receiver); return its id."""
    url = NOWHERE if receiver is None else receiver.url(f"/{name}")
    created, secret = webhooks.create(
        db,
        webhooks.NewWebhook(name=name, url=url, created_by_id=created_by, **filters),
    )
    if receiver is not None:
        receiver.expect_secret(f"/{name}", secret)
    return str(created["id"])


def add_event(
    db: psycopg.Connection[Any],
    event: str,
    label: str,
    *,
    entity: str = "todo",
    todo_id: str | None = "tdo_base",
    lists: Sequence[str] | None = ("lst_inbox",),
    fields: Sequence[str] | None = None,
    previous: dict[str, Any] | None = None,
    current: dict[str, Any] | None = None,
) -> None:
    """An outbox row of prj_ops as a capture writes it; ``label`` is its entity_id."""
    db.execute(
        "INSERT INTO relay.events (event, entity, entity_id, company_id, project_id,"
        " todo_id, todo_list_ids, changed_fields, previous_value, current_value)"
        " VALUES (%s, %s, %s, 'cmp_acme', 'prj_ops', %s, %s, %s, %s, %s)",
        (
            event,
            entity,
            label,
            todo_id,
            None if lists is None else list(lists),
            None if fields is None else list(fields),
            None if previous is None else Jsonb(previous),
            None if current is None else Jsonb(current),
        ),
    )


async def fan_out(dsn: str, db: psycopg.Connection[Any]) -> dict[str, list[str]]:
    """Run the real fan-out; return each webhook's name and its events' labels."""
    connection = await connect_async(dsn)
    try:
        while await claims.fan_out(connection, batch_size=100):
            pass
    finally:
        await connection.close()
    received: dict[str, list[str]] = {}
    for name, label in db.execute(
        "SELECT w.name, e.entity_id FROM relay.deliveries d"
        " JOIN relay.webhooks w ON w.id = d.webhook_id"
        " JOIN relay.events e ON e.id = d.event_id ORDER BY w.name, e.id"
    ):
        received.setdefault(name, []).append(label)
    return received


def tags(*tag_ids: str) -> dict[str, Any]:
    return {"_todo_tags": [{"todo_id": "tdo_x", "tag_id": tag} for tag in tag_ids]}


def users(*user_ids: str) -> dict[str, Any]:
    return {"_todo_users": [{"todo_id": "tdo_x", "user_id": user} for user in user_ids]}


async def test_a_list_filter_keeps_its_lists_and_what_concerns_no_list(
    db: psycopg.Connection[Any], dsn: str
) -> None:
    seed_world(db)
    add_filtered_webhook(db, "inbox", todo_list_ids=["lst_inbox"])
    add_filtered_webhook(db, "all")
    add_event(db, "TODO_CREATED", "created in inbox")
    add_event(db, "TODO_CREATED", "created in later", lists=["lst_later"])
    add_event(
        db,
        "TODO_MOVED",
        "moved out of inbox",
        lists=["lst_inbox", "lst_later"],
        fields=["todoListId"],
    )
    add_event(
        db,
        "TODO_LIST_NAME_CHANGED",
        "later renamed",
        entity="todo_list",
        todo_id=None,
        lists=["lst_later"],
        fields=["title"],
    )
    add_event(db, "TAG_UPDATED", "tag recoloured", todo_id=None, lists=None)
    add_event(db, "CUSTOM_FIELD_CREATED", "field created", todo_id=None, lists=None)

    received = await fan_out(dsn, db)

    assert received == {
        "all": [
            "created in inbox",
            "created in later",
            "moved out of inbox",
            "later renamed",
            "tag recoloured",
            "field created",
        ],
        "inbox": [
            "created in inbox",
            "moved out of inbox",
            "tag recoloured",
            "field created",
        ],
    }


async def test_a_tag_filter_looks_before_and_after_the_change(
    db: psycopg.Connection[Any], dsn: str
) -> None:
    seed_world(db)
    add_filtered_webhook(db, "urgent", tag_ids=["tag_urgent"])
    # tdo_base carries tag_urgent (live rows); tdo_bare carries no tag.
    add_event(db, "COMMENT_CREATED", "comment on tagged", entity="comment")
    add_event(
        db,
        "COMMENT_CREATED",
        "comment on untagged",
        entity="comment",
        todo_id="tdo_bare",
    )
    add_event(
        db,
        "TODO_TAG_REMOVED",
        "urgent removed",
        todo_id="tdo_bare",
        fields=["todoTags"],
        previous=tags("tag_urgent"),
        current=tags(),
    )
    add_event(
        db,
        "TODO_TAG_ADDED",
        "other added",
        todo_id="tdo_bare",
        fields=["todoTags"],
        previous=tags(),
        current=tags("tag_other"),
    )
    add_event(
        db,
        "TODO_DELETED",
        "tagged deleted",
        todo_id="tdo_x",
        previous=tags("tag_urgent"),
    )
    add_event(
        db,
        "COMMENT_DELETED",
        "comment deleted with it",
        entity="comment",
        todo_id="tdo_x",
        previous={"_context": {"todo": tags("tag_urgent")}},
    )
    add_event(db, "TODO_LIST_CREATED", "list created", entity="todo_list", todo_id=None)

    received = await fan_out(dsn, db)

    assert received == {
        "urgent": [
            "comment on tagged",
            "urgent removed",
            "tagged deleted",
            "comment deleted with it",
            "list created",
        ]
    }


async def test_an_assignee_filter_looks_before_and_after_the_change(
    db: psycopg.Connection[Any], dsn: str
) -> None:
    seed_world(db)
    add_filtered_webhook(db, "alice's", assignee_ids=["usr_alice"])
    # tdo_base is assigned to Alice (live rows); tdo_bare to nobody.
    add_event(db, "TODO_NAME_CHANGED", "assigned renamed", fields=["title"])
    add_event(
        db,
        "TODO_NAME_CHANGED",
        "unassigned renamed",
        todo_id="tdo_bare",
        fields=["title"],
    )
    add_event(
        db,
        "TODO_ASSIGNEE_REMOVED",
        "alice unassigned",
        todo_id="tdo_bare",
        fields=["todoUsers"],
        previous=users("usr_alice", "usr_carol"),
        current=users("usr_carol"),
    )
    add_event(
        db,
        "TODO_ASSIGNEE_ADDED",
        "carol assigned",
        todo_id="tdo_bare",
        fields=["todoUsers"],
        previous=users(),
        current=users("usr_carol"),
    )
    add_event(db, "TAG_CREATED", "tag created", todo_id=None, lists=None)

    received = await fan_out(dsn, db)

    assert received == {
        "alice's": ["assigned renamed", "alice unassigned", "tag created"]
    }


async def test_a_changed_fields_filter_narrows_updates_only(
    db: psycopg.Connection[Any], dsn: str
) -> None:
    seed_world(db)
    add_filtered_webhook(db, "html", changed_fields=["html"])
    add_filtered_webhook(db, "budget", changed_fields=["cfd_budget"])
    add_event(db, "COMMENT_UPDATED", "html edited", entity="comment", fields=["html"])
    add_event(db, "COMMENT_UPDATED", "text edited", entity="comment", fields=["text"])
    add_event(
        db, "COMMENT_UPDATED", "both edited", entity="comment", fields=["html", "text"]
    )
    add_event(db, "TODO_CUSTOM_FIELD_UPDATED", "budget set", fields=["cfd_budget"])
    add_event(db, "TODO_CUSTOM_FIELD_UPDATED", "owner set", fields=["cfd_owner"])
    add_event(db, "COMMENT_CREATED", "comment created", entity="comment")
    add_event(db, "TODO_DELETED", "todo deleted")

    received = await fan_out(dsn, db)

    assert received == {
        "budget": ["budget set", "comment created", "todo deleted"],
        "html": ["html edited", "both edited", "comment created", "todo deleted"],
    }


async def test_all_filters_and_together_with_events_and_projects(
    db: psycopg.Connection[Any], dsn: str
) -> None:
    seed_world(db)
    add_filtered_webhook(
        db,
        "narrow",
        events=["TODO_NAME_CHANGED"],
        project_ids=["prj_ops"],
        todo_list_ids=["lst_inbox"],
        tag_ids=["tag_urgent"],
        assignee_ids=["usr_alice"],
        changed_fields=["title"],
    )
    add_event(db, "TODO_NAME_CHANGED", "all match", fields=["title"])
    add_event(db, "TODO_DONE_STATUS_UPDATED", "other event", fields=["done"])
    add_event(db, "TODO_NAME_CHANGED", "other list", lists=["lst_later"])
    add_event(db, "TODO_NAME_CHANGED", "untagged", todo_id="tdo_bare")
    add_event(db, "TODO_NAME_CHANGED", "unassigned", previous=users(), current=users())
    add_event(db, "TODO_NAME_CHANGED", "other field", fields=["duedAt"])

    received = await fan_out(dsn, db)

    assert received == {"narrow": ["all match"]}


async def test_what_goes_with_a_deleted_project_reaches_the_members_it_had(
    db: psycopg.Connection[Any], dsn: str
) -> None:
    seed_world(db)
    add_filtered_webhook(db, "alice")
    add_filtered_webhook(db, "carol", created_by="usr_carol")
    # Alice was a member of prj_ops when it went; its project_users rows went too.
    db.execute("DELETE FROM project_users WHERE project_id = 'prj_ops'")
    gone = {"_context": {"project": {"id": "prj_ops", "_member_ids": ["usr_alice"]}}}
    add_event(db, "TODO_DELETED", "todo gone with it", previous=gone)
    add_event(db, "TODO_DELETED", "todo gone before", previous={"_context": {}})

    received = await fan_out(dsn, db)

    assert received == {"alice": ["todo gone with it"]}


async def test_a_health_check_goes_to_its_webhook_alone_and_only_if_enabled(
    db: psycopg.Connection[Any], dsn: str
) -> None:
    seed_world(db)
    target = add_filtered_webhook(db, "target", events=["COMMENT_CREATED"])
    off = add_filtered_webhook(db, "off")
    add_filtered_webhook(db, "all")
    db.execute("UPDATE relay.webhooks SET enabled = false WHERE id = %s", (off,))
    for webhook_id in (target, off):
        db.execute(
            "INSERT INTO relay.events (event, entity, entity_id, for_webhook_id)"
            " VALUES ('WEBHOOK_HEALTH_CHECK', 'webhook', %s, %s)",
            (webhook_id, webhook_id),
        )

    received = await fan_out(dsn, db)

    assert received == {"target": [target]}


def webhook_json(db: psycopg.Connection[Any], webhook_id: str) -> Any:
    row = db.execute(
        "SELECT relay.webhook_json_v2(w) FROM relay.webhooks w WHERE w.id = %s",
        (webhook_id,),
    ).fetchone()
    assert row is not None
    return row[0]


def events_on(receiver: Receiver, name: str) -> list[str]:
    return sorted(request.event for request in receiver.on(f"/{name}"))


def health_checks(db: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    """(entity_id, for_webhook_id, company, project, values) of each health check."""
    return db.execute(
        "SELECT entity_id, for_webhook_id, company_id, project_id, previous_value,"
        " current_value FROM relay.events WHERE event = 'WEBHOOK_HEALTH_CHECK'"
    ).fetchall()


async def test_re_enabling_sends_one_health_check_to_that_webhook_alone(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    target = add_filtered_webhook(
        db, "target", receiver, events=["COMMENT_CREATED"], tag_ids=["tag_urgent"]
    )
    add_filtered_webhook(db, "everything", receiver)
    webhooks.set_enabled(db, target, enabled=False)

    async with running_relay(dsn):
        enabled = await asyncio.to_thread(
            relay_command, "webhooks", "enable", target, dsn=dsn
        )
        [check] = await receiver.wait_for(1, path="/target")
        again = await asyncio.to_thread(
            relay_command, "webhooks", "enable", target, dsn=dsn
        )
        # A later event both webhooks receive: had the second enable queued a
        # health check, it would have been fanned out before this event.
        change(db, NEW_COMMENT)
        await receiver.wait_for(2, path="/target")
        await receiver.wait_for(1, path="/everything")

    assert (enabled.returncode, again.returncode) == (0, 0)
    assert json.loads(enabled.stdout)["enabled"] is True
    assert check.event == "WEBHOOK_HEALTH_CHECK"
    assert check.signature_verified is True
    assert check.payload == {
        "event": "WEBHOOK_HEALTH_CHECK",
        "webhook": webhook_json(db, target),
        "previousValue": None,
        "currentValue": None,
    }
    assert check.payload["webhook"]["enabled"] is True
    # The second enable changed nothing, not even updatedAt.
    assert json.loads(again.stdout) == check.payload["webhook"]
    assert events_on(receiver, "target") == ["COMMENT_CREATED", "WEBHOOK_HEALTH_CHECK"]
    assert events_on(receiver, "everything") == ["COMMENT_CREATED"]
    assert health_checks(db) == [(target, target, None, None, None, None)]


async def test_filters_narrow_what_real_changes_deliver(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    change(
        db,
        "INSERT INTO custom_fields (id, project_id, name)"
        " VALUES ('cfd_owner', 'prj_ops', 'Owner');"
        " INSERT INTO todo_custom_fields (todo_id, custom_field_id, value)"
        " VALUES ('tdo_base', 'cfd_owner', '\"Ann\"')",
    )
    add_filtered_webhook(db, "inbox", receiver, todo_list_ids=["lst_inbox"])
    add_filtered_webhook(db, "urgent", receiver, tag_ids=["tag_urgent"])
    add_filtered_webhook(db, "alice", receiver, assignee_ids=["usr_alice"])
    add_filtered_webhook(
        db, "html", receiver, events=["COMMENT_UPDATED"], changed_fields=["html"]
    )
    add_filtered_webhook(
        db,
        "budget",
        receiver,
        events=["TODO_CUSTOM_FIELD_UPDATED"],
        changed_fields=["cfd_budget"],
    )
    todo = "UPDATE todos SET {} WHERE id = 'tdo_base'"
    value = "UPDATE todo_custom_fields SET value = '{}' WHERE custom_field_id = '{}'"
    changes = [
        todo.format("todo_list_id = 'lst_later'"),  # out of the watched list
        todo.format("title = 'Call the supplier today'"),
        "DELETE FROM todo_tags WHERE todo_id = 'tdo_base'",
        todo.format("title = 'Call the supplier tomorrow'"),
        "DELETE FROM todo_users WHERE todo_id = 'tdo_base'",
        "UPDATE comments SET text = 'Edited' WHERE id = 'cmt_base'",
        "UPDATE comments SET html = '<p>Edited</p>' WHERE id = 'cmt_base'",
        value.format('"Bea"', "cfd_owner"),
        value.format('{"amount": "99.00"}', "cfd_budget"),
        "UPDATE tags SET color = 'orange' WHERE id = 'tag_urgent'",
        NEW_TODO,
    ]

    async with running_relay(dsn):
        for sql in changes:
            change(db, sql)
            # Live tags and assignees are read at fan-out: each change is fanned
            # out before the next, as a relay keeping up does.
            await eventually(lambda: all_fanned_out(db))
        await eventually(lambda: all_delivered(db, expected=15))

    assert delivered(db) == {
        "inbox": ["TODO_MOVED", "TAG_UPDATED", "TODO_CREATED"],
        "urgent": [
            "TODO_MOVED",
            "TODO_NAME_CHANGED",
            "TODO_TAG_REMOVED",
            "TAG_UPDATED",
        ],
        "alice": [
            "TODO_MOVED",
            "TODO_NAME_CHANGED",
            "TODO_TAG_REMOVED",
            "TODO_NAME_CHANGED",
            "TODO_ASSIGNEE_REMOVED",
            "TAG_UPDATED",
        ],
        "html": ["COMMENT_UPDATED"],
        "budget": ["TODO_CUSTOM_FIELD_UPDATED"],
    }
    assert len(receiver.requests) == 15
    assert delivered_fields(db, "html") == [["html"]]
    assert delivered_fields(db, "budget") == [["cfd_budget"]]


def all_fanned_out(db: psycopg.Connection[Any]) -> bool:
    pending = db.execute(
        "SELECT count(*) FROM relay.events WHERE fanned_out_at IS NULL"
    ).fetchone()
    return pending == (0,)


def delivered(db: psycopg.Connection[Any]) -> dict[str, list[str]]:
    """Each webhook's name and the events it was sent, in event order."""
    sent: dict[str, list[str]] = {}
    for name, event in db.execute(
        "SELECT w.name, e.event FROM relay.deliveries d"
        " JOIN relay.webhooks w ON w.id = d.webhook_id"
        " JOIN relay.events e ON e.id = d.event_id ORDER BY e.id"
    ):
        sent.setdefault(name, []).append(event)
    return sent


def delivered_fields(db: psycopg.Connection[Any], name: str) -> list[list[str]]:
    rows = db.execute(
        "SELECT e.changed_fields FROM relay.deliveries d"
        " JOIN relay.webhooks w ON w.id = d.webhook_id"
        " JOIN relay.events e ON e.id = d.event_id WHERE w.name = %s ORDER BY e.id",
        (name,),
    ).fetchall()
    return [row[0] for row in rows]


async def test_deleting_a_record_reaches_tag_and_assignee_filters_with_its_parts(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver
) -> None:
    seed_world(db)
    add_filtered_webhook(db, "urgent", receiver, tag_ids=["tag_urgent"])
    add_filtered_webhook(db, "alice", receiver, assignee_ids=["usr_alice"])
    add_filtered_webhook(db, "carol", receiver, assignee_ids=["usr_carol"])

    async with running_relay(dsn):
        # Its tag and assignee rows go in the same cascade as its comment.
        change(db, "DELETE FROM todos WHERE id = 'tdo_base'")
        await eventually(lambda: all_delivered(db, expected=6))

    deleted = ["TODO_DELETED", "COMMENT_DELETED", "TODO_CHECKLIST_DELETED"]
    assert delivered(db) == {"urgent": deleted, "alice": deleted}
