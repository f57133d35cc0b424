"""Migrations: applied in order, each once, recorded, and never edited afterwards."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from relay import migrations
from relay.errors import MigrationError
from relay.queries import sql_root
from tests.support import eventually, relay_command, relay_environment

SHIPPED = [
    "0001_application_schema",
    "0002_relay_schema",
    "0003_capture_triggers",
    "0004_payload_functions",
    "0005_filters_and_item_assignees",
    "0006_complete_capture",
    "0007_webhook_json_v2",
    "0008_payload_functions_v2",
    "0009_deleted_entities_index",
    "0010_retries_and_health",
    "0020_armed_doorbell",
    "0021_live_claims_index",
    "0022_faster_payload_functions",
    "0023_relation_events_order_and_context",
    "0024_health_check_on_enable",
    "0025_drop_unused_due_index",
    "0026_cheaper_capture_calls",
    "0027_replays_and_sent_bodies",
    "0028_backfills",
    "0029_status_indexes",
    "0030_trigger_catalogue",
    "0031_webhook_last_outcomes",
]
VERSIONS = [int(label[:4]) for label in SHIPPED]
# The key relay migrate takes turns with; holding it makes the commands queue.
LOCK_KEY = migrations._ADVISORY_LOCK_KEY
RECORDED = "SELECT version, name, checksum FROM relay.schema_migrations ORDER BY 1"


@pytest.fixture
def empty(empty_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(empty_dsn, autocommit=True) as connection:
        yield connection


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A copy of the shipped migrations that a test may change."""
    return Path(shutil.copytree(sql_root() / "migrations", tmp_path / "migrations"))


def versions(connection: psycopg.Connection[Any]) -> list[int]:
    rows = connection.execute("SELECT version FROM relay.schema_migrations ORDER BY 1")
    return [version for (version,) in rows]


def waiting_for_the_lock(connection: psycopg.Connection[Any]) -> int:
    row = connection.execute(
        "SELECT count(*) FROM pg_locks"
        " WHERE locktype = 'advisory' AND NOT granted AND database = ("
        "   SELECT oid FROM pg_database WHERE datname = current_database())"
    ).fetchone()
    return row[0] if row else 0


def table_exists(connection: psycopg.Connection[Any], name: str) -> bool:
    row = connection.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return row == (True,)


def test_migrations_apply_in_order_once_with_their_checksums(
    empty_dsn: str, empty: psycopg.Connection[Any]
) -> None:
    files = sorted((sql_root() / "migrations").glob("*.sql"))
    expected = [
        (
            int(path.name[:4]),
            path.stem[5:],
            hashlib.sha256(path.read_bytes()).hexdigest(),
        )
        for path in files
    ]

    first = migrations.apply_migrations(empty_dsn)
    recorded = empty.execute(RECORDED).fetchall()
    second = migrations.apply_migrations(empty_dsn)

    assert first == SHIPPED
    assert recorded == expected
    assert [path.stem for path in files] == SHIPPED
    applied_order = empty.execute(
        "SELECT version FROM relay.schema_migrations ORDER BY applied_at"
    ).fetchall()
    assert applied_order == [(version,) for version in VERSIONS]
    assert second == []
    assert empty.execute(RECORDED).fetchall() == expected


async def test_two_concurrent_migrate_commands_apply_each_migration_once(
    empty_dsn: str, empty: psycopg.Connection[Any]
) -> None:
    empty.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
    commands = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "relay",
            "migrate",
            env=relay_environment(empty_dsn),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    try:
        await eventually(lambda: waiting_for_the_lock(empty) == 2, timeout=30)

        empty.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
        async with asyncio.timeout(60):
            outputs = [await command.communicate() for command in commands]
    finally:
        for command in commands:
            if command.returncode is None:
                command.kill()
                await command.wait()

    assert [command.returncode for command in commands] == [0, 0]
    assert sorted(stderr.decode().splitlines()[-1] for _, stderr in outputs) == [
        f"Applied {len(SHIPPED)} migrations: {', '.join(SHIPPED)}",
        "The database is up to date.",
    ]
    # Installing the triggers tells the DBA how they treat replica sessions.
    notes = sorted(
        migrations.CAPTURE_NOTE in stderr.decode().splitlines() for _, stderr in outputs
    )
    assert notes == [False, True]
    assert versions(empty) == VERSIONS


