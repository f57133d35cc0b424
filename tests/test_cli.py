"""The relay command as operators run it: a real process, exit status and output."""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import psycopg
import pytest

from tests.support import change, relay_command, seed_world

UNREACHABLE = "postgresql://postgres@127.0.0.1:1/postgres"
NO_DATABASE = (
    "relay: error: no database given: pass --dsn or set DATABASE_URL "
    "(for example postgresql://postgres@127.0.0.1:5432/app)"
)
NEW_TODO = (
    "INSERT INTO todos (id, todo_list_id, title) VALUES ('tdo_a', 'lst_inbox', 'a')"
)


def create_webhook(dsn: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    common = ["--name", "CRM sync", "--created-by", "usr_alice"]
    return relay_command("webhooks", "create", *common, *arguments, dsn=dsn)


def webhook_row(db: psycopg.Connection[Any], webhook_id: str) -> Any:
    """The webhook as payloads show it, its secret and whether it is enabled."""
    return db.execute(
        "SELECT relay.webhook_json_v1(w), w.secret, w.enabled"
        " FROM relay.webhooks w WHERE w.id = %s",
        (webhook_id,),
    ).fetchone()


def test_create_prints_the_webhook_with_a_generated_secret(
    db: psycopg.Connection[Any], dsn: str
) -> None:
    seed_world(db)
    url = ["--url", "https://crm.example.org/hook"]
    events = ["--event", "TODO_CREATED", "--event", "TODO_DELETED"]

    result = create_webhook(dsn, *url, *events, "--project", "prj_ops")

    assert result.returncode == 0
    printed = json.loads(result.stdout)
    stored, secret, enabled = webhook_row(db, printed["id"])
    assert printed == {
        "id": stored["id"],
        "uid": stored["uid"],
        "name": "CRM sync",
        "url": "https://crm.example.org/hook",
        "status": "HEALTHY",
        "enabled": True,
        "metadata": {
            "events": ["TODO_CREATED", "TODO_DELETED"],
            "projectIds": ["prj_ops"],
        },
        "createdById": "usr_alice",
        "createdAt": stored["createdAt"],
        "updatedAt": stored["createdAt"],
        "secret": secret,
    }
    assert printed == {**stored, "secret": secret}
    assert re.fullmatch(r"wh_[0-9a-f]{20}", stored["id"])
    assert re.fullmatch(r"[0-9a-f]{32}", stored["uid"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stored["createdAt"])
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/]{32}", secret)
    assert enabled is True
    assert result.stderr.splitlines()[-1] == (
        "Store the secret now: it is not shown again."
    )


def test_create_uses_the_secret_given(db: psycopg.Connection[Any], dsn: str) -> None:
    seed_world(db)

    result = create_webhook(
        dsn, "--url", "http://127.0.0.1:8080/in", "--secret", "s3cret-of-the-crm"
    )

    assert result.returncode == 0
    printed = json.loads(result.stdout)
    assert printed.pop("secret") == "s3cret-of-the-crm"
    assert printed["metadata"] == {"events": [], "projectIds": []}
    assert webhook_row(db, printed["id"]) == (printed, "s3cret-of-the-crm", True)


def test_list_and_show_never_print_the_secret(
    db: psycopg.Connection[Any], dsn: str
) -> None:
    seed_world(db)
    created = json.loads(
        create_webhook(dsn, "--url", "https://crm.example.org/hook").stdout
    )
    change(db, NEW_TODO)
    db.execute(
        "INSERT INTO relay.deliveries (event_id, webhook_id)"
        " SELECT id, %s FROM relay.events",
        (created["id"],),
    )

    listed = relay_command("webhooks", "list", dsn=dsn)
    shown = relay_command("webhooks", "show", created["id"], dsn=dsn)

    assert (listed.returncode, shown.returncode) == (0, 0)
    assert listed.stdout.splitlines() == [
        "ID                         STATUS    ENABLED NAME                 URL",
        f"{created['id']}    HEALTHY   yes     CRM sync             "
        "https://crm.example.org/hook",
    ]
    secret = created.pop("secret")
    assert json.loads(shown.stdout) == {
        **created,
        "deliveries": {"pending": 1, "delivered": 0},
    }
    assert secret not in listed.stdout + listed.stderr + shown.stdout + shown.stderr


def test_disable_enable_and_delete_change_the_row(
    db: psycopg.Connection[Any], dsn: str
) -> None:
    seed_world(db)
    created = json.loads(create_webhook(dsn, "--url", "https://x.test/h").stdout)
    webhook_id = created["id"]
    change(db, NEW_TODO)
    db.execute(
        "INSERT INTO relay.deliveries (event_id, webhook_id)"
        " SELECT id, %s FROM relay.events",
        (webhook_id,),
    )

    disabled = relay_command("webhooks", "disable", webhook_id, dsn=dsn)
    after_disable = webhook_row(db, webhook_id)
    enabled = relay_command("webhooks", "enable", webhook_id, dsn=dsn)
    after_enable = webhook_row(db, webhook_id)
    deleted = relay_command("webhooks", "delete", webhook_id, dsn=dsn)

    assert disabled.returncode == 0
    assert json.loads(disabled.stdout) == after_disable[0]
    assert after_disable[0]["enabled"] is False
    assert after_disable[2] is False
    assert enabled.returncode == 0
    assert json.loads(enabled.stdout) == after_enable[0]
    assert after_enable[2] is True
    assert deleted.returncode == 0
    assert deleted.stderr.splitlines()[-1] == f"Deleted {webhook_id}."
    assert webhook_row(db, webhook_id) is None
    assert db.execute("SELECT count(*) FROM relay.deliveries").fetchone() == (0,)


@pytest.mark.parametrize("command", ["show", "disable", "enable", "delete"])
def test_an_unknown_webhook_id_is_one_line_and_status_2(
    db: psycopg.Connection[Any], dsn: str, command: str
) -> None:
    result = relay_command("webhooks", command, "wh_missing", dsn=dsn)

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == ["relay: error: unknown webhook 'wh_missing'"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["--event", "TODO_CREATED", "--event", "TODO_EXPLODED"],
            "unknown event name 'TODO_EXPLODED'; the README lists the 37 events",
        ),
        (
            ["--event", "WEBHOOK_HEALTH_CHECK"],
            "WEBHOOK_HEALTH_CHECK cannot be subscribed to",
        ),
        (
            ["--url", "not a url"],
            "malformed URL 'not a url': it must start with http:// or https://",
        ),
        (
            ["--url", "ftp://x"],
            "malformed URL 'ftp://x': it must start with http:// or https://",
        ),
        (
            ["--url", "http://"],
            "malformed URL 'http://': it needs a host and no spaces",
        ),
        (["--created-by", "usr_nobody"], "unknown user 'usr_nobody'"),
        (["--project", "prj_nowhere"], "unknown project 'prj_nowhere'"),
        (
            ["--project", "prj_ops", "--project", "prj_globex"],
            "project 'prj_globex' is not in the creator's company",
        ),
        (
            ["--created-by", "usr_carol", "--project", "prj_ops"],
            "user 'usr_carol' is not a member of project 'prj_ops'",
        ),
        (["--name", " "], "a webhook needs a non-empty name"),
        (
            ["--secret", "short"],
            "a secret must be 16 to 128 printable ASCII characters without spaces",
        ),
        (
            ["--secret", ""],
            "a secret must not be empty; leave --secret out to generate one",
        ),
    ],
)
def test_create_refuses_bad_input_and_writes_nothing(
    db: psycopg.Connection[Any], dsn: str, arguments: list[str], message: str
) -> None:
    seed_world(db)
    # Later options win, so each case overrides only what it makes wrong.
    valid = ["--url", "https://crm.example.org/hook"]

    result = create_webhook(dsn, *valid, *arguments)

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [f"relay: error: {message}"]
    assert db.execute("SELECT count(*) FROM relay.webhooks").fetchone() == (0,)


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
    assert [version for version, _ in before] == [1, 2, 3, 4, 10]


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
