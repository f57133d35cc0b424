"""The relay command as operators run it: a real process, exit status and output."""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import psycopg
import pytest

from tests.support import change, relay_command, seed_world

NO_FILTERS = {
    "events": [],
    "projectIds": [],
    "todoListIds": [],
    "tagIds": [],
    "assigneeIds": [],
    "changedFields": [],
}
# Things in Globex and in Sales that a filter may name by mistake.
MORE_TO_NAME = """
INSERT INTO todo_lists (id, project_id, title) VALUES ('lst_globex', 'prj_globex', 'G');
INSERT INTO tags (id, project_id, title)
VALUES ('tag_globex', 'prj_globex', 'G'), ('tag_hot', 'prj_sales', 'Hot');
INSERT INTO custom_fields (id, project_id, name)
VALUES ('cfd_globex', 'prj_globex', 'G');
"""
NEW_TODO = (
    "INSERT INTO todos (id, todo_list_id, title) VALUES ('tdo_a', 'lst_inbox', 'a')"
)


def create_webhook(dsn: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    common = ["--name", "CRM sync", "--created-by", "usr_alice"]
    return relay_command("webhooks", "create", *common, *arguments, dsn=dsn)


def webhook_row(db: psycopg.Connection[Any], webhook_id: str) -> Any:
    """The webhook as payloads show it, its secret and whether it is enabled."""
    return db.execute(
        "SELECT relay.webhook_json_v2(w), w.secret, w.enabled"
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
            "todoListIds": [],
            "tagIds": [],
            "assigneeIds": [],
            "changedFields": [],
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
    assert printed["metadata"] == NO_FILTERS
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
        "ID                         STATUS    ENABLED NAME                 URL"
        "                          FILTERS",
        f"{created['id']}    HEALTHY   yes     CRM sync             "
        "https://crm.example.org/hook -",
    ]
    secret = created.pop("secret")
    assert json.loads(shown.stdout) == {
        **created,
        "deliveries": {"pending": 1, "delivered": 0},
    }
    assert secret not in listed.stdout + listed.stderr + shown.stdout + shown.stderr


def test_a_password_in_the_url_is_stored_and_sent_but_never_printed(
    db: psycopg.Connection[Any], dsn: str
) -> None:
    seed_world(db)
    url = "https://bob:hunter2pw@crm.example.org/hook"

    created = create_webhook(dsn, "--url", url)
    webhook_id = json.loads(created.stdout)["id"]
    change(db, NEW_TODO)
    db.execute(
        "INSERT INTO relay.deliveries (event_id, webhook_id)"
        " SELECT id, %s FROM relay.events",
        (webhook_id,),
    )
    [(delivery_id,)] = db.execute("SELECT id FROM relay.deliveries").fetchall()
    printed = [
        created,
        relay_command("webhooks", "list", dsn=dsn),
        relay_command("webhooks", "show", webhook_id, dsn=dsn),
        relay_command("webhooks", "disable", webhook_id, dsn=dsn),
        relay_command("deliveries", "show", str(delivery_id), "--json", dsn=dsn),
    ]

    assert [result.returncode for result in printed] == [0] * 5
    assert json.loads(printed[2].stdout)["url"] == (
        "https://bob:****@crm.example.org/hook"
    )
    assert all("hunter2pw" not in r.stdout + r.stderr for r in printed)
    # The receiver still gets its URL whole, in the request and the payload.
    assert db.execute("SELECT url FROM relay.webhooks").fetchone() == (url,)


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


def test_create_takes_filters_once_each_in_order_and_show_displays_them(
    db: psycopg.Connection[Any], dsn: str
) -> None:
    seed_world(db)
    filters = [
        *("--list", "lst_later", "--list", "lst_inbox", "--list", "lst_later"),
        *("--tag", "tag_urgent", "--assignee", "usr_carol", "--assignee", "usr_alice"),
        *("--field", "cfd_budget", "--field", "title", "--field", "cfd_budget"),
    ]

    result = create_webhook(dsn, "--url", "https://x.test/h", *filters)
    webhook_id = json.loads(result.stdout)["id"]
    shown = relay_command("webhooks", "show", webhook_id, dsn=dsn)

    assert result.returncode == 0
    assert json.loads(shown.stdout)["metadata"] == {
        **NO_FILTERS,
        "todoListIds": ["lst_later", "lst_inbox"],
        "tagIds": ["tag_urgent"],
        "assigneeIds": ["usr_carol", "usr_alice"],
        "changedFields": ["cfd_budget", "title"],
    }


def update_webhook(
    dsn: str, webhook_id: str, *arguments: str
) -> subprocess.CompletedProcess[str]:
    return relay_command("webhooks", "update", webhook_id, *arguments, dsn=dsn)


def test_update_replaces_and_clears_filters_and_never_prints_the_secret(
    db: psycopg.Connection[Any], dsn: str
) -> None:
    seed_world(db)
    created = json.loads(
        create_webhook(
            dsn,
            *("--url", "https://x.test/h", "--event", "TODO_CREATED"),
            *("--project", "prj_ops", "--list", "lst_inbox", "--tag", "tag_urgent"),
            *("--assignee", "usr_alice", "--field", "title"),
        ).stdout
    )
    webhook_id, secret = created["id"], created["secret"]

    replaced = update_webhook(
        dsn,
        webhook_id,
        *("--name", "Renamed", "--list", "lst_later", "--list", "lst_inbox"),
        *("--field", "cfd_budget", "--field", "done", "--field", "cfd_budget"),
    )
    cleared = update_webhook(
        dsn,
        webhook_id,
        *("--url", "https://y.test/h", "--clear", "events", "--clear", "tags"),
        *("--clear", "assignees", "--clear", "projects"),
    )
    shown = relay_command("webhooks", "show", webhook_id, dsn=dsn)
    listed = relay_command("webhooks", "list", dsn=dsn)

    assert (replaced.returncode, cleared.returncode) == (0, 0)
    assert json.loads(replaced.stdout)["name"] == "Renamed"
    assert json.loads(replaced.stdout)["metadata"] == {
        "events": ["TODO_CREATED"],
        "projectIds": ["prj_ops"],
        "todoListIds": ["lst_later", "lst_inbox"],
        "tagIds": ["tag_urgent"],
        "assigneeIds": ["usr_alice"],
        "changedFields": ["cfd_budget", "done"],
    }
    after = webhook_row(db, webhook_id)
    assert json.loads(cleared.stdout) == after[0]
    assert after[0]["url"] == "https://y.test/h"
    assert after[0]["metadata"] == {
        **NO_FILTERS,
        "todoListIds": ["lst_later", "lst_inbox"],
        "changedFields": ["cfd_budget", "done"],
    }
    assert after[0]["updatedAt"] > created["updatedAt"]
    assert after[1] == secret
    assert json.loads(shown.stdout) == {
        **after[0],
        "deliveries": {"pending": 0, "delivered": 0},
    }
    assert listed.stdout.splitlines()[1] == (
        f"{webhook_id}    HEALTHY   yes     Renamed              https://y.test/h"
        " lists=2 fields=2"
    )
    everything = [replaced, cleared, shown, listed]
    assert all(secret not in run.stdout + run.stderr for run in everything)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ([], "nothing to change; relay webhooks update --help lists what can"),
        (
            ["--list", "lst_pipeline"],
            "list 'lst_pipeline' is in project 'prj_sales', which the webhook does not"
            " cover",
        ),
        (
            ["--project", "prj_sales"],
            "list 'lst_inbox' is in project 'prj_ops', which the webhook does not"
            " cover",
        ),
        (
            ["--tag", "tag_urgent", "--clear", "tags"],
            "--clear tags and new tags contradict each other",
        ),
        (["--field", "colour"], "unknown field 'colour'; use a custom field id or one"),
        (
            ["--assignee", "usr_bob"],
            "assignee 'usr_bob' is not in the creator's company",
        ),
        (
            ["--event", "WEBHOOK_HEALTH_CHECK"],
            "WEBHOOK_HEALTH_CHECK cannot be subscribed to",
        ),
        (
            ["--url", "ftp://x"],
            "malformed URL 'ftp://x': it must start with http:// or https://",
        ),
        (["--name", " "], "a webhook needs a non-empty name"),
    ],
)
def test_update_refuses_bad_input_and_changes_nothing(
    db: psycopg.Connection[Any], dsn: str, arguments: list[str], message: str
) -> None:
    seed_world(db)
    scoped = ["--project", "prj_ops", "--list", "lst_inbox"]
    created = create_webhook(dsn, "--url", "https://x.test/h", *scoped)
    webhook_id = json.loads(created.stdout)["id"]
    before = webhook_row(db, webhook_id)

    result = update_webhook(dsn, webhook_id, *arguments)

    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(f"relay: error: {message}")
    assert webhook_row(db, webhook_id) == before


