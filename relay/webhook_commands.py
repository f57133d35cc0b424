"""The ``relay webhooks`` commands: register, change, inspect and switch webhooks.

Each command validates, opens one connection, runs one function of
relay/webhooks.py and prints JSON or a table to stdout.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from relay import db, webhooks
from relay.cli_options import F, dsn_option
from relay.filters import CLEARABLE


@click.group(name="webhooks")
def webhooks_group() -> None:
    """Register and manage webhooks.

    \b
    Example:
      relay webhooks list
      relay webhooks enable wh_0123456789abcdef0123
    """


FILTER_OPTIONS = (
    ("--event", "events", "An event to receive"),
    ("--project", "project_ids", "A project of the creator's to cover"),
    ("--list", "todo_list_ids", "A list whose records and events to receive"),
    ("--tag", "tag_ids", "A tag the record must carry"),
    ("--assignee", "assignee_ids", "A user the record must be assigned to"),
    ("--field", "changed_fields", "A field (title, a cfd_ id...) whose change counts"),
)


def filter_options(meaning_of_none: str) -> Callable[[F], F]:
    """--event, --project, --list, --tag, --assignee and --field, all repeatable."""

    def decorate(function: F) -> F:
        for flag, name, text in reversed(FILTER_OPTIONS):
            decorator = click.option(
                flag, name, multiple=True, help=f"{text}; repeat it. {meaning_of_none}"
            )
            function = decorator(function)
        return function

    return decorate


@webhooks_group.command(name="create")
@dsn_option
@click.option("--name", required=True, help="A label for people.")
@click.option("--url", required=True, help="Where payloads are POSTed.")
@click.option(
    "--created-by",
    "created_by_id",
    required=True,
    help="The creator's user id; scope follows their memberships.",
)
@filter_options("None means no narrowing.")
@click.option("--secret", help="Signing secret; generated when absent.")
def create_webhook(dsn: str | None, **fields: Any) -> None:
    """Register a webhook and print it with its secret, shown only this once.

    \b
    Example:
      relay webhooks create --name "CRM sync" --url https://crm.example.org/hook \\
        --created-by usr_2 --event TODO_CREATED --event TODO_DELETED --project prj_1
    """
    with db.connect(db.check_dsn(dsn)) as connection:
        created, secret = webhooks.create(connection, webhooks.NewWebhook(**fields))
    shown = {**webhooks.for_display(created), "secret": secret}
    click.echo(json.dumps(shown, indent=2, ensure_ascii=False))
    click.echo("Store the secret now: it is not shown again.", err=True)


@webhooks_group.command(name="update")
@dsn_option
@click.argument("webhook_id")
@click.option("--name", help="A new label.")
@click.option("--url", help="A new URL.")
@filter_options("Replaces the whole filter.")
@click.option(
    "--clear",
    multiple=True,
    type=click.Choice(list(CLEARABLE)),
    help="Empty one filter, so that it no longer narrows (repeat it).",
)
def update_webhook(dsn: str | None, webhook_id: str, **changes: Any) -> None:
    """Change a webhook's name, URL or filters and print it (never its secret).

    A filter option replaces that whole filter; --clear empties one. The result
    is checked as create would check it.

    \b
    Example:
      relay webhooks update wh_0123456789abcdef0123 \\
        --list lst_1 --tag tag_urgent --clear assignees
    """
    with db.connect(db.check_dsn(dsn)) as connection:
        updated = webhooks.update(
            connection, webhook_id, webhooks.WebhookChanges(**changes)
        )
    click.echo(json.dumps(webhooks.for_display(updated), indent=2, ensure_ascii=False))


@webhooks_group.command(name="list")
@dsn_option
def list_webhooks(dsn: str | None) -> None:
    """List every webhook, with the filters that narrow it.

    \b
    Example:
      relay webhooks list
    """
    with db.connect(db.check_dsn(dsn)) as connection:
        found = [webhooks.for_display(item) for item in webhooks.list_all(connection)]
    width = max([len("URL"), *(len(item["url"]) for item in found)])
    click.echo(
        f"{'ID':<26} {'STATUS':<9} {'ENABLED':<7} {'NAME':<20} {'URL':<{width}} FILTERS"
    )
    for item in found:
        enabled = "yes" if item["enabled"] else "no"
        click.echo(
            f"{item['id']:<26} {item['status']:<9} {enabled:<7} "
            f"{item['name'][:20]:<20} {item['url']:<{width}} "
            f"{describe_filters(item['metadata'])}"
        )


# The filters in metadata as the webhook's JSON shows them, by --clear word.
LISTED_FILTERS = {
    "events": "events",
    "projects": "projectIds",
    "lists": "todoListIds",
    "tags": "tagIds",
    "assignees": "assigneeIds",
    "fields": "changedFields",
}


def describe_filters(metadata: dict[str, list[str]]) -> str:
    """How many values each non-empty filter holds, e.g. ``events=2 lists=1``."""
    counts = [
        f"{word}={len(metadata[key])}"
        for word, key in LISTED_FILTERS.items()
        if metadata.get(key)
    ]
    return " ".join(counts) or "-"


@webhooks_group.command(name="show")
@dsn_option
@click.argument("webhook_id")
def show_webhook(dsn: str | None, webhook_id: str) -> None:
    """Show one webhook (never its secret) with its delivery counts.

    \b
    Example:
      relay webhooks show wh_0123456789abcdef0123
    """
    with db.connect(db.check_dsn(dsn)) as connection:
        click.echo(
            json.dumps(
                webhooks.for_display(webhooks.show(connection, webhook_id)),
                indent=2,
                ensure_ascii=False,
            )
        )


@webhooks_group.command(name="delete")
@dsn_option
@click.argument("webhook_id")
def delete_webhook(dsn: str | None, webhook_id: str) -> None:
    """Delete a webhook with its deliveries and attempts.

    \b
    Example:
      relay webhooks delete wh_0123456789abcdef0123
    """
    with db.connect(db.check_dsn(dsn)) as connection:
        webhooks.delete(connection, webhook_id)
    click.echo(f"Deleted {webhook_id}.", err=True)


@webhooks_group.command(name="enable")
@dsn_option
@click.argument("webhook_id")
def enable_webhook(dsn: str | None, webhook_id: str) -> None:
    """Enable a webhook; if it was disabled, send it WEBHOOK_HEALTH_CHECK.

    \b
    Example:
      relay webhooks enable wh_0123456789abcdef0123
    """
    switch_webhook(dsn, webhook_id, enabled=True)


@webhooks_group.command(name="disable")
@dsn_option
@click.argument("webhook_id")
def disable_webhook(dsn: str | None, webhook_id: str) -> None:
    """Disable a webhook: it receives nothing until enabled again.

    \b
    Example:
      relay webhooks disable wh_0123456789abcdef0123
    """
    switch_webhook(dsn, webhook_id, enabled=False)


def switch_webhook(dsn: str | None, webhook_id: str, *, enabled: bool) -> None:
    with db.connect(db.check_dsn(dsn)) as connection:
        changed = webhooks.set_enabled(connection, webhook_id, enabled)
    click.echo(json.dumps(webhooks.for_display(changed), ensure_ascii=False))
