"""Registering and managing webhooks: validation first, then one transaction."""

from __future__ import annotations

import base64
import binascii
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
from relay.signing import SECRET_PREFIX, generate_secret

logger = logging.getLogger(__name__)

Connection = psycopg.Connection[Any]

MAX_NAME_LENGTH = 200
MIN_SECRET_LENGTH = 16
MAX_SECRET_LENGTH = 128


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
        host, port = parts.hostname, parts.port
    except ValueError as error:
        raise ConfigError(f"malformed URL {url!r}: {error}") from error
    if not host or any(character.isspace() for character in url):
        raise ConfigError(f"malformed URL {url!r}: it needs a host and no spaces")
    if port == 0:
        raise ConfigError(f"malformed URL {url!r}: port 0 cannot receive requests")
    return url


def check_name(name: str) -> str:
    if not name.strip():
        raise ConfigError("a webhook needs a non-empty name")
    if len(name) > MAX_NAME_LENGTH or not name.isprintable():
        raise ConfigError(
            f"a webhook name is at most {MAX_NAME_LENGTH} printable characters"
        )
    return name


def check_secret(secret: str | None) -> str:
    """The secret given, or a new one; refuse what would sign badly or weakly."""
    if secret is None:
        return generate_secret()
    if not secret.strip():
        raise ConfigError(
            "a secret must not be empty; leave --secret out to generate one"
        )
    # Printable ASCII only: every receiver then reads the same key bytes.
    if not (
        MIN_SECRET_LENGTH <= len(secret) <= MAX_SECRET_LENGTH
        and secret.isascii()
        and secret.isprintable()
        and " " not in secret
    ):
        raise ConfigError(
            f"a secret must be {MIN_SECRET_LENGTH} to {MAX_SECRET_LENGTH} printable"
            " ASCII characters without spaces"
        )
    if secret.startswith(SECRET_PREFIX) and not valid_whsec_key(secret):
        raise ConfigError(
            f"a secret starting with {SECRET_PREFIX} must continue with the base64"
            f" of at least {MIN_SECRET_LENGTH} bytes"
        )
    return secret


def valid_whsec_key(secret: str) -> bool:
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error:
        return False
    return len(key) >= MIN_SECRET_LENGTH


def check_events(events: Sequence[str]) -> list[str]:
    """The event names, de-duplicated in order, or a ConfigError for a bad one."""
    for event in events:
        if event == HEALTH_CHECK_EVENT:
            raise ConfigError(f"{event} cannot be subscribed to")
        if event not in SUBSCRIBABLE_EVENTS:
            raise ConfigError(
                f"unknown event name {event!r}; the README lists the 37 events"
            )
    return list(dict.fromkeys(events))


def create(connection: Connection, webhook: NewWebhook) -> tuple[dict[str, Any], str]:
    """Register a webhook; return it and its secret, which is shown only now."""
    name = check_name(webhook.name)
    url = check_url(webhook.url)
    events = check_events(webhook.events)
    project_ids = list(dict.fromkeys(webhook.project_ids))
    secret = check_secret(webhook.secret)
    named = queries.load("webhooks")

    with connection.transaction():
        creator = connection.execute(
            named["find_user"], {"user_id": webhook.created_by_id}
        ).fetchone()
        if creator is None:
            raise ConfigError(f"unknown user {webhook.created_by_id!r}")
        check_projects(connection, project_ids, creator_id=creator[0])
        row = connection.execute(
            named["insert_webhook"],
            {
                "name": name,
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
    connection: Connection, project_ids: list[str], creator_id: str
) -> None:
    """Every project must exist, in the creator's company, with the creator in it.

    Membership can change later, and scope is checked again for every event; a
    project the creator cannot see now is a mistake worth stopping, though.
    """
    rows = connection.execute(
        queries.load("webhooks")["find_projects"],
        {"project_ids": project_ids, "user_id": creator_id},
    ).fetchall()
    found = {
        project_id: (same_company, member) for project_id, same_company, member in rows
    }
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
