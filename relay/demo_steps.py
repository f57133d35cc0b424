"""The changes the demo makes: one statement per subscribable event, as a story.

A list and a todo are made and filled in (assignee, tag, custom field value, due
date, checklist, comment), the todo is moved and done, and then everything is taken
apart, children before parents. Each statement gives exactly one event: a child
that still existed would add a cascaded event of its own to its parent's delete
(a todo's comments and checklists, a list's todos, a tag's and a custom field's
todo values), so each is removed first by a step of its own. A todo's assignees,
tags and values that go along with the todo give no event of their own.
"""

from __future__ import annotations

from typing import NamedTuple


class Step(NamedTuple):
    """One change, in its own transaction."""

    event: str
    statement: str
    # Which of the demo's ids fill the statement's parameters, in order.
    keys: tuple[str, ...]


STEPS: tuple[Step, ...] = (
    Step(
        "TODO_LIST_CREATED",
        "INSERT INTO todo_lists (id, project_id, title) VALUES ($1, $2, 'Backlog')",
        ("next_list", "project"),
    ),
    Step(
        "TODO_LIST_NAME_CHANGED",
        "UPDATE todo_lists SET title = 'Next up' WHERE id = $1",
        ("next_list",),
    ),
    Step(
        "TODO_CREATED",
        "INSERT INTO todos (id, todo_list_id, title, position)"
        " VALUES ($1, $2, 'Call the supplier', 65535.5)",
        ("todo", "inbox"),
    ),
    Step(
        "TODO_NAME_CHANGED",
        "UPDATE todos SET title = 'Call the supplier about 🚚' WHERE id = $1",
        ("todo",),
    ),
    Step(
        "TODO_ASSIGNEE_ADDED",
        "INSERT INTO todo_users (todo_id, user_id) VALUES ($1, $2)",
        ("todo", "colleague"),
    ),
    Step(
        "TAG_CREATED",
        "INSERT INTO tags (id, project_id, title) VALUES ($1, $2, 'Urgent')",
        ("tag", "project"),
    ),
    Step(
        "TAG_UPDATED",
        "UPDATE tags SET color = '#e5484d' WHERE id = $1",
        ("tag",),
    ),
    Step(
        "TODO_TAG_ADDED",
        "INSERT INTO todo_tags (todo_id, tag_id) VALUES ($1, $2)",
        ("todo", "tag"),
    ),
    Step(
        "CUSTOM_FIELD_CREATED",
        "INSERT INTO custom_fields (id, project_id, name) VALUES ($1, $2, 'Order')",
        ("custom_field", "project"),
    ),
    Step(
        "CUSTOM_FIELD_UPDATED",
        "UPDATE custom_fields SET name = 'Order number' WHERE id = $1",
        ("custom_field",),
    ),
    Step(
        "TODO_CUSTOM_FIELD_UPDATED",
        "INSERT INTO todo_custom_fields (todo_id, custom_field_id, value)"
        " VALUES ($1, $2, '\"PO-4711\"')",
        ("todo", "custom_field"),
    ),
    Step(
        "TODO_DUE_DATE_ADDED",
        "UPDATE todos SET dued_at = '2026-12-08 09:00+00' WHERE id = $1",
        ("todo",),
    ),
    Step(
        "TODO_DUE_DATE_UPDATED",
        "UPDATE todos SET dued_at = '2026-12-09 09:00+00' WHERE id = $1",
        ("todo",),
    ),
    Step(
        "TODO_CHECKLIST_CREATED",
        "INSERT INTO todo_checklists (id, todo_id, title)"
        " VALUES ($1, $2, 'Before the call')",
        ("checklist", "todo"),
    ),
    Step(
        "TODO_CHECKLIST_NAME_CHANGED",
        "UPDATE todo_checklists SET title = 'Before calling' WHERE id = $1",
        ("checklist",),
    ),
    Step(
        "TODO_CHECKLIST_ITEM_CREATED",
        "INSERT INTO todo_checklist_items (id, todo_checklist_id, title)"
        " VALUES ($1, $2, 'Find the order')",
        ("checklist_item", "checklist"),
    ),
    Step(
        "TODO_CHECKLIST_ITEM_NAME_CHANGED",
        "UPDATE todo_checklist_items SET title = 'Find the order number' WHERE id = $1",
        ("checklist_item",),
    ),
    Step(
        "TODO_CHECKLIST_ITEM_ASSIGNEE_ADDED",
        "INSERT INTO todo_checklist_item_users (todo_checklist_item_id, user_id)"
        " VALUES ($1, $2)",
        ("checklist_item", "user"),
    ),
    Step(
        "TODO_CHECKLIST_ITEM_DUE_DATE_ADDED",
        "UPDATE todo_checklist_items SET dued_at = '2026-12-07 17:00+00' WHERE id = $1",
        ("checklist_item",),
    ),
    Step(
        "TODO_CHECKLIST_ITEM_DUE_DATE_UPDATED",
        "UPDATE todo_checklist_items SET dued_at = '2026-12-08 08:00+00' WHERE id = $1",
        ("checklist_item",),
    ),
    Step(
        "TODO_CHECKLIST_ITEM_DONE_STATUS_UPDATED",
        "UPDATE todo_checklist_items SET done = true WHERE id = $1",
        ("checklist_item",),
    ),
    Step(
        "COMMENT_CREATED",
        "INSERT INTO comments (id, todo_id, text, html)"
        " VALUES ($1, $2, 'Ask for Tuesday', '<p>Ask for Tuesday</p>')",
        ("comment", "todo"),
    ),
    Step(
        "COMMENT_UPDATED",
        "UPDATE comments SET text = 'Ask for Wednesday' WHERE id = $1",
        ("comment",),
    ),
    Step(
        "TODO_MOVED",
        "UPDATE todos SET todo_list_id = $2 WHERE id = $1",
        ("todo", "next_list"),
    ),
    Step(
        "TODO_DONE_STATUS_UPDATED",
        "UPDATE todos SET done = true WHERE id = $1",
        ("todo",),
    ),
    # Taking it apart, children before parents.
    Step(
        "TODO_CHECKLIST_ITEM_DUE_DATE_REMOVED",
        "UPDATE todo_checklist_items SET dued_at = NULL WHERE id = $1",
        ("checklist_item",),
    ),
    Step(
        "TODO_CHECKLIST_ITEM_ASSIGNEE_REMOVED",
        "DELETE FROM todo_checklist_item_users WHERE todo_checklist_item_id = $1",
        ("checklist_item",),
    ),
    Step(
        "TODO_CHECKLIST_ITEM_DELETED",
        "DELETE FROM todo_checklist_items WHERE id = $1",
        ("checklist_item",),
    ),
    Step(
        "TODO_CHECKLIST_DELETED",
        "DELETE FROM todo_checklists WHERE id = $1",
        ("checklist",),
    ),
    Step("COMMENT_DELETED", "DELETE FROM comments WHERE id = $1", ("comment",)),
    Step(
        "TODO_DUE_DATE_REMOVED",
        "UPDATE todos SET dued_at = NULL WHERE id = $1",
        ("todo",),
    ),
    Step(
        "TODO_ASSIGNEE_REMOVED",
        "DELETE FROM todo_users WHERE todo_id = $1",
        ("todo",),
    ),
    Step(
        "TODO_TAG_REMOVED",
        "DELETE FROM todo_tags WHERE todo_id = $1",
        ("todo",),
    ),
    # The todo's custom field value goes with it, without an event of its own.
    Step("TODO_DELETED", "DELETE FROM todos WHERE id = $1", ("todo",)),
    Step("TAG_DELETED", "DELETE FROM tags WHERE id = $1", ("tag",)),
    Step(
        "CUSTOM_FIELD_DELETED",
        "DELETE FROM custom_fields WHERE id = $1",
        ("custom_field",),
    ),
    Step("TODO_LIST_DELETED", "DELETE FROM todo_lists WHERE id = $1", ("next_list",)),
)
