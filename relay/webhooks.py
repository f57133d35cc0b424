"""Registering and managing webhooks: validation first, then one transaction."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import psycopg

from relay import queries
from relay.errors import ConfigError
from relay.events import HEALTH_CHECK_EVENT, SUBSCRIBABLE_EVENTS
from relay.signing import generate_secret

logger = logging.getLogger(__name__)

Connection = psycopg.Connection[Any]


@dataclass(frozen=True)
class NewWebhook:
    name: str
    url: str
    created_by_id: str
    events: Sequence[str] = ()
    project_ids: Sequence[str] = ()
    secret: str | None = None


def check_url(url: str) -> str:
    """The URL itself, or a ConfigError saying why it cannot receive webhooks."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ConfigError(
            f"malformed URL {url!r}: it must start with http:// or https://"
        )
    try:
        host, _ = parts.hostname, parts.port
    except ValueError as error:
        raise ConfigError(f"malformed URL {url!r}: {error}") from error
    if not host or any(character.isspace() for character in url):
        raise ConfigError(f"malformed URL {url!r}: it needs a host and no spaces")
    return url


def check_events(events: Sequence[str]) -> list[str]:
    """The event names, de-duplicated in order, or a ConfigError for a bad one."""
    for event in events:
        if event == HEALTH_CHECK_EVENT:
            raise ConfigError(
                f"{event} is sent on re-enabling and cannot be subscribed"
            )
        if event not in SUBSCRIBABLE_EVENTS:
            raise ConfigError(
                f"unknown event name {event!r}; the README lists the 37 events"
            )
    return list(dict.fromkeys(events))


def create(connection: Connection, webhook: NewWebhook) -> tuple[dict[str, Any], str]:
    """Register a webhook; return it and its secret, which is shown only now."""
    if not webhook.name.strip():
        raise ConfigError("a webhook needs a non-empty name")
    url = check_url(webhook.url)
    events = check_events(webhook.events)
    project_ids = list(dict.fromkeys(webhook.project_ids))
    if webhook.secret is not None and not webhook.secret.strip():
        raise ConfigError(
            "a secret must not be empty; leave --secret out to generate one"
        )
    secret = webhook.secret or generate_secret()
    named = queries.load("webhooks")

    with connection.transaction():
        creator = connection.execute(
            named["find_user"], {"user_id": webhook.created_by_id}
        ).fetchone()
        if creator is None:
            raise ConfigError(f"unknown user {webhook.created_by_id!r}")
        check_projects(connection, project_ids, company_id=creator[1])
        row = connection.execute(
            named["insert_webhook"],
            {
                "name": webhook.name,
                "url": url,
                "secret": secret,
                "events": events,
                "project_ids": project_ids,
                "created_by_id": webhook.created_by_id,
            },
        ).fetchone()

    assert row is not None
    created: dict[str, Any] = json.loads(row[0])
    logger.info(
        "Webhook created.", extra={"action": "create", "webhook_id": created["id"]}
    )
    return created, secret


def check_projects(
    connection: Connection, project_ids: list[str], company_id: str
) -> None:
    """Every project must exist and belong to the creator's company."""
    rows = connection.execute(
        queries.load("webhooks")["find_projects"], {"project_ids": project_ids}
    ).fetchall()
    companies = dict(rows)
    for project_id in project_ids:
        if project_id not in companies:
            raise ConfigError(f"unknown project {project_id!r}")
        if companies[project_id] != company_id:
            raise ConfigError(f"project {project_id!r} is not in the creator's company")


def list_all(connection: Connection) -> list[dict[str, Any]]:
    rows = connection.execute(queries.load("webhooks")["list_webhooks"]).fetchall()
    return [json.loads(row[0]) for row in rows]


def show(connection: Connection, webhook_id: str) -> dict[str, Any]:
    """One webhook with its pending and delivered counts."""
    row = connection.execute(
        queries.load("webhooks")["show_webhook"], {"webhook_id": webhook_id}
    ).fetchone()
    if row is None:
        raise ConfigError(f"unknown webhook {webhook_id!r}")
    shown: dict[str, Any] = json.loads(row[0])
    shown["deliveries"] = {"pending": row[1], "delivered": row[2]}
    return shown


def delete(connection: Connection, webhook_id: str) -> None:
    row = connection.execute(
        queries.load("webhooks")["delete_webhook"], {"webhook_id": webhook_id}
    ).fetchone()
    if row is None:
        raise ConfigError(f"unknown webhook {webhook_id!r}")
    logger.info(
        "Webhook deleted.", extra={"action": "delete", "webhook_id": webhook_id}
    )


def set_enabled(
    connection: Connection, webhook_id: str, enabled: bool
) -> dict[str, Any]:
    # TODO(issue 3): send WEBHOOK_HEALTH_CHECK when a disabled webhook is re-enabled.
    row = connection.execute(
        queries.load("webhooks")["set_enabled"],
        {"webhook_id": webhook_id, "enabled": enabled},
    ).fetchone()
    if row is None:
        raise ConfigError(f"unknown webhook {webhook_id!r}")
    changed: dict[str, Any] = json.loads(row[0])
    return changed
