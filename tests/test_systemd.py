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
# The unit's hardening, option by option: its own user, no privileges to gain,
# the file system read-only, no devices, kernel or clock, network sockets only.
HARDENING = {
    "User": ["relay"],
    "Group": ["relay"],
    "NoNewPrivileges": ["yes"],
    "ProtectSystem": ["strict"],
    "ProtectHome": ["yes"],
    "PrivateTmp": ["yes"],
    "PrivateDevices": ["yes"],
    "ProtectKernelTunables": ["yes"],
    "ProtectKernelModules": ["yes"],
    "ProtectKernelLogs": ["yes"],
    "ProtectControlGroups": ["yes"],
    "ProtectClock": ["yes"],
    "ProtectHostname": ["yes"],
    "ProtectProc": ["invisible"],
    "ProcSubset": ["pid"],
    # AF_UNIX: PostgreSQL's local socket and systemd's notify socket.
    "RestrictAddressFamilies": ["AF_INET AF_INET6 AF_UNIX"],
    "RestrictNamespaces": ["yes"],
    "RestrictRealtime": ["yes"],
    "RestrictSUIDSGID": ["yes"],
    "LockPersonality": ["yes"],
    "MemoryDenyWriteExecute": ["yes"],
    "RemoveIPC": ["yes"],
    "CapabilityBoundingSet": [""],
    "AmbientCapabilities": [""],
    "SystemCallArchitectures": ["native"],
    "SystemCallFilter": ["@system-service", "~@privileged"],
    "UMask": ["0077"],
}


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


def installed_here(tmp_path: Path) -> tuple[Path, str]:
    """The unit pointed at this checkout's relay, as an installation would."""
    relay = Path(sys.executable).with_name("relay")
    text = UNIT.read_text(encoding="utf-8")
    text = text.replace("/opt/relay/venv/bin/relay", str(relay))
    text = text.replace("EnvironmentFile=/etc/", "EnvironmentFile=-/etc/")
    unit = tmp_path / "relay.service"
    unit.write_text(text, encoding="utf-8")
    return unit, text


def service_settings() -> dict[str, list[str]]:
    """Each key of the unit's [Service] section with its values, in order."""
    settings: dict[str, list[str]] = {}
    section = ""
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def test_the_unit_runs_the_relay_unprivileged_and_hardened() -> None:
    settings = service_settings()

    hardening = {key: settings[key] for key in HARDENING if key in settings}

    assert hardening == HARDENING


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)
def test_systemd_rates_the_units_exposure_ok(tmp_path: Path) -> None:
    unit, _ = installed_here(tmp_path)

    # --threshold=20 fails above an exposure of 2.0, the top of systemd's "OK".
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--threshold=20", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    if "--offline" in result.stderr:
        pytest.skip("systemd-analyze is older than 250: no offline security check")
    assert result.returncode == 0, result.stdout[-2000:]
    [overall] = [line for line in result.stdout.splitlines() if "Overall" in line]
    assert overall.startswith("→ Overall exposure level for relay.service: ")
    assert overall.split(": ")[1].split()[1] == "OK"


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)
def test_the_unit_file_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    unit, text = installed_here(tmp_path)

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
