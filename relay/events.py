"""The event catalogue of the contract: what a webhook may subscribe to."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from relay.errors import ConfigError

RECORD_EVENTS = (
    "TODO_CREATED",
    "TODO_DELETED",
    "TODO_MOVED",
    "TODO_NAME_CHANGED",
    "TODO_DONE_STATUS_UPDATED",
    "TODO_DUE_DATE_ADDED",
    "TODO_DUE_DATE_UPDATED",
    "TODO_DUE_DATE_REMOVED",
    "TODO_ASSIGNEE_ADDED",
    "TODO_ASSIGNEE_REMOVED",
    "TODO_TAG_ADDED",
    "TODO_TAG_REMOVED",
    "TODO_CUSTOM_FIELD_UPDATED",
)

CHECKLIST_EVENTS = (
    "TODO_CHECKLIST_CREATED",
    "TODO_CHECKLIST_NAME_CHANGED",
    "TODO_CHECKLIST_DELETED",
    "TODO_CHECKLIST_ITEM_CREATED",
    "TODO_CHECKLIST_ITEM_NAME_CHANGED",
    "TODO_CHECKLIST_ITEM_DELETED",
    "TODO_CHECKLIST_ITEM_DUE_DATE_ADDED",
    "TODO_CHECKLIST_ITEM_DUE_DATE_UPDATED",
    "TODO_CHECKLIST_ITEM_DUE_DATE_REMOVED",
    "TODO_CHECKLIST_ITEM_ASSIGNEE_ADDED",
    "TODO_CHECKLIST_ITEM_ASSIGNEE_REMOVED",
    "TODO_CHECKLIST_ITEM_DONE_STATUS_UPDATED",
)

LIST_EVENTS = ("TODO_LIST_CREATED", "TODO_LIST_DELETED", "TODO_LIST_NAME_CHANGED")
CUSTOM_FIELD_EVENTS = (
    "CUSTOM_FIELD_CREATED",
    "CUSTOM_FIELD_DELETED",
    "CUSTOM_FIELD_UPDATED",
)
TAG_EVENTS = ("TAG_CREATED", "TAG_DELETED", "TAG_UPDATED")
COMMENT_EVENTS = ("COMMENT_CREATED", "COMMENT_DELETED", "COMMENT_UPDATED")

SUBSCRIBABLE_EVENTS = frozenset(
    RECORD_EVENTS
    + CHECKLIST_EVENTS
    + LIST_EVENTS
    + CUSTOM_FIELD_EVENTS
    + TAG_EVENTS
    + COMMENT_EVENTS
)

# Sent when a webhook is re-enabled; nobody can subscribe to it.
HEALTH_CHECK_EVENT = "WEBHOOK_HEALTH_CHECK"

# Every event a delivery can carry: what the operator commands may filter on.
SENT_EVENTS = SUBSCRIBABLE_EVENTS | {HEALTH_CHECK_EVENT}


def check_sent_events(names: Iterable[str]) -> None:
    """A ConfigError naming the first name no delivery can carry, with a hint."""
    for name in names:
        if name not in SENT_EVENTS:
            close = difflib.get_close_matches(name.upper(), SENT_EVENTS, n=1)
            hint = f"did you mean {close[0]}?" if close else "e.g. TODO_CREATED"
            raise ConfigError(f"unknown event {name!r}: {hint}")


# Every subscribable event is captured by the triggers of sql/migrations.
CAPTURED_EVENTS = tuple(sorted(SUBSCRIBABLE_EVENTS))
