"""The relay command as operators run it: a real process, exit status and output."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click
import psycopg
import pytest
from click.testing import CliRunner

from relay import migrations
from relay.cli import cli, run
from tests.support import relay_command

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
# A row of the README's table of `relay run` options: option, variable, ...
OPTION_ROW = re.compile(r"^\| `(--[a-z-]+)` \| `([A-Z_]+)` \|")

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
            "migrate",
            "postgresql://postgres@127.0.0.1/db?sslmode=bogus",
            "malformed database DSN: invalid sslmode 'bogus' (one of disable, allow,"
            " prefer, require, verify-ca, verify-full)",
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


def documented_options() -> dict[str, str]:
    """The options of the README's "Running the relay" table, with their variables."""
    text = README.read_text(encoding="utf-8")
    section = text.split("### Running the relay", 1)[1].split("\n### ", 1)[0]
    rows = (OPTION_ROW.match(line) for line in section.splitlines())
    return {row[1]: row[2] for row in rows if row}


def variable_of(flag: str) -> str:
    return "RELAY_" + flag.removeprefix("--").replace("-", "_").upper()


def test_every_option_of_run_has_the_variable_of_the_same_name() -> None:
    options = [param for param in run.params if isinstance(param, click.Option)]

    variables = {option.opts[0]: option.envvar for option in options}

    # --max-in-flight-per-webhook: RELAY_MAX_IN_FLIGHT_PER_WEBHOOK; the DSN is the
    # one exception, under the name every PostgreSQL tool knows.
    assert variables == {
        flag: "DATABASE_URL" if flag == "--dsn" else variable_of(flag)
        for flag in variables
    }
    assert variables == documented_options()
    assert len(variables) == len(run.params)
    assert variables["--max-in-flight-per-webhook"] == "RELAY_MAX_IN_FLIGHT_PER_WEBHOOK"
    # The systemd example environment file names every one of them too.
    example = (ROOT / "deploy" / "relay.env.example").read_text()
    named = set(re.findall(r"^#?([A-Z_]+)=", example, flags=re.MULTILINE))
    assert set(variables.values()) <= named


def test_the_logging_options_have_the_variables_the_readme_names() -> None:
    variables = {
        param.opts[0]: param.envvar
        for param in cli.params
        if isinstance(param, click.Option) and param.envvar
    }

    assert variables == {
        "--log-level": "RELAY_LOG_LEVEL",
        "--log-format": "RELAY_LOG_FORMAT",
    }
    readme = README.read_text(encoding="utf-8")
    assert "`warning` or `error` (`RELAY_LOG_LEVEL`)" in readme
    assert "one object per line (`RELAY_LOG_FORMAT`)" in readme


@pytest.mark.parametrize(
    ("arguments", "environment", "message"),
    [
        (
            [],
            {"RELAY_LEASE": "5", "RELAY_REQUEST_TIMEOUT": "10"},
            "--lease must be longer than --request-timeout",
        ),
        (
            [],
            {"RELAY_POLL_INTERVAL": "0"},
            "--poll-interval must be between 0.01 and 3600 seconds, not 0.0",
        ),
        (
            [],
            {"RELAY_RETRY_SCHEDULE": "5s,soon"},
            "malformed duration 'soon': write a number with s, m, h or d",
        ),
        # A flag wins over its variable.
        (
            ["--lease", "0.5"],
            {"RELAY_LEASE": "5"},
            "--lease must be between 1 and 604800 seconds, not 0.5",
        ),
    ],
)
def test_run_reads_its_settings_from_the_environment(
    dsn: str, arguments: list[str], environment: dict[str, str], message: str
) -> None:
    result = relay_command("run", *arguments, dsn=dsn, **environment)

    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"relay: error: {message}"]


PASSWORD = "hunter2-s3cret"


@pytest.mark.parametrize(
    ("arguments", "bad_dsn", "status", "message"),
    [
        (
            ["run"],
            f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/postgres",
            1,
            "relay: error: cannot reach PostgreSQL (postgres on 127.0.0.1:1): ",
        ),
        (
            ["migrate"],
            f"host=127.0.0.1 port=1 password='{PASSWORD}' dbname=app",
            1,
            "relay: error: cannot reach PostgreSQL (app on 127.0.0.1:1): ",
        ),
        # libpq quotes the token it cannot decode: here, the password.
        (
            ["run"],
            f"postgresql://postgres:{PASSWORD}%zz@127.0.0.1/postgres",
            2,
            "relay: error: malformed database DSN:"
            ' invalid percent-encoded token: "****"',
        ),
        # ... and here the whole URL.
        (
            ["webhooks", "list"],
            f"postgresql://postgres:{PASSWORD}@[::1/postgres",
            2,
            "relay: error: malformed database DSN: end of string reached when looking"
            ' for matching "]" in IPv6 host address in URI:'
            ' "postgresql://postgres:****@[::1/postgres"',
        ),
    ],
)
def test_a_dsn_password_never_appears_in_stderr(
    arguments: list[str], bad_dsn: str, status: int, message: str
) -> None:
    result = relay_command(*arguments, dsn=bad_dsn)
    traced = relay_command("--debug", *arguments, dsn=bad_dsn)

    assert result.returncode == status
    [line] = result.stderr.splitlines()
    assert line.startswith(message)
    assert PASSWORD not in result.stderr
    # Tracebacks (--debug) leave the driver's message out when it held the password.
    assert traced.returncode != 0
    assert "Traceback" in traced.stderr
    assert PASSWORD not in traced.stderr


def every_command(group: click.Group, path: list[str]) -> list[list[str]]:
    found = []
    for name, command in sorted(group.commands.items()):
        found.append([*path, name])
        if isinstance(command, click.Group):
            found += every_command(command, [*path, name])
    return found


@pytest.mark.parametrize("command", every_command(cli, []), ids=" ".join)
def test_every_command_shows_an_example_in_its_help(command: list[str]) -> None:
    result = CliRunner().invoke(cli, [*command, "--help"])

    assert result.exit_code == 0
    assert "Example:\n    relay " in result.output or (
        "Example:\n    DATABASE_URL=" in result.output
    )


def test_debug_shows_the_traceback_and_keeps_the_exit_status() -> None:
    result = relay_command(
        "--debug", "status", dsn="postgresql://postgres@127.0.0.1:notaport/x"
    )

    assert result.returncode == 2
    assert result.stderr.startswith("Traceback (most recent call last):")
    assert result.stderr.splitlines()[-1] == (
        "relay: error: malformed database DSN: invalid port 'notaport'"
    )
