"""What the CLI's commands share: the DSN option and points in time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import click

from relay import retries
from relay.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])


def dsn_option(function: F) -> F:
    decorator = click.option(
        "--dsn",
        envvar="DATABASE_URL",
        help="PostgreSQL DSN or URL. Default: $DATABASE_URL.",
    )
    return decorator(function)


def parse_moment(text: str, *, now: datetime | None = None) -> datetime:
    """A point in time: ISO 8601 (UTC unless it says otherwise) or ``2h`` ago."""
    now = now or datetime.now(UTC)
    try:
        return now - timedelta(seconds=retries.parse_duration(text))
    except ConfigError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(
            f"malformed time {text!r}: write ISO 8601 (2026-12-03T10:00Z)"
            " or a time ago (30m, 2h, 1d)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def moment_option(name: str, help_text: str) -> Callable[[F], F]:
    """``--since``/``--until``: ISO 8601 or a duration ago, parsed to a datetime."""

    def convert(
        context: click.Context, parameter: click.Parameter, value: str | None
    ) -> datetime | None:
        if value is None:
            return None
        try:
            return parse_moment(value)
        except ConfigError as error:
            raise click.BadParameter(str(error)) from None

    return click.option(name, callback=convert, help=help_text)