def test_update_of_an_unknown_webhook_is_one_line_and_status_2(dsn: str) -> None:
    result = update_webhook(dsn, "wh_missing", "--name", "New name")

    assert result.returncode == 2
    assert result.stderr.splitlines() == ["relay: error: unknown webhook 'wh_missing'"]


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
            "malformed URL 'http://': it needs a host",
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
        (["--list", "lst_nowhere"], "unknown list 'lst_nowhere'"),
        (["--list", "lst_globex"], "list 'lst_globex' is not in the creator's company"),
        (
            ["--created-by", "usr_carol", "--list", "lst_inbox"],
            "user 'usr_carol' is not a member of project 'prj_ops' of list 'lst_inbox'",
        ),
        (
            ["--project", "prj_ops", "--list", "lst_inbox", "--list", "lst_pipeline"],
            "list 'lst_pipeline' is in project 'prj_sales', which the webhook does not"
            " cover",
        ),
        (["--tag", "tag_nowhere"], "unknown tag 'tag_nowhere'"),
        (["--tag", "tag_globex"], "tag 'tag_globex' is not in the creator's company"),
        (
            ["--project", "prj_ops", "--tag", "tag_hot"],
            "tag 'tag_hot' is in project 'prj_sales', which the webhook does not cover",
        ),
        (["--assignee", "usr_nobody"], "unknown assignee 'usr_nobody'"),
        (
            ["--assignee", "usr_carol", "--assignee", "usr_bob"],
            "assignee 'usr_bob' is not in the creator's company",
        ),
        (
            ["--field", "title", "--field", "titel"],
            "unknown field 'titel'; use a custom field id or one of title, todoListId,"
            " done, duedAt, html, text, color, name, type, todoUsers, todoTags,"
            " todoChecklistItemUsers",
        ),
        (["--field", "cfd_nowhere"], "unknown custom field 'cfd_nowhere'"),
        (
            ["--field", "cfd_globex"],
            "custom field 'cfd_globex' is not in the creator's company",
        ),
    ],
)
def test_create_refuses_bad_input_and_writes_nothing(
    db: psycopg.Connection[Any], dsn: str, arguments: list[str], message: str
) -> None:
    seed_world(db)
    db.execute(MORE_TO_NAME)
    # Later options win, so each case overrides only what it makes wrong.
    valid = ["--url", "https://crm.example.org/hook"]

    result = create_webhook(dsn, *valid, *arguments)

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [f"relay: error: {message}"]
    assert db.execute("SELECT count(*) FROM relay.webhooks").fetchone() == (0,)
