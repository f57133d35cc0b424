"""The relay command as operators run it: a real process, exit status and output."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from relay import migrations
from tests.support import relay_command

UNREACHABLE = "postgresql://postgres@127.0.0.1:1/postgres"
NO_DATABASE = (
    "relay: error: no database given: pass --dsn or set DATABASE_URL "
    "(for example postgresql://postgres@127.0.0.1:5432/app)"
)

BAD_PORT = "malformed database DSN: invalid port 'notaport'"


@pytest.mark.parametrize(
    ("command", "bad_dsn", "message"),
    [
        ("list", "host=127.0.0.1 port=notaport dbname=", BAD_PORT),
        ("list", "postgresql://x:y@127.0.0.1:notaport/db", BAD_PORT),
        # asyncpg failed on this port with a traceback before check_dsn caught it.
        ("run", "postgresql://x:y@127.0.0.1:notaport/db", BAD_PORT),
        ("migrate", "host=127.0.0.1 port=notaport dbname=", BAD_PORT),
        (
            "list",
            "postgresql://postgres@127.0.0.1/db?colour=blue",
            'malformed database DSN: invalid URI query parameter: "colour"',
        ),
        (
            "list",
            "host=127.0.0.1 dbname",
            'malformed database DSN: missing "=" after "dbname" in connection info'
            " string",
        ),
    ],
)
def test_a_malformed_dsn_is_one_line_and_status_2(
    command: str, bad_dsn: str, message: str
) -> None:
    arguments = ["webhooks", "list"] if command == "list" else [command]

    result = relay_command(*arguments, "--dsn", bad_dsn)

    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"relay: error: {message}"]


@pytest.mark.parametrize(
    "command",
    [["webhooks", "list"], ["webhooks", "show", "wh_x"], ["migrate"], ["run"]],
)
def test_an_unreachable_database_is_one_line_and_status_1(command: list[str]) -> None:
    result = relay_command(*command, dsn=UNREACHABLE)

    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith(
        "relay: error: cannot reach PostgreSQL (postgres on 127.0.0.1:1): "
    )
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [["webhooks", "list"], ["migrate"], ["run"]])
def test_no_database_given_is_one_line_and_status_2(command: list[str]) -> None:
    result = relay_command(*command, dsn=None)

    assert result.returncode == 2
    assert result.stderr.splitlines() == [NO_DATABASE]


def test_migrate_on_a_migrated_database_says_it_is_up_to_date(
    db: psycopg.Connection[Any], dsn: str
) -> None:
    recorded = "SELECT version, applied_at FROM relay.schema_migrations ORDER BY 1"
    before = db.execute(recorded).fetchall()

    result = relay_command("migrate", dsn=dsn)

    assert result.returncode == 0
    assert result.stdout == ""
    assert result.stderr.splitlines() == ["The database is up to date."]
    assert db.execute(recorded).fetchall() == before
    assert [version for version, _ in before] == [
        migration.version for migration in migrations.discover()
    ]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["--lease", "5", "--request-timeout", "10"],
            "--lease must be longer than --request-timeout",
        ),
        (
            ["--poll-interval", "nan"],
            "--poll-interval must be between 0.01 and 3600 seconds, not nan",
        ),
    ],
)
def test_run_refuses_bad_settings_in_one_line(
    dsn: str, arguments: list[str], message: str
) -> None:
    result = relay_command("run", *arguments, dsn=dsn)

    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"relay: error: {message}"]
