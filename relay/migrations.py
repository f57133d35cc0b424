"""Applies the numbered files of ``sql/migrations`` in order, each exactly once.

Each file runs in its own transaction and is recorded with a SHA-256 checksum of its
text. A file edited after it was applied is refused: a migration that already ran
cannot be changed, only followed by a new one. An advisory lock, held for
the whole run, makes two concurrent ``relay migrate`` runs take turns.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from relay import db, queries
from relay.errors import MigrationError
from relay.queries import sql_root

logger = logging.getLogger(__name__)

_FILE_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")

# What a DBA must know before any change reaches the triggers (README: "Replication,
# bulk loads and TRUNCATE"); relay migrate says it whenever it installs something.
CAPTURE_NOTE = (
    "Note: capture triggers fire in every session, including those with"
    " session_replication_role = replica (replication subscribers, bulk loads),"
    " and TRUNCATE of a captured table is refused; see the README."
)

# Any constant works; it only has to be the same for every relay.
_ADVISORY_LOCK_KEY = 727_274_001

BOOTSTRAP = """
CREATE SCHEMA IF NOT EXISTS relay;
CREATE TABLE IF NOT EXISTS relay.schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


def discover(directory: Path | None = None) -> list[Migration]:
    """The migrations on disk, in version order."""
    folder = directory or sql_root() / "migrations"
    found: list[Migration] = []
    for path in sorted(folder.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"migration file name not understood: {path.name}")
        version = int(match["version"])
        if found and found[-1].version == version:
            raise MigrationError(
                f"migrations {found[-1].label} and {path.stem} share a version"
            )
        found.append(
            Migration(version, match["name"], path.read_text(encoding="utf-8"))
        )
    return found


def apply_migrations(dsn: str, directory: Path | None = None) -> list[str]:
    """Apply what is not applied yet; return the labels of what was applied."""
    migrations = discover(directory)
    applied_now: list[str] = []

    with db.connect(dsn, autocommit=True) as connection, db.translated_errors(dsn):
        connection.execute("SELECT pg_advisory_lock(%s)", (_ADVISORY_LOCK_KEY,))
        try:
            connection.execute(BOOTSTRAP)
            applied = read_applied(connection)
            check_unchanged(migrations, applied)

            for migration in migrations:
                if migration.version not in applied:
                    apply_one(connection, migration)
                    applied_now.append(migration.label)
        finally:
            connection.execute("SELECT pg_advisory_unlock(%s)", (_ADVISORY_LOCK_KEY,))

    return applied_now


def check_current(dsn: str) -> None:
    """Refuse a database that lacks a migration on disk or applied another text."""
    migrations = discover()
    with db.connect(dsn, autocommit=True) as connection, db.translated_errors(dsn):
        applied = read_applied(connection)
    check_unchanged(migrations, applied)
    missing = [item.label for item in migrations if item.version not in applied]
    if missing:
        raise MigrationError(
            f"the database lacks migrations {', '.join(missing)}; "
            "run relay migrate first"
        )


def read_applied(connection: psycopg.Connection[Any]) -> dict[int, str]:
    """Version to checksum of what was applied; empty before the first migrate."""
    [table] = connection.execute(
        "SELECT to_regclass('relay.schema_migrations')"
    ).fetchone() or (None,)
    if table is None:
        return {}
    rows = connection.execute("SELECT version, checksum FROM relay.schema_migrations")
    return {version: checksum for version, checksum in rows}


def apply_one(connection: psycopg.Connection[Any], migration: Migration) -> None:
    """Run one migration and record it, in one transaction."""
    with connection.transaction():
        try:
            connection.execute(migration.sql)
        except psycopg.DatabaseError as error:
            raise MigrationError(
                f"migration {migration.label} failed and was rolled back: "
                f"{db.first_line(error)}"
            ) from error
        connection.execute(
            "INSERT INTO relay.schema_migrations (version, name, checksum)"
            " VALUES (%s, %s, %s)",
            (migration.version, migration.name, migration.checksum),
        )
    logger.info("Applied migration %s.", migration.label, extra={"action": "migrate"})


def check_unchanged(migrations: list[Migration], applied: dict[int, str]) -> None:
    """Refuse when an applied migration's file no longer matches its checksum."""
    for migration in migrations:
        recorded = applied.get(migration.version)
        if recorded is not None and recorded != migration.checksum:
            raise MigrationError(
                f"migration {migration.label} was edited after it was applied; "
                "restore the file and add a new migration instead"
            )


@dataclass(frozen=True)
class MigrationStatus:
    """One migration as the disk and the database see it."""

    version: int
    name: str
    applied_at: datetime | None
    # applied, pending, changed on disk (edited after it was applied), or
    # missing on disk (applied by another version of relay).
    state: str

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


def read_recorded(dsn: str) -> list[tuple[int, str, str, datetime]] | None:
    """Version, name, checksum and time of each applied migration; None before any.

    The session is read-only: looking never changes the database.
    """
    with db.connect(dsn) as connection, db.translated_errors(dsn):
        connection.read_only = True
        [table] = connection.execute(
            "SELECT to_regclass('relay.schema_migrations')"
        ).fetchone() or (None,)
        if table is None:
            return None
        query = queries.load("migrations")["applied_migrations"]
        return list(connection.execute(query))


def status(dsn: str, directory: Path | None = None) -> list[MigrationStatus]:
    """Every migration on disk or in the database, in version order."""
    on_disk = {migration.version: migration for migration in discover(directory)}
    recorded = {row[0]: row for row in read_recorded(dsn) or []}

    found: list[MigrationStatus] = []
    for version in sorted(on_disk.keys() | recorded.keys()):
        migration = on_disk.get(version)
        row = recorded.get(version)
        if row is None:
            assert migration is not None
            found.append(MigrationStatus(version, migration.name, None, "pending"))
        elif migration is None:
            found.append(MigrationStatus(version, row[1], row[3], "missing on disk"))
        else:
            same = row[2] == migration.checksum
            state = "applied" if same else "changed on disk"
            found.append(MigrationStatus(version, migration.name, row[3], state))
    return found


def pending(dsn: str, directory: Path | None = None) -> tuple[list[Migration], bool]:
    """What relay migrate would apply, and whether it would bootstrap first.

    Refused, like relay migrate itself, when an applied migration was edited.
    """
    migrations = discover(directory)
    recorded = read_recorded(dsn)
    applied = {row[0]: row[2] for row in recorded or []}
    check_unchanged(migrations, applied)
    waiting = [item for item in migrations if item.version not in applied]
    return waiting, recorded is None
