"""What a DBA reviews before production: relay migrate --status/--dry-run and
relay triggers status|install|uninstall, through the real CLI on real databases."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import psycopg
import pytest

from relay import migrations
from relay.output import cell, iso
from tests.support import relay_command, relay_environment, seed_world
from tests.test_migrations import SHIPPED

RECORDED = "SELECT version, name, checksum, applied_at FROM relay.schema_migrations"
RELAY_TRIGGERS = (
    "SELECT n.nspname, c.relname, t.tgname, pg_get_triggerdef(t.oid), t.tgenabled"
    " FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
    " JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE NOT t.tgisinternal AND t.tgname LIKE 'relay\\_%' ORDER BY 1, 2, 3"
)
CATALOGUE = (
    "SELECT schema_name, table_name, trigger_name, definition, enabled::text"
    " FROM relay.installed_triggers ORDER BY 1, 2, 3"
)
NEW_TODO = (
    "INSERT INTO todos (id, todo_list_id, title)"
    " VALUES ('tdo_{0}', 'lst_inbox', 'Written while {0}')"
)


def table_cells(stdout: str) -> list[list[str]]:
    """The cells of each row of a printed table, heading left out."""
    return [re.split(r" {2,}", line) for line in stdout.splitlines()[1:]]


def as_cells(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> list[list[str]]:
    return [[cell(row[key]) for key in keys] for row in rows]


def events_of(db: psycopg.Connection[Any], entity_id: str) -> list[tuple[Any, ...]]:
    return db.execute(
        "SELECT event FROM relay.events WHERE entity_id = %s", (entity_id,)
    ).fetchall()


def schema_exists(dsn: str, name: str) -> bool:
    with psycopg.connect(dsn) as connection:
        found = connection.execute(
            "SELECT 1 FROM pg_namespace WHERE nspname = %s", (name,)
        ).fetchone()
    return found is not None


# relay migrate --status


def test_status_of_an_empty_database_lists_every_migration_as_pending(
    empty_dsn: str,
) -> None:
    result = relay_command("migrate", "--status", "--json", dsn=empty_dsn)

    assert result.returncode == 3
    assert json.loads(result.stdout) == [
        {"version": int(label[:4]), "name": label[5:], "applied_at": None}
        | {"state": "pending"}
        for label in SHIPPED
    ]
    assert result.stderr.splitlines() == [
        f"Pending: {', '.join(SHIPPED)}; review the SQL with relay migrate"
        " --dry-run, then run relay migrate."
    ]
    assert not schema_exists(empty_dsn, "relay")


def test_status_of_a_migrated_database_is_up_to_date_in_table_and_json(
    db: psycopg.Connection[Any], dsn: str
) -> None:
    recorded = {row[0]: row for row in db.execute(RECORDED)}

    table = relay_command("migrate", "--status", dsn=dsn)
    as_json = relay_command("migrate", "--status", "--json", dsn=dsn)

    assert (table.returncode, as_json.returncode) == (0, 0)
    rows = json.loads(as_json.stdout)
    assert rows == [
        {
            "version": int(label[:4]),
            "name": label[5:],
            "applied_at": iso(recorded[int(label[:4])][3]),
            "state": "applied",
        }
        for label in SHIPPED
    ]
    assert table.stdout.splitlines()[0].split() == [
        "VERSION", "NAME", "APPLIED", "AT", "STATE"
    ]  # fmt: skip
    assert table_cells(table.stdout) == as_cells(
        rows, ["version", "name", "applied_at", "state"]
    )
    assert table.stderr == "The database is up to date.\n"


def test_status_names_pending_and_unknown_migrations_and_exits_3(
    db: psycopg.Connection[Any], dsn: str
) -> None:
    db.execute("DELETE FROM relay.schema_migrations WHERE version IN (10, 27)")
    db.execute(
        "INSERT INTO relay.schema_migrations (version, name, checksum)"
        " VALUES (9001, 'from_a_newer_relay', 'abc')"
    )

    result = relay_command("migrate", "--status", "--json", dsn=dsn)

    assert result.returncode == 3
    states = [(row["version"], row["state"]) for row in json.loads(result.stdout)]
    assert states == [
        (
            int(label[:4]),
            "pending" if label[:4] in ("0010", "0027") else "applied",
        )
        for label in SHIPPED
    ] + [(9001, "missing on disk")]
    assert result.stderr.splitlines() == [
        "Applied by another version of relay: 9001_from_a_newer_relay.",
        "Pending: 0010_retries_and_health, 0027_replays_and_sent_bodies; review"
        " the SQL with relay migrate --dry-run, then run relay migrate.",
    ]


def test_status_of_a_migration_changed_on_disk_is_a_failure(
    db: psycopg.Connection[Any], dsn: str
) -> None:
    db.execute(
        "UPDATE relay.schema_migrations SET checksum = 'before' WHERE version = 3"
    )

    result = relay_command("migrate", "--status", dsn=dsn)

    assert result.returncode == 1
    rows = {cells[1]: cells[3] for cells in table_cells(result.stdout)}
    assert rows["capture_triggers"] == "changed on disk"
    assert rows["relay_schema"] == "applied"
    assert result.stderr.splitlines() == [
        "relay: error: 0003_capture_triggers changed on disk after being applied;"
        " restore the files and add a new migration instead"
    ]


# relay migrate --dry-run


def test_dry_run_on_an_empty_database_prints_all_the_sql_and_changes_nothing(
    empty_dsn: str,
) -> None:
    result = relay_command("migrate", "--dry-run", dsn=empty_dsn)

    assert result.returncode == 0
    headers = re.findall(
        r"^-- ==== (\w+)\.sql \(sha256 (\w+)\) ====$", result.stdout, re.M
    )
    shipped = migrations.discover()
    assert headers == [(item.label, item.checksum) for item in shipped]
    for item in shipped:
        assert item.sql.rstrip("\n") in result.stdout
    assert migrations.BOOTSTRAP.strip() in result.stdout
    assert result.stderr == f"Would run: {', '.join(SHIPPED)}; nothing was changed.\n"
    assert not schema_exists(empty_dsn, "relay")


def test_dry_run_prints_exactly_the_pending_migrations_and_changes_nothing(
    db: psycopg.Connection[Any], dsn: str
) -> None:
    db.execute("DELETE FROM relay.schema_migrations WHERE version IN (21, 25)")
    before = db.execute(RECORDED + " ORDER BY version").fetchall()
    shipped = {item.version: item for item in migrations.discover()}

    result = relay_command("migrate", "--dry-run", dsn=dsn)
    as_json = relay_command("migrate", "--dry-run", "--json", dsn=dsn)

    assert (result.returncode, as_json.returncode) == (0, 0)
    assert result.stdout == (
        "-- relay migrate would run the migrations below in this order, each in\n"
        "-- its own transaction, and record each in relay.schema_migrations.\n"
        "-- Nothing has been changed.\n"
        f"\n-- ==== 0021_live_claims_index.sql (sha256 {shipped[21].checksum}) ====\n"
        f"{shipped[21].sql.rstrip()}\n"
        f"\n-- ==== 0025_drop_unused_due_index.sql (sha256 {shipped[25].checksum})"
        f" ====\n{shipped[25].sql.rstrip()}\n"
    )
    assert json.loads(as_json.stdout) == {
        "bootstrap": None,
        "migrations": [
            {
                "version": version,
                "name": shipped[version].name,
                "checksum": shipped[version].checksum,
                "sql": shipped[version].sql,
            }
            for version in (21, 25)
        ],
    }
    assert db.execute(RECORDED + " ORDER BY version").fetchall() == before


def test_dry_run_of_an_up_to_date_database_prints_nothing(dsn: str) -> None:
    result = relay_command("migrate", "--dry-run", dsn=dsn)

    assert (result.returncode, result.stdout) == (0, "")
    assert result.stderr == "The database is up to date; nothing would run.\n"


@pytest.mark.parametrize(
    ("arguments", "status", "line"),
    [
        (
            ["--status", "--dsn", "host=127.0.0.1 port=notaport"],
            2,
            "relay: error: malformed database DSN: invalid port 'notaport'",
        ),
        (
            ["--dry-run", "--dsn", "postgresql://postgres@127.0.0.1:1/app"],
            1,
            "relay: error: cannot reach PostgreSQL (app on 127.0.0.1:1):"
            ' connection failed: connection to server at "127.0.0.1", port 1'
            " failed: Connection refused",
        ),
    ],
)
def test_bad_or_unreachable_databases_are_one_line(
    arguments: list[str], status: int, line: str
) -> None:
    result = relay_command("migrate", *arguments)

    assert result.returncode == status
    assert result.stderr.splitlines()[0] == line
    assert len(result.stderr.splitlines()) <= 2  # libpq may add "Is the server..."


# relay triggers


def test_the_catalogue_holds_every_relay_trigger_as_pg_trigger_has_it(
    db: psycopg.Connection[Any],
) -> None:
    # The naming rule of 0030: every relay trigger is named relay_*, and a
    # migration that adds one records it; this catches one that forgot.
    installed = db.execute(RELAY_TRIGGERS).fetchall()
    kinds = db.execute(
        "SELECT kind, count(*), array_agg(DISTINCT enabled::text)"
        " FROM relay.installed_triggers GROUP BY 1 ORDER BY 1"
    ).fetchall()

    assert db.execute(CATALOGUE).fetchall() == installed
    assert kinds == [
        ("capture", 33, ["A"]),
        ("context", 6, ["A"]),
        ("guard", 11, ["A"]),
        ("internal", 4, ["A", "O"]),
    ]


def test_triggers_status_when_all_are_installed_exits_0_in_table_and_json(
    dsn: str,
) -> None:
    table = relay_command("triggers", "status", dsn=dsn)
    as_json = relay_command("triggers", "status", "--json", dsn=dsn)

    assert (table.returncode, as_json.returncode) == (0, 0)
    rows = json.loads(as_json.stdout)
    assert len(rows) == 54
    assert rows[0] == {
        "table": "public.comments",
        "trigger": "relay_capture_delete_trigger",
        "kind": "capture",
        "present": True,
        "enabled": "always",
        "as_installed": True,
        "difference": None,
    }
    assert {(row["kind"], row["enabled"], row["as_installed"]) for row in rows} == {
        ("capture", "always", True),
        ("context", "always", True),
        ("guard", "always", True),
        ("internal", "always", True),
        ("internal", "origin only", True),
    }
    keys = ["table", "trigger", "kind", "present", "enabled", "as_installed"]
    assert table_cells(table.stdout) == as_cells(rows, [*keys, "difference"])
    assert table.stderr == "All 54 relay triggers are as installed.\n"


def test_uninstall_stops_capture_and_install_brings_it_back(
    db: psycopg.Connection[Any], dsn: str
) -> None:
    seed_world(db)

    uninstalled = relay_command("triggers", "uninstall", "--yes", "--json", dsn=dsn)
    db.execute(NEW_TODO.format("uninstalled"))
    status_off = relay_command("triggers", "status", "--json", dsn=dsn)
    again = relay_command("triggers", "uninstall", "--yes", dsn=dsn)

    assert uninstalled.returncode == 0
    changed = json.loads(uninstalled.stdout)
    assert len(changed) == 39
    assert {row["action"] for row in changed} == {"disable"}
    assert "changes to the application's tables are NOT captured" in (
        uninstalled.stderr
    )
    assert "relay backfill" in uninstalled.stderr
    assert events_of(db, "tdo_uninstalled") == []
    assert status_off.returncode == 3
    off = [row for row in json.loads(status_off.stdout) if not row["as_installed"]]
    assert [(row["table"], row["trigger"]) for row in off] == [
        (row["table"], row["trigger"]) for row in changed
    ]
    assert {(row["present"], row["enabled"], row["difference"]) for row in off} == {
        (True, "disabled", "disabled, installed always")
    }
    assert ("public.todos", "relay_capture_insert_trigger") in {
        (row["table"], row["trigger"]) for row in off
    }
    assert status_off.stderr.splitlines() == [
        "39 of 54 relay triggers are not as the migrations installed them;"
        " relay triggers install puts them back."
    ]
    assert (again.returncode, again.stdout) == (0, "")
    assert again.stderr == "Nothing to do: capture is already uninstalled.\n"

    installed = relay_command("triggers", "install", dsn=dsn)
    db.execute(NEW_TODO.format("installed"))
    status_on = relay_command("triggers", "status", dsn=dsn)
    twice = relay_command("triggers", "install", dsn=dsn)

    assert installed.returncode == 0
    assert {cells[2] for cells in table_cells(installed.stdout)} == {"enable always"}
    assert len(table_cells(installed.stdout)) == 39
    assert events_of(db, "tdo_installed") == [("TODO_CREATED",)]
    assert status_on.returncode == 0
    assert twice.stderr == "Nothing to do: every relay trigger is as installed.\n"
    assert db.execute(RELAY_TRIGGERS).fetchall() == db.execute(CATALOGUE).fetchall()


def test_uninstall_without_a_terminal_or_yes_is_refused(
    db: psycopg.Connection[Any], dsn: str
) -> None:
    before = db.execute(RELAY_TRIGGERS).fetchall()

    result = subprocess.run(
        [sys.executable, "-m", "relay", "triggers", "uninstall"],
        env=relay_environment(dsn),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "relay: error: relay triggers uninstall stops capturing changes and asks"
        " first; without a terminal, add --yes"
    ]
    assert db.execute(RELAY_TRIGGERS).fetchall() == before


@pytest.mark.parametrize(("answer", "status", "disabled"), [("y", 0, 39), ("n", 1, 0)])
def test_uninstall_at_a_terminal_asks_first(
    db: psycopg.Connection[Any], dsn: str, answer: str, status: int, disabled: int
) -> None:
    # A pseudo-terminal as stdin, with the answer already typed.
    typed, terminal = pty.openpty()
    os.write(typed, f"{answer}\n".encode())
    try:
        result = subprocess.run(
            [sys.executable, "-m", "relay", "triggers", "uninstall"],
            env=relay_environment(dsn),
            stdin=terminal,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(typed)
        os.close(terminal)

    assert result.returncode == status
    assert result.stderr.splitlines()[0].startswith(
        "This disables 39 triggers on public.comments, public.companies,"
    )
    assert "Uninstall capture? [y/N]: " in result.stderr
    [count] = db.execute(
        "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'relay\\_%'"
        " AND tgenabled = 'D'"
    ).fetchone() or (None,)
    assert count == disabled


def test_install_recreates_dropped_and_altered_triggers_from_the_catalogue(
    db: psycopg.Connection[Any], dsn: str
) -> None:
    seed_world(db)
    db.execute("DROP TRIGGER relay_capture_insert_trigger ON todos")
    db.execute(
        "DROP TRIGGER relay_capture_update_trigger ON comments;"
        " CREATE TRIGGER relay_capture_update_trigger AFTER UPDATE ON comments"
        " FOR EACH STATEMENT EXECUTE FUNCTION relay.refuse_truncate_v1()"
    )
    db.execute("ALTER TABLE relay.events DISABLE TRIGGER relay_armed_doorbell_trigger")
    [definition] = db.execute(
        "SELECT definition FROM relay.installed_triggers WHERE table_name = 'todos'"
        " AND trigger_name = 'relay_capture_insert_trigger'"
    ).fetchone() or (None,)
    [altered] = db.execute(
        "SELECT definition FROM relay.installed_triggers WHERE table_name ="
        " 'comments' AND trigger_name = 'relay_capture_update_trigger'"
    ).fetchone() or (None,)

    before = db.execute(RELAY_TRIGGERS).fetchall()
    status = relay_command("triggers", "status", "--json", dsn=dsn)
    dry_run = relay_command("triggers", "install", "--dry-run", dsn=dsn)
    after_dry_run = db.execute(RELAY_TRIGGERS).fetchall()
    installed = relay_command("triggers", "install", dsn=dsn)
    db.execute(NEW_TODO.format("restored"))

    assert status.returncode == 3
    assert [
        (row["table"], row["trigger"], row["present"], row["difference"])
        for row in json.loads(status.stdout)
        if not row["as_installed"]
    ] == [
        ("public.comments", "relay_capture_update_trigger", True,
         "definition differs"),
        ("public.todos", "relay_capture_insert_trigger", False, "missing"),
        ("relay.events", "relay_armed_doorbell_trigger", True,
         "disabled, installed always"),
    ]  # fmt: skip
    assert dry_run.stdout == (
        "BEGIN;\n"
        "SET LOCAL lock_timeout = '5s';\n"
        "SET LOCAL search_path = pg_catalog, pg_temp;\n"
        'DROP TRIGGER "relay_capture_update_trigger" ON "public"."comments";\n'
        f"{altered};\n"
        'ALTER TABLE "public"."comments" ENABLE ALWAYS TRIGGER'
        ' "relay_capture_update_trigger";\n'
        f"{definition};\n"
        'ALTER TABLE "public"."todos" ENABLE ALWAYS TRIGGER'
        ' "relay_capture_insert_trigger";\n'
        'ALTER TABLE "relay"."events" ENABLE ALWAYS TRIGGER'
        ' "relay_armed_doorbell_trigger";\n'
        "COMMIT;\n"
    )
    assert after_dry_run == before
    assert installed.returncode == 0
    assert db.execute(RELAY_TRIGGERS).fetchall() == db.execute(CATALOGUE).fetchall()
    assert events_of(db, "tdo_restored") == [("TODO_CREATED",)]


def test_uninstall_dry_run_prints_the_sql_and_changes_nothing(
    db: psycopg.Connection[Any], dsn: str
) -> None:
    before = db.execute(RELAY_TRIGGERS).fetchall()

    result = relay_command("triggers", "uninstall", "--dry-run", dsn=dsn)

    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[:3] == [
        "BEGIN;",
        "SET LOCAL lock_timeout = '5s';",
        "SET LOCAL search_path = pg_catalog, pg_temp;",
    ]
    assert lines[3] == (
        'ALTER TABLE "public"."comments" DISABLE TRIGGER'
        ' "relay_capture_delete_trigger";'
    )
    assert len(lines) == 3 + 39 + 1 and lines[-1] == "COMMIT;"
    assert result.stderr == "39 statements would run; nothing was changed.\n"
    assert db.execute(RELAY_TRIGGERS).fetchall() == before


def test_triggers_status_on_a_database_without_the_catalogue_says_migrate(
    empty_dsn: str,
) -> None:
    result = relay_command("triggers", "status", dsn=empty_dsn)

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "relay: error: this database has no catalogue of relay's triggers"
        " (migration 0030_trigger_catalogue); run relay migrate first"
    ]
