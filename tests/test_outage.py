"""One warning per database outage, whichever part of the relay meets it first."""

from __future__ import annotations

import logging

import pytest

from relay import outage as outage_module
from relay.outage import Outage

LISTENER = logging.getLogger("relay.listener")
SERVICE = logging.getLogger("relay.service")
RECORDER = logging.getLogger("relay.recorder")


def lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str, str]]:
    return [(r.name, r.levelname, r.getMessage()) for r in caplog.records]


def test_an_outage_warns_once_and_ends_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    outage = Outage()
    outage.answered(SERVICE)  # no outage: nothing to say
    outage.failed(LISTENER, "Listening connection lost; reconnecting in %.1f s.", 0.5)
    outage.failed(SERVICE, "Database unavailable; reconnecting with backoff.")
    outage.failed(RECORDER, "Could not record %d attempts; trying again.", 3)
    outage.answered(SERVICE)
    outage.answered(SERVICE)

    assert lines(caplog) == [
        (
            "relay.listener",
            "WARNING",
            "Listening connection lost; reconnecting in 0.5 s.",
        ),
        ("relay.service", "DEBUG", "Database unavailable; reconnecting with backoff."),
        ("relay.recorder", "DEBUG", "Could not record 3 attempts; trying again."),
        ("relay.service", "INFO", "Database available again; catching up."),
    ]
    assert caplog.records[3].failures == 3  # type: ignore[attr-defined]


def test_a_failure_just_after_the_end_belongs_to_it_a_later_one_is_new(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG)
    now = [1000.0]
    monkeypatch.setattr(outage_module.time, "monotonic", lambda: now[0])
    outage = Outage()
    outage.failed(SERVICE, "away")
    outage.answered(SERVICE)
    now[0] += outage_module.SETTLING_SECONDS - 1
    outage.failed(RECORDER, "stale connection")
    outage.answered(SERVICE)
    now[0] += outage_module.SETTLING_SECONDS + 1
    outage.failed(SERVICE, "away again")

    assert [(name, level) for name, level, _ in lines(caplog)] == [
        ("relay.service", "WARNING"),
        ("relay.service", "INFO"),
        ("relay.recorder", "DEBUG"),
        ("relay.service", "INFO"),
        ("relay.service", "WARNING"),
    ]
