"""Connections to PostgreSQL, and the one place where driver errors are translated.

Everything above this module sees ``RelayError`` subclasses with a one-line message,
never a driver's exception.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import psycopg
from psycopg.conninfo import conninfo_to_dict

from relay.errors import ConfigError, DatabaseError

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 10

# Errors that pass: a dropped connection, a restart of PostgreSQL (which ends
# sessions with admin_shutdown), a deadlock or serialization failure. The same
# statement may succeed when tried again.
TRANSIENT_ERRORS = (
    DatabaseError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.TransactionRollbackError,
    asyncpg.InterfaceError,
    # What asyncpg raises when a connection dies in the middle of an operation.
    asyncpg.InternalClientError,
    OSError,
    # A connection attempt to a server that is starting or gone may time out.
    TimeoutError,
)


# A DSN's password as written: between "user:" and "@" in a URL, or the value of
# password= (key=value, or a URL's query). libpq quotes pieces of a DSN it cannot
# parse in its messages, the whole URL for some, password included.
_URL_PASSWORD = re.compile(r"^[a-z]+://[^:@/?#]*:(?P<password>[^@/?#]+)@", re.I)
_PASSWORD_KEYWORD = re.compile(
    r"\bpassword\s*=\s*(?:'(?P<quoted>(?:[^'\\]|\\.)*)|(?P<bare>[^\s&']+))"
)
HIDDEN = "****"


def without_password(text: str, dsn: str) -> str:
    """``text`` with the password of ``dsn``, as written there, hidden."""
    url = _URL_PASSWORD.match(dsn)
    passwords = [url["password"]] if url else []
    for keyword in _PASSWORD_KEYWORD.finditer(dsn):
        passwords.append(keyword["quoted"] or keyword["bare"] or "")
    # Longest first: a password that contains another is hidden whole.
    for password in sorted(filter(None, passwords), key=len, reverse=True):
        text = text.replace(password, HIDDEN)
    return text


def hidden_reason(error: BaseException, dsn: str) -> tuple[str, BaseException | None]:
    """The first line of ``error`` without the password, and the cause to chain.

    A message that held the password is not chained: ``--debug`` would print it
    in the traceback.
    """
    reason = first_line(error)
    hidden = without_password(reason, dsn)
    return hidden, error if hidden == reason else None


SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def check_dsn(dsn: str | None) -> str:
    """The DSN itself, or a ConfigError saying what is wrong with it."""
    if not dsn:
        raise ConfigError(
            "no database given: pass --dsn or set DATABASE_URL "
            "(for example postgresql://postgres@127.0.0.1:5432/app)"
        )
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as error:
        reason, cause = hidden_reason(error, dsn)
        raise ConfigError(f"malformed database DSN: {reason}") from cause
    # libpq's parser keeps any port text; asyncpg would fail on it with a ValueError.
    for port in str(params.get("port", "")).split(","):
        if port and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
            raise ConfigError(f"malformed database DSN: invalid port {port!r}")
    # libpq checks this only when it connects, and says "connection is bad".
    sslmode = params.get("sslmode")
    if sslmode is not None and sslmode not in SSL_MODES:
        raise ConfigError(
            f"malformed database DSN: invalid sslmode {sslmode!r}"
            f" (one of {', '.join(SSL_MODES)})"
        )
    return dsn


def describe(dsn: str) -> str:
    """The DSN without its password, for messages and logs."""
    params = conninfo_to_dict(dsn)
    host = params.get("host", "local socket")
    return f"{params.get('dbname', '?')} on {host}:{params.get('port', 5432)}"


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@contextlib.contextmanager
def translated_errors(dsn: str) -> Iterator[None]:
    """Turn driver errors raised inside into DatabaseError with one line."""
    try:
        yield
    except (psycopg.errors.UndefinedTable, asyncpg.UndefinedTableError) as error:
        raise DatabaseError(
            f"{first_line(error)}: is the database migrated? run relay migrate"
        ) from error
    except (
        psycopg.OperationalError,
        OSError,
        asyncpg.PostgresConnectionError,
    ) as error:
        reason, cause = hidden_reason(error, dsn)
        raise DatabaseError(
            f"cannot reach PostgreSQL ({describe(dsn)}): {reason}"
        ) from cause
    except (psycopg.Error, asyncpg.PostgresError) as error:
        reason, cause = hidden_reason(error, dsn)
        raise DatabaseError(f"PostgreSQL refused: {reason}") from cause


@contextlib.contextmanager
def connect(dsn: str, **options: Any) -> Iterator[psycopg.Connection[Any]]:
    """A psycopg connection for the CLI and migrations, errors translated."""
    with translated_errors(check_dsn(dsn)):
        connection = psycopg.connect(
            dsn, connect_timeout=CONNECT_TIMEOUT_SECONDS, **options
        )
        with connection:
            yield connection


def asyncpg_arguments(dsn: str) -> dict[str, Any]:
    """asyncpg reads URLs only; a libpq key=value string is mapped here."""
    if dsn.startswith(("postgres://", "postgresql://")):
        return {"dsn": dsn}
    params = conninfo_to_dict(dsn)
    names = {
        "host": "host",
        "port": "port",
        "user": "user",
        "password": "password",
        "dbname": "database",
        # asyncpg's ssl takes the same words as libpq's sslmode.
        "sslmode": "ssl",
    }
    arguments: dict[str, Any] = {
        names[key]: value for key, value in params.items() if key in names
    }
    return arguments


async def connect_async(
    dsn: str, application_name: str = "relay"
) -> asyncpg.Connection:
    """One asyncpg connection outside any pool, errors translated."""
    with translated_errors(check_dsn(dsn)):
        connection: asyncpg.Connection = await asyncpg.connect(
            **asyncpg_arguments(dsn),
            timeout=CONNECT_TIMEOUT_SECONDS,
            server_settings={"application_name": application_name},
        )
        return connection


# Why the relay's own writes skip the wait for the WAL flush: a claim, a fan-out or
# an attempt lost in a crash of PostgreSQL only means a delivery is made again,
# which at-least-once delivery allows; the application's writes are not affected.
#
# Why each statement is planned afresh: asyncpg prepares a statement once per
# connection, and PostgreSQL then keeps a generic plan made from what it knew of
# the tables at the time. The outbox and deliveries often start empty and grow by
# thousands of rows a second, faster than autovacuum refreshes their statistics,
# and a plan made while they were small scans them whole once they are large (a
# drain of 50,000 events spent half its time so). The payload functions, whose
# lookups are by key, keep cached plans (0022).
#
# Why bitmap scans are off: with statistics from when the outbox was small, the
# planner reads "the oldest 100 pending events" as a bitmap scan of every pending
# event and a sort of them all (5 ms for a backlog of 5,000, growing with it),
# where the index on pending ids returns them in order at once. Every relay query
# reads by key or in index order, so none of them needs a bitmap scan.
RELAY_SESSION_SETTINGS = {
    "application_name": "relay",
    "synchronous_commit": "off",
    "plan_cache_mode": "force_custom_plan",
    "enable_bitmapscan": "off",
}


async def create_pool(dsn: str, max_size: int) -> asyncpg.Pool:
    """The relay's asyncpg pool, errors translated."""
    with translated_errors(check_dsn(dsn)):
        pool: asyncpg.Pool = await asyncpg.create_pool(
            **asyncpg_arguments(dsn),
            # No floor to maintain: during an outage the pool would log a traceback
            # every second trying to reconnect; connections open on demand instead.
            min_size=0,
            max_size=max_size,
            timeout=CONNECT_TIMEOUT_SECONDS,
            server_settings=RELAY_SESSION_SETTINGS,
            reset=end_transaction,
        )
        return pool


async def end_transaction(connection: asyncpg.Connection) -> None:
    """What a pooled connection needs before its next use: no open transaction.

    asyncpg's default reset sends ``RESET ALL``, ``UNLISTEN *`` and more at every
    release, one round trip each time. The relay leaves no session state behind
    (its settings and advisory locks are transaction-scoped, and it LISTENs on a
    connection of its own), so only a transaction left open must end.
    """
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")


@contextlib.asynccontextmanager
async def open_pool(dsn: str, max_size: int) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(dsn, max_size)
    try:
        yield pool
    finally:
        await pool.close()
