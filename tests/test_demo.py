"""`relay demo` on its own throwaway cluster: the main job, and nothing left behind.

Each demo here runs with TMPDIR set to a folder of its own, so that what it leaves
behind (a cluster directory, a server still running from it) is told apart from
anything else on the machine.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.demo_steps import STEPS
from relay.events import CAPTURED_EVENTS
from tests.support import relay_command, relay_environment

DEMO_EVENTS = [step.event for step in STEPS]


@pytest.fixture
def demo_tmpdir() -> Iterator[Path]:
    """A TMPDIR for one demo, which the postgres OS user may traverse."""
    folder = Path(tempfile.mkdtemp(prefix="relay-demo-test-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def servers_running_in(folder: Path) -> list[str]:
    """Command lines of processes whose arguments name ``folder``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as command_line:
                arguments = command_line.read().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(folder) in arguments:
            found.append(arguments)
    return found


def test_the_demo_delivers_the_event_of_each_step_and_leaves_nothing_behind(
    demo_tmpdir: Path,
) -> None:
    finished = relay_command("demo", timeout=120, TMPDIR=str(demo_tmpdir))

    assert finished.returncode == 0, finished.stderr
    rows = [line.split() for line in finished.stdout.splitlines()]
    delivered = [row[1] for row in rows if len(row) == 5 and row[2] == "verified"]
    assert delivered == DEMO_EVENTS
    count = len(STEPS)
    assert f"{count} events delivered, {count} signatures verified" in finished.stdout
    assert "Stopped the throwaway cluster" in finished.stderr
    assert list(demo_tmpdir.iterdir()) == []
    assert servers_running_in(demo_tmpdir) == []


def test_the_demo_covers_every_captured_event() -> None:
    assert sorted(DEMO_EVENTS) == sorted(CAPTURED_EVENTS)


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize(
    "moment", ["Started a throwaway PostgreSQL cluster", "The relay is listening."]
)
async def test_a_signal_stops_the_demo_and_everything_it_started(
    demo_tmpdir: Path, signal_number: signal.Signals, moment: str
) -> None:
    demo = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relay",
        "demo",
        env=relay_environment(None, TMPDIR=str(demo_tmpdir)),
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
    assert os.listdir(demo_tmpdir) == []
    assert servers_running_in(demo_tmpdir) == []
