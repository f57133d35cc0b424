"""Database plumbing for tests: one server per run, a template cloned per test.

The server is the shared one on 127.0.0.1:5432 when it answers, otherwise a
throwaway cluster started for this run. Set RELAY_TEST_OWN_CLUSTER=1 to always
use a throwaway cluster.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
import pytest_asyncio
from psycopg import sql
from psycopg.conninfo import make_conninfo
from pytest_postgresql import factories

from relay.cluster import ThrowawayCluster
from relay.receiver import Receiver

SHARED_HOST = "127.0.0.1"
SHARED_PORT = 5432
SHARED_USER = "postgres"

_CLUSTER = pytest.StashKey[ThrowawayCluster]()


def pytest_configure(config: pytest.Config) -> None:
    if config.option.help:
        return

    if not os.environ.get("RELAY_TEST_OWN_CLUSTER") and _shared_server_answers():
        host, port, user = SHARED_HOST, SHARED_PORT, SHARED_USER
        where = "the shared server"
    else:
        cluster = ThrowawayCluster(durable=False)
        cluster.start()
        config.stash[_CLUSTER] = cluster
        host, port, user = cluster.host, cluster.port, cluster.user
        where = "a throwaway cluster"

    config.option.postgresql_host = host
    config.option.postgresql_port = port
    config.option.postgresql_user = user
    # A per-run name keeps concurrent runs on the shared server apart; dropping
    # first clears what an interrupted run of the same name left behind.
    config.option.postgresql_dbname = f"relay_tests_{os.getpid()}"
    config.option.postgresql_drop_test_database = True
    print(f"relay tests use {where} at {host}:{port}", file=sys.stderr)


def pytest_unconfigure(config: pytest.Config) -> None:
    cluster = config.stash.get(_CLUSTER, None)
    if cluster is not None:
        cluster.stop()


def _shared_server_answers() -> bool:
    try:
        with psycopg.connect(
            host=SHARED_HOST, port=SHARED_PORT, user=SHARED_USER, connect_timeout=3
        ):
            return True
    except psycopg.OperationalError:
        return False


def database_url(
    host: str, port: int | str, user: str, dbname: str, password: str | None = None
) -> str:
    """Return a libpq URL; asyncpg accepts only this form, not key=value."""
    credentials = quote(user, safe="")
    if password:
        credentials += ":" + quote(password, safe="")
    return f"postgresql://{credentials}@{host}:{port}/{quote(dbname, safe='')}"


def load_schema(
    host: str,
    port: int | str,
    user: str,
    dbname: str,
    password: str | None,
    autocommit: bool = False,
    **_: Any,
) -> None:
    """Migrate the template database once; every test gets a clone of it."""
    # Imported here so that tests needing no database run while migrations break.
    from relay.migrations import apply_migrations

    apply_migrations(database_url(host, port, user, dbname, password))


relay_template = factories.postgresql_noproc(load=[load_schema])
cloned_database = factories.postgresql("relay_template")


@pytest.fixture
def db(cloned_database: psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
    """A psycopg connection, in autocommit, to this test's clone of the template."""
    cloned_database.autocommit = True
    yield cloned_database


@pytest.fixture
def dsn(db: psycopg.Connection[Any]) -> str:
    """The libpq URL of this test's database, for asyncpg and CLI subprocesses."""
    info = db.info
    return database_url(info.host, info.port, info.user, info.dbname, info.password)


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A real aiohttp receiver on 127.0.0.1 that records every request."""
    started = Receiver()
    await started.start()
    yield started
    await started.stop()


@pytest.fixture
def empty_dsn(db: psycopg.Connection[Any], dsn: str) -> Iterator[str]:
    """The DSN of a new, empty database on the test server, dropped afterwards."""
    name = f"relay_empty_{uuid.uuid4().hex[:12]}"
    db.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_conninfo(dsn, dbname=name)
    finally:
        db.execute(
            sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name))
        )