def test_an_applied_migration_edited_afterwards_is_refused(
    empty_dsn: str, empty: psycopg.Connection[Any], folder: Path
) -> None:
    migrations.apply_migrations(empty_dsn, folder)
    with (folder / "0002_relay_schema.sql").open("a", encoding="utf-8") as file:
        file.write("-- a comment added later\n")
    (folder / "9001_add_notes.sql").write_text("CREATE TABLE public.notes (id int);")

    with pytest.raises(MigrationError) as refused:
        migrations.apply_migrations(empty_dsn, folder)

    assert str(refused.value) == (
        "migration 0002_relay_schema was edited after it was applied; "
        "restore the file and add a new migration instead"
    )
    assert versions(empty) == VERSIONS
    assert not table_exists(empty, "public.notes")


def test_the_migrate_command_refuses_an_edited_migration_with_status_1(
    db: psycopg.Connection[Any], dsn: str
) -> None:
    # The command reads the shipped files, so the record is what disagrees here.
    db.execute(
        "UPDATE relay.schema_migrations SET checksum = 'before the edit'"
        " WHERE version = 3"
    )

    result = relay_command("migrate", dsn=dsn)

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "relay: error: migration 0003_capture_triggers was edited after it was "
        "applied; restore the file and add a new migration instead"
    ]
    assert versions(db) == VERSIONS


def test_a_new_migration_file_is_applied_on_the_next_run(
    empty_dsn: str, empty: psycopg.Connection[Any], folder: Path
) -> None:
    migrations.apply_migrations(empty_dsn, folder)
    added = "CREATE TABLE public.notes (id int PRIMARY KEY);\n"
    (folder / "9001_add_notes.sql").write_text(added, encoding="utf-8")

    applied = migrations.apply_migrations(empty_dsn, folder)

    assert applied == ["9001_add_notes"]
    assert empty.execute(RECORDED).fetchall()[-1] == (
        9001,
        "add_notes",
        hashlib.sha256(added.encode()).hexdigest(),
    )
    assert table_exists(empty, "public.notes")


def test_a_failing_migration_leaves_nothing_of_itself_behind(
    empty_dsn: str, empty: psycopg.Connection[Any], folder: Path
) -> None:
    half_done = "CREATE TABLE public.half_done (id int);\nSELECT * FROM no_such_table;"
    (folder / "9001_half_done.sql").write_text(half_done, encoding="utf-8")

    with pytest.raises(MigrationError) as refused:
        migrations.apply_migrations(empty_dsn, folder)

    assert str(refused.value) == (
        "migration 9001_half_done failed and was rolled back:"
        ' relation "no_such_table" does not exist'
    )
    assert versions(empty) == VERSIONS
    assert not table_exists(empty, "public.half_done")
    assert table_exists(empty, "relay.deliveries")


@pytest.mark.parametrize(
    ("extra_file", "message"),
    [
        ("5_notes.sql", "migration file name not understood: 5_notes.sql"),
        ("0005-notes.sql", "migration file name not understood: 0005-notes.sql"),
        ("0005_Notes.sql", "migration file name not understood: 0005_Notes.sql"),
        (
            "0004_payload_again.sql",
            "migrations 0004_payload_again and 0004_payload_functions share a version",
        ),
    ],
)
def test_a_badly_named_file_is_refused_before_anything_is_applied(
    empty_dsn: str,
    empty: psycopg.Connection[Any],
    folder: Path,
    extra_file: str,
    message: str,
) -> None:
    (folder / extra_file).write_text("CREATE TABLE public.notes (id int);")

    with pytest.raises(MigrationError) as refused:
        migrations.apply_migrations(empty_dsn, folder)

    assert str(refused.value) == message
    assert not table_exists(empty, "relay.schema_migrations")
    assert not table_exists(empty, "public.notes")


def test_the_relay_refuses_to_run_on_a_database_that_is_not_migrated(
    empty_dsn: str,
) -> None:
    result = relay_command("run", dsn=empty_dsn)

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "relay: error: the database lacks migrations "
        + ", ".join(SHIPPED)
        + "; run relay migrate first"
    ]


def test_managing_webhooks_on_a_database_not_migrated_says_what_to_do(
    empty_dsn: str,
) -> None:
    result = relay_command("webhooks", "list", dsn=empty_dsn)

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        'relay: error: relation "relay.webhooks" does not exist:'
        " is the database migrated? run relay migrate"
    ]


def test_the_relay_refuses_to_run_on_a_migration_it_does_not_know(
    db: psycopg.Connection[Any], dsn: str
) -> None:
    db.execute(
        "UPDATE relay.schema_migrations SET checksum = 'older text' WHERE version = 2"
    )

    result = relay_command("run", dsn=dsn)

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "relay: error: migration 0002_relay_schema was edited after it was "
        "applied; restore the file and add a new migration instead"
    ]
