"""What every command of the CLI shares: the DSN option."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def dsn_option(function: F) -> F:
    decorator = click.option(
        "--dsn",
        envvar="DATABASE_URL",
        help="PostgreSQL DSN or URL. Default: $DATABASE_URL.",
    )
    return decorator(function)
