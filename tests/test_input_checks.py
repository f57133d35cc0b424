"""Input checks that need no database: webhook fields and relay settings."""

from __future__ import annotations

from typing import Any

import pytest

from relay.errors import ConfigError
from relay.settings import Settings
from relay.webhooks import WebhookChanges, check_name, check_secret, check_url

SECRET_RULE = "a secret must be 16 to 128 printable ASCII characters without spaces"
WHSEC_RULE = (
    "a secret starting with whsec_ must continue with the base64 of at least 16 bytes"
)


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("", "a secret must not be empty; leave --secret out to generate one"),
        ("   ", "a secret must not be empty; leave --secret out to generate one"),
        ("fifteen-chars!!", SECRET_RULE),
        ("x" * 129, SECRET_RULE),
        ("ünïcødé-secret-value", SECRET_RULE),
        ("with a space in it!!", SECRET_RULE),
        ("tab\tinside-the-secret", SECRET_RULE),
        ("whsec_!!!notbase64!!!", WHSEC_RULE),
        ("whsec_c2hvcnQgYnV0IGxvbmc=", WHSEC_RULE),  # 14 bytes
    ],
)
def test_a_secret_that_would_sign_badly_or_weakly_is_refused(
    secret: str, message: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        check_secret(secret)

    assert str(refused.value) == message


@pytest.mark.parametrize(
    "secret", ["sixteen-chars!!!", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "x" * 128]
)
def test_a_good_secret_is_kept_as_given(secret: str) -> None:
    assert check_secret(secret) == secret


def test_no_secret_means_a_generated_one() -> None:
    assert check_secret(None).startswith("whsec_")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://example.org:0/hook", "port 0 cannot receive requests"),
        ("http://example.org:99999/", "Port out of range 0-65535"),
        ("https:// example.org/", "it must not contain spaces or control characters"),
        ("http://a.example/\x01", "it must not contain spaces or control characters"),
        ("mailto:someone@example.org", "it must start with http:// or https://"),
        ("http:///hook", "it needs a host"),
        ("http://[::1/x", "Invalid IPv6 URL"),
        ("http://[::1]]/", "Invalid IPv6 URL"),
        ("http://[zz]/", "'zz' does not appear to be an IPv4 or IPv6 address"),
        (
            "https://a.example\\@b.example/",
            "Invalid URL: backslash ('\\') is not allowed in the authority"
            " component per RFC 3986.",
        ),
        ("http://a..b/", "'a..b' is not a valid host name"),
        ("http://%/", "'%' is not a valid host name"),
        ("http://-/x", "'-' is not a valid host name"),
        ("http://a.example:/x", "a ':' must be followed by a port number"),
    ],
)
def test_a_url_that_cannot_receive_is_refused(url: str, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        check_url(url)

    assert str(refused.value) == f"malformed URL {url!r}: {message}"


@pytest.mark.parametrize(
    ("url", "stored"),
    [
        ("HTTP://Example.ORG/Hook?A=1", "http://Example.ORG/Hook?A=1"),
        ("Https://example.org", "https://example.org"),
        ("https://example.org/x", "https://example.org/x"),
        ("https://例え.jp/フック", "https://例え.jp/フック"),
        ("http://[::1]:8080/x", "http://[::1]:8080/x"),
        ("http://my_host.internal./x", "http://my_host.internal./x"),
    ],
)
def test_a_url_scheme_in_capitals_is_stored_in_lower_case(
    url: str, stored: str
) -> None:
    assert check_url(url) == stored


@pytest.mark.parametrize(
    "name", ["two\nlines", "bell\a", "x" * 201, "\u200b\u200b" + "\x00"]
)
def test_a_name_that_would_break_a_listing_is_refused(name: str) -> None:
    with pytest.raises(ConfigError) as refused:
        check_name(name)

    assert str(refused.value) == "a webhook name is at most 200 printable characters"


def test_a_unicode_name_is_fine() -> None:
    assert check_name("CRM sync · Ventes ✓") == "CRM sync · Ventes ✓"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            WebhookChanges(),
            "nothing to change; relay webhooks update --help lists what can",
        ),
        (
            WebhookChanges(tag_ids=["tag_urgent"], clear=["lists", "tags"]),
            "--clear tags and new tags contradict each other",
        ),
        (
            WebhookChanges(clear=["labels"]),
            "cannot clear 'labels'; choose from events, projects, lists, tags,"
            " assignees, fields",
        ),
    ],
)
def test_an_update_that_says_nothing_or_contradicts_itself_is_refused(
    changes: WebhookChanges, message: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        changes.given_filters()

    assert str(refused.value) == message


def test_an_update_replaces_given_filters_and_empties_cleared_ones() -> None:
    changes = WebhookChanges(
        name="New", todo_list_ids=("lst_a", "lst_b"), clear=("fields", "fields")
    )

    assert changes.given_filters() == {
        "todo_list_ids": ["lst_a", "lst_b"],
        "changed_fields": [],
    }


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"poll_interval": 0.0}, "--poll-interval must be between 0.01 and 3600"),
        ({"poll_interval": -1.0}, "--poll-interval must be between 0.01 and 3600"),
        ({"request_timeout": 0.0}, "--request-timeout must be between 0.1 and 3600"),
        ({"slow_down_delay": -5.0}, "--slow-down-delay must be between 0 and 86400"),
        ({"lease": float("inf")}, "--lease must be between 1 and 604800"),
        ({"shutdown_grace": -1.0}, "--shutdown-grace must be between 0 and 3600"),
        (
            {"max_retry_after": float("nan")},
            "--max-retry-after must be between 0 and 604800",
        ),
        ({"disable_after": -1.0}, "--disable-after must be between 0 and 7776000"),
        ({"retry_jitter": 0.9}, "--retry-jitter must be between 0 and 0.5, not 0.9"),
        (
            {"retry_schedule": (5.0, float("inf"))},
            "--retry-schedule steps must be durations of 0 or more",
        ),
        (
            {"lease": 10.0, "request_timeout": 10.0},
            "--lease must be longer than --request-timeout",
        ),
    ],
)
def test_settings_out_of_range_are_refused(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        Settings(dsn="postgresql://localhost/app", **overrides)

    assert str(refused.value).startswith(message)
