"""`relay demo` on its own throwaway cluster: the main job, and nothing left behind."""

from __future__ import annotations

import asyncio
import glob
import os
import signal
import sys
import tempfile

import pytest

from relay.demo import STEPS
from relay.events import CAPTURED_EVENTS
from tests.support import relay_command

DEMO_EVENTS = [event for event, _, _ in STEPS]


def postgres_processes() -> set[str]:
    """Command lines of running postgres servers (the machine's own included)."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as command_line:
                arguments = command_line.read().split(b"\0")
        except OSError:
            continue
        if arguments and arguments[0].endswith(b"postgres"):
            found.add(b" ".join(arguments).decode(errors="replace"))
    return found


def test_the_demo_delivers_the_14_events_and_leaves_nothing_behind() -> None:
    temporary = tempfile.gettempdir()
    directories_before = set(glob.glob(os.path.join(temporary, "relay-pg-*")))
    servers_before = postgres_processes()

    finished = relay_command("demo", timeout=120)

    assert finished.returncode == 0, finished.stderr
    rows = [line.split() for line in finished.stdout.splitlines()]
    delivered = [row[1] for row in rows if len(row) == 5 and row[2] == "verified"]
    assert delivered == DEMO_EVENTS
    assert "14 events delivered, 14 signatures verified" in finished.stdout
    assert "Stopped the throwaway cluster" in finished.stderr
    directories_after = set(glob.glob(os.path.join(temporary, "relay-pg-*")))
    assert directories_after == directories_before
    assert postgres_processes() <= servers_before


def test_the_demo_covers_every_captured_event() -> None:
    assert sorted(DEMO_EVENTS) == sorted(CAPTURED_EVENTS)


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize(
    "moment", ["Started a throwaway PostgreSQL cluster", "The relay is listening."]
)
async def test_a_signal_stops_the_demo_and_everything_it_started(
    signal_number: signal.Signals, moment: str
) -> None:
    temporary = tempfile.gettempdir()
    directories_before = set(glob.glob(os.path.join(temporary, "relay-pg-*")))
    servers_before = postgres_processes()
    environment = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    demo = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relay",
        "demo",
        env=environment,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert demo.stderr is not None

    async with asyncio.timeout(60):
        async for line in demo.stderr:
            if line.decode().startswith(moment):
                break
        demo.send_signal(signal_number)
        rest = (await demo.stderr.read()).decode()
        status = await demo.wait()

    assert status == 1
    assert rest.splitlines()[-2:] == [
        "Stopped the throwaway cluster and removed its directory.",
        "relay: error: interrupted; the demo stopped what it had started",
    ]
    directories_after = set(glob.glob(os.path.join(temporary, "relay-pg-*")))
    assert directories_after == directories_before
    assert postgres_processes() <= servers_before
