"""Registering and managing webhooks: validation first, then one transaction."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import logging
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any
from urllib.parse import urlsplit

import psycopg
import yarl

from relay import db, filters, queries
from relay.errors import ConfigError
from relay.signing import SECRET_PREFIX, generate_secret

logger = logging.getLogger(__name__)

Connection = psycopg.Connection[Any]

MAX_NAME_LENGTH = 200
# One label of a host name, after international names are encoded (IDNA).
HOST_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
MIN_SECRET_LENGTH = 16
MAX_SECRET_LENGTH = 128


@dataclass(frozen=True)
class NewWebhook:
    name: str
    url: str
    created_by_id: str
    events: Sequence[str] = ()
    project_ids: Sequence[str] = ()
    todo_list_ids: Sequence[str] = ()
    tag_ids: Sequence[str] = ()
    assignee_ids: Sequence[str] = ()
    changed_fields: Sequence[str] = ()
    secret: str | None = None

    def as_filters(self) -> filters.Filters:
        return filters.Filters(
            **{item.name: getattr(self, item.name) for item in fields(filters.Filters)}
        )


@dataclass(frozen=True)
class WebhookChanges:
    """What ``relay webhooks update`` changes: a filter given replaces the list.

    Empty means unchanged; ``clear`` names filters to empty (see
    ``filters.CLEARABLE``).
    """

    name: str | None = None
    url: str | None = None
    events: Sequence[str] = ()
    project_ids: Sequence[str] = ()
    todo_list_ids: Sequence[str] = ()
    tag_ids: Sequence[str] = ()
    assignee_ids: Sequence[str] = ()
    changed_fields: Sequence[str] = ()
    clear: Sequence[str] = ()

    def given_filters(self) -> dict[str, list[str]]:
        """The filters to replace, by Filters field name.

        A ConfigError if the update would change nothing or contradicts itself.
        """
        given = {
            item.name: list(getattr(self, item.name))
            for item in fields(filters.Filters)
            if getattr(self, item.name)
        }
        for word in dict.fromkeys(self.clear):
            if word not in filters.CLEARABLE:
                raise ConfigError(
                    f"cannot clear {word!r}; choose from "
                    + ", ".join(filters.CLEARABLE)
                )
            name = filters.CLEARABLE[word]
            if name in given:
                raise ConfigError(
                    f"--clear {word} and new {word} contradict each other"
                )
            given[name] = []
        if not given and self.name is None and self.url is None:
            raise ConfigError(
                "nothing to change; relay webhooks update --help lists what can"
            )
        return given


def check_url(url: str) -> str:
    """The URL (its scheme in lower case), or a ConfigError saying why it cannot
    receive webhooks.

    What is accepted here must be something the relay can request: the URL is
    parsed as aiohttp will parse it (yarl), and its host must be an IP address or
    a name whose every label is 1 to 63 letters, digits, hyphens or underscores,
    once international names are encoded.
    """

    def refuse(reason: str) -> ConfigError:
        return ConfigError(f"malformed URL {url!r}: {reason}")

    try:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise refuse("it must start with http:// or https://")
        if not url.isprintable() or any(character.isspace() for character in url):
            raise refuse("it must not contain spaces or control characters")
        parsed = yarl.URL(url)
        port = parts.port
    except ValueError as error:
        raise refuse(str(error)) from error
    host = parsed.raw_host
    if not host:
        raise refuse("it needs a host")
    if not is_ip_address(host) and not all(
        HOST_LABEL.fullmatch(label) for label in host.removesuffix(".").split(".")
    ):
        raise refuse(f"{parts.hostname!r} is not a valid host name")
    if parts.netloc.endswith(":"):
        raise refuse("a ':' must be followed by a port number")
    if port == 0:
        raise refuse("port 0 cannot receive requests")
    # A scheme is case-insensitive; store it as receivers and the schema expect it.
    return parts.scheme + url[len(parts.scheme) :]


def is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


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


def create(connection: Connection, webhook: NewWebhook) -> tuple[dict[str, Any], str]:
    """Register a webhook; return it and its secret, which is shown only now."""
    name = check_name(webhook.name)
    url = check_url(webhook.url)
    filters.check_events(webhook.events)
    secret = check_secret(webhook.secret)

    with connection.transaction():
        creator_id = find_creator(connection, webhook.created_by_id)
        checked = filters.check(connection, webhook.as_filters(), creator_id)
        row = connection.execute(
            queries.load("webhooks")["insert_webhook"],
            {
                "name": name,
                "url": url,
                "secret": secret,
                "created_by_id": creator_id,
                **checked.as_parameters(),
            },
        ).fetchone()

    assert row is not None
    created: dict[str, Any] = json.loads(row[0])
    logger.info(
        "Webhook created.", extra={"action": "create", "webhook_id": created["id"]}
    )
    return created, secret


def find_creator(connection: Connection, user_id: str) -> str:
    row = connection.execute(
        queries.load("webhooks")["find_user"], {"user_id": user_id}
    ).fetchone()
    if row is None:
        raise ConfigError(f"unknown user {user_id!r}")
    creator_id: str = row[0]
    return creator_id


def update(
    connection: Connection, webhook_id: str, changes: WebhookChanges
) -> dict[str, Any]:
    """Apply ``changes`` and return the webhook; the result is checked like a new one.

    A filter given replaces the whole list; one named in ``changes.clear`` is
    emptied. Checking the result in full, not just what changed, also catches a
    list left outside projects that were just narrowed.
    """
    name = None if changes.name is None else check_name(changes.name)
    url = None if changes.url is None else check_url(changes.url)
    given = changes.given_filters()
    filters.check_events(given.get("events", ()))
    named = queries.load("webhooks")

    with connection.transaction():
        current = connection.execute(
            named["lock_webhook"], {"webhook_id": webhook_id}
        ).fetchone()
        if current is None:
            raise ConfigError(f"unknown webhook {webhook_id!r}")
        old_name, old_url, creator_id, *old_filters = current
        if creator_id is None:
            raise ConfigError(
                f"webhook {webhook_id!r} has lost its creator and matches nothing;"
                " create a new one"
            )
        wanted = replace(filters.Filters(*old_filters), **given)
        checked = filters.check(connection, wanted, creator_id)
        row = connection.execute(
            named["update_webhook"],
            {
                "webhook_id": webhook_id,
                "name": old_name if name is None else name,
                "url": old_url if url is None else url,
                **checked.as_parameters(),
            },
        ).fetchone()

    assert row is not None
    updated: dict[str, Any] = json.loads(row[0])
    logger.info(
        "Webhook updated.", extra={"action": "update", "webhook_id": webhook_id}
    )
    return updated


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
    """Enable or disable a webhook; re-enabling one sends it WEBHOOK_HEALTH_CHECK.

    The health check is queued by a trigger on the switch itself (0024), so an
    UPDATE in plain SQL sends it too, once, and only if the webhook went from
    disabled to enabled.
    """
    with connection.transaction():
        row = connection.execute(
            queries.load("webhooks")["set_enabled"],
            {"webhook_id": webhook_id, "enabled": enabled},
        ).fetchone()
        if row is None:
            raise ConfigError(f"unknown webhook {webhook_id!r}")
        changed: dict[str, Any] = json.loads(row[0])
        was_enabled: bool = row[1]

    if enabled != was_enabled:
        logger.info(
            "Webhook enabled; a health check is queued."
            if enabled
            else "Webhook disabled.",
            extra={
                "action": "enable" if enabled else "disable",
                "webhook_id": webhook_id,
            },
        )
    return changed


def check_exist(connection: Connection, ids: Collection[str], where: str = "") -> None:
    """A ConfigError naming the ids of ``ids`` that are no webhook's (``where``:
    the option they came from, for the message)."""
    if not ids:
        return
    unknown = connection.execute(
        queries.load("webhooks")["unknown_webhooks"], {"ids": sorted(set(ids))}
    ).fetchall()
    if unknown:
        names = ", ".join(repr(row[0]) for row in unknown)
        raise ConfigError(
            f"unknown webhook {names}{where}: list them with relay webhooks list"
        )


def display_url(url: str) -> str:
    """The URL as the CLI shows it: a password in it hidden, as a DSN's is.

    Receivers may take credentials in the URL (https://user:pass@host/hook); the
    payload carries the URL as it is, but an operator's terminal and logs need
    not.
    """
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{parts.username}:{db.HIDDEN}@{host}").geturl()


def for_display(webhook: dict[str, Any]) -> dict[str, Any]:
    """A webhook's JSON as the CLI prints it: its URL through ``display_url``."""
    return {**webhook, "url": display_url(webhook["url"])}
