"""What a webhook may narrow its events to, checked against its creator's world.

A webhook receives an event when every one of its filters lets it through; an
empty filter lets everything through. ``fan_out_events`` in
``sql/queries/claims.sql`` applies them; this module refuses, before anything is
written, names that do not exist or that the creator could never see.

Membership can change later, and scope is checked again for every event; a
project or list the creator cannot see now is a mistake worth stopping, though.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import psycopg

from relay import queries
from relay.errors import ConfigError
from relay.events import HEALTH_CHECK_EVENT, SUBSCRIBABLE_EVENTS

Connection = psycopg.Connection[Any]

# The payload fields whose change an update event reports in changed_fields.
# Besides these, a custom field id (cfd_...) names a change of that field's value.
CHANGE_FIELDS = (
    "title",
    "todoListId",
    "done",
    "duedAt",
    "html",
    "text",
    "color",
    "name",
    "type",
    "todoUsers",
    "todoTags",
    "todoChecklistItemUsers",
)
CUSTOM_FIELD_PREFIX = "cfd_"


@dataclass(frozen=True)
class Filters:
    """Everything that narrows what a webhook receives; empty means no narrowing."""

    events: Sequence[str] = ()
    project_ids: Sequence[str] = ()
    todo_list_ids: Sequence[str] = ()
    tag_ids: Sequence[str] = ()
    assignee_ids: Sequence[str] = ()
    changed_fields: Sequence[str] = ()

    def deduplicated(self) -> Filters:
        """The same filters with repeats dropped, first occurrence kept."""
        return replace(
            self,
            **{
                field.name: list(dict.fromkeys(getattr(self, field.name)))
                for field in fields(self)
            },
        )

    def as_parameters(self) -> dict[str, list[str]]:
        return {field.name: list(getattr(self, field.name)) for field in fields(self)}


# The words of ``relay webhooks update --clear`` and the filter each one empties.
CLEARABLE = {
    "events": "events",
    "projects": "project_ids",
    "lists": "todo_list_ids",
    "tags": "tag_ids",
    "assignees": "assignee_ids",
    "fields": "changed_fields",
}


def check_events(events: Iterable[str]) -> None:
    for event in events:
        if event == HEALTH_CHECK_EVENT:
            raise ConfigError(f"{event} cannot be subscribed to")
        if event not in SUBSCRIBABLE_EVENTS:
            raise ConfigError(
                f"unknown event name {event!r}; the README lists the 37 events"
            )


def check(connection: Connection, filters: Filters, creator_id: str) -> Filters:
    """The filters de-duplicated, or a ConfigError naming the first bad value."""
    checked = filters.deduplicated()
    check_events(checked.events)
    check_projects(connection, checked.project_ids, creator_id)
    check_lists(connection, checked.todo_list_ids, checked.project_ids, creator_id)
    check_tags(connection, checked.tag_ids, checked.project_ids, creator_id)
    check_assignees(connection, checked.assignee_ids, creator_id)
    check_changed_fields(connection, checked.changed_fields, creator_id)
    return checked


def find(
    connection: Connection, query: str, ids: Sequence[str], creator_id: str
) -> dict[str, tuple[Any, ...]]:
    """Rows of a ``find_*`` query keyed by their first column; nothing if no ids."""
    if not ids:
        return {}
    rows = connection.execute(
        queries.load("webhooks")[query], {"ids": list(ids), "user_id": creator_id}
    ).fetchall()
    return {row[0]: row[1:] for row in rows}


def check_projects(
    connection: Connection, project_ids: Sequence[str], creator_id: str
) -> None:
    """Every project must exist, in the creator's company, with the creator in it."""
    found = find(connection, "find_projects", project_ids, creator_id)
    for project_id in project_ids:
        if project_id not in found:
            raise ConfigError(f"unknown project {project_id!r}")
        same_company, member = found[project_id]
        if not same_company:
            raise ConfigError(f"project {project_id!r} is not in the creator's company")
        if not member:
            raise ConfigError(
                f"user {creator_id!r} is not a member of project {project_id!r}"
            )


def check_lists(
    connection: Connection,
    list_ids: Sequence[str],
    project_ids: Sequence[str],
    creator_id: str,
) -> None:
    """Each list in a project of the creator's, and in the webhook's projects."""
    found = find(connection, "find_lists", list_ids, creator_id)
    for list_id in list_ids:
        if list_id not in found:
            raise ConfigError(f"unknown list {list_id!r}")
        project_id, same_company, member = found[list_id]
        if not same_company:
            raise ConfigError(f"list {list_id!r} is not in the creator's company")
        if not member:
            raise ConfigError(
                f"user {creator_id!r} is not a member of project {project_id!r}"
                f" of list {list_id!r}"
            )
        check_inside(f"list {list_id!r}", project_id, project_ids)


def check_tags(
    connection: Connection,
    tag_ids: Sequence[str],
    project_ids: Sequence[str],
    creator_id: str,
) -> None:
    """Each tag in a project of the creator's company, and in the webhook's projects."""
    found = find(connection, "find_tags", tag_ids, creator_id)
    for tag_id in tag_ids:
        if tag_id not in found:
            raise ConfigError(f"unknown tag {tag_id!r}")
        project_id, same_company = found[tag_id]
        if not same_company:
            raise ConfigError(f"tag {tag_id!r} is not in the creator's company")
        check_inside(f"tag {tag_id!r}", project_id, project_ids)


def check_inside(what: str, project_id: str, project_ids: Sequence[str]) -> None:
    if project_ids and project_id not in project_ids:
        raise ConfigError(
            f"{what} is in project {project_id!r}, which the webhook does not cover"
        )


def check_assignees(
    connection: Connection, assignee_ids: Sequence[str], creator_id: str
) -> None:
    """Each assignee a user of the creator's company."""
    found = find(connection, "find_assignees", assignee_ids, creator_id)
    for user_id in assignee_ids:
        if user_id not in found:
            raise ConfigError(f"unknown assignee {user_id!r}")
        (same_company,) = found[user_id]
        if not same_company:
            raise ConfigError(f"assignee {user_id!r} is not in the creator's company")


def check_changed_fields(
    connection: Connection, changed_fields: Sequence[str], creator_id: str
) -> None:
    """Each a payload field name, or the id of a custom field of the company."""
    # Any other name may be a custom field id, whatever the application named it.
    others = [name for name in changed_fields if name not in CHANGE_FIELDS]
    found = find(connection, "find_custom_fields", others, creator_id)
    for name in others:
        if name in found:
            (same_company,) = found[name]
        elif name.startswith(CUSTOM_FIELD_PREFIX):
            raise ConfigError(f"unknown custom field {name!r}")
        else:
            raise ConfigError(
                f"unknown field {name!r}; use a custom field id or one of "
                + ", ".join(CHANGE_FIELDS)
            )
        if not same_company:
            raise ConfigError(f"custom field {name!r} is not in the creator's company")
