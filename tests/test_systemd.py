"""Running under systemd: the notify protocol on a real socket, and the unit file."""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from relay.receiver import Receiver
from tests.support import relay_process

UNIT = Path(__file__).resolve().parent.parent / "deploy" / "relay.service"


async def receive(sock: socket.socket, until: str, seen: list[str]) -> None:
    loop = asyncio.get_running_loop()
    while until not in seen:
        datagram = await loop.sock_recv(sock, 4096)
        seen.extend(datagram.decode().splitlines())


async def test_the_relay_tells_systemd_ready_alive_and_stopping(
    db: psycopg.Connection[Any], dsn: str, receiver: Receiver, tmp_path: Path
) -> None:
    address = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.setblocking(False)
    seen: list[str] = []

    with sock:
        async with relay_process(
            dsn, NOTIFY_SOCKET=address, WATCHDOG_USEC="200000"
        ) as relay:
            async with asyncio.timeout(10):
                await receive(sock, "READY=1", seen)
                ready_after = relay.messages.index("Relay started.")
                # Pings every 0.1 s: wait for three rather than for a time.
                while seen.count("WATCHDOG=1") < 3:
                    await receive_more(sock, seen)
            status = await relay.stop(signal.SIGTERM)
            async with asyncio.timeout(10):
                await receive(sock, "STOPPING=1", seen)

    assert ready_after >= 0
    assert "Listening for events." in relay.messages[:ready_after]
    assert seen.count("WATCHDOG=1") >= 3
    assert "STATUS=Draining requests in flight." in seen
    assert status == 0


async def receive_more(sock: socket.socket, seen: list[str]) -> None:
    loop = asyncio.get_running_loop()
    datagram = await loop.sock_recv(sock, 4096)
    seen.extend(datagram.decode().splitlines())


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)
def test_the_unit_file_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    # Point the unit at this checkout's relay, as an installation would.
    relay = Path(sys.executable).with_name("relay")
    text = UNIT.read_text(encoding="utf-8")
    text = text.replace("/opt/relay/venv/bin/relay", str(relay))
    text = text.replace("EnvironmentFile=/etc/", "EnvironmentFile=-/etc/")
    unit = tmp_path / "relay.service"
    unit.write_text(text, encoding="utf-8")

    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert (result.returncode, result.stderr) == (0, "")
    for line in ("Type=notify", "WatchdogSec=30", "Restart=on-failure"):
        assert line in text.splitlines()
