"""A throwaway PostgreSQL cluster for `relay demo` and for tests without a server.

Everything the cluster owns lives in one temporary directory: the data directory,
the Unix socket and the server log. stop() removes that directory, so a stopped
cluster leaves nothing behind.
"""

from __future__ import annotations

import logging
import os
import pwd
import re
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

import port_for

from relay.errors import ConfigError, DatabaseError

logger = logging.getLogger(__name__)

SERVER_BINARY_ROOT = Path("/usr/lib/postgresql")
SERVER_OS_USER = "postgres"
START_TIMEOUT_SECONDS = 60
STOP_TIMEOUT_SECONDS = 30
LOG_TAIL_LINES = 20

# Crash safety buys nothing for a cluster deleted at the end of the run, and
# every test clones a database, which flushes to disk when fsync is on.
NON_DURABLE_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


class ThrowawayCluster:
    """A private PostgreSQL server on 127.0.0.1 with trust auth, deleted on stop."""

    def __init__(self, *, port: int | None = None, durable: bool = True) -> None:
        self.host = "127.0.0.1"
        self.port = port if port is not None else port_for.select_random()
        self.user = "postgres"
        self._durable = durable
        self._directory: Path | None = None
        self._pg_ctl: Path | None = None
        self._run_as: list[str] = []

    def dsn(self, dbname: str = "postgres") -> str:
        """Return the libpq URL of one database in this cluster."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname}"

    def start(self) -> str:
        """Create and start the cluster; return the DSN of its `postgres` database."""
        if self._directory is not None:
            return self.dsn()

        initdb = find_server_binary("initdb")
        self._pg_ctl = find_server_binary("pg_ctl")
        self._run_as = _run_as_prefix()

        self._directory = Path(tempfile.mkdtemp(prefix="relay-pg-"))
        try:
            if self._run_as:
                shutil.chown(self._directory, user=SERVER_OS_USER)
            self._initialise(initdb)
            self._launch(self._pg_ctl)
        except BaseException:
            self.stop()
            raise

        logger.info(
            "Started a throwaway PostgreSQL cluster.",
            extra={"port": self.port, "directory": str(self._directory)},
        )
        return self.dsn()

    def stop(self) -> None:
        """Stop the server if it runs and delete the cluster's directory."""
        directory, self._directory = self._directory, None
        if directory is None:
            return

        try:
            if self._pg_ctl and (directory / "data" / "postmaster.pid").exists():
                self._shut_down(self._pg_ctl, directory / "data")
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        logger.info(
            "Removed the throwaway PostgreSQL cluster.", extra={"port": self.port}
        )

    def restart(self) -> None:
        """Stop the server (fast: sessions are ended) and start it again, same data."""
        directory = self._directory
        assert directory is not None and self._pg_ctl is not None, "start it first"
        command = [
            *self._run_as,
            str(self._pg_ctl),
            "restart",
            "--wait",
            f"--timeout={START_TIMEOUT_SECONDS}",
            f"--pgdata={directory / 'data'}",
            "--mode=fast",
            f"--log={directory / 'server.log'}",
        ]
        _run(
            command, cwd=directory, what="pg_ctl restart", log=directory / "server.log"
        )
        logger.info(
            "Restarted the throwaway PostgreSQL cluster.", extra={"port": self.port}
        )

    def __enter__(self) -> ThrowawayCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _initialise(self, initdb: Path) -> None:
        assert self._directory is not None
        command = [
            *self._run_as,
            str(initdb),
            f"--pgdata={self._directory / 'data'}",
            "--auth=trust",
            f"--username={self.user}",
            "--encoding=UTF8",
            _locale_argument(),
        ]
        _run(command, cwd=self._directory, what="initdb")

    def _launch(self, pg_ctl: Path) -> None:
        directory = self._directory
        assert directory is not None
        server_options = ["-h", self.host, "-p", str(self.port), "-k", str(directory)]
        if not self._durable:
            for setting in NON_DURABLE_SETTINGS:
                server_options += ["-c", setting]
        log = directory / "server.log"
        command = [
            *self._run_as,
            str(pg_ctl),
            "start",
            "--wait",
            f"--timeout={START_TIMEOUT_SECONDS}",
            f"--pgdata={directory / 'data'}",
            f"--log={log}",
            # pg_ctl hands these to the server through a shell, hence the quoting.
            f"--options={shlex.join(server_options)}",
        ]
        _run(command, cwd=directory, what="pg_ctl start", log=log)

    def _shut_down(self, pg_ctl: Path, data: Path) -> None:
        for mode in ("fast", "immediate"):
            command = [
                *self._run_as,
                str(pg_ctl),
                "stop",
                "--wait",
                f"--timeout={STOP_TIMEOUT_SECONDS}",
                f"--pgdata={data}",
                f"--mode={mode}",
            ]
            try:
                _run(command, cwd=data.parent, what=f"pg_ctl stop ({mode})")
                return
            except DatabaseError as error:
                logger.warning("Could not stop the cluster: %s", error)
        logger.error(
            "A throwaway PostgreSQL server may still be running; stop it by hand.",
            extra={"port": self.port, "directory": str(data.parent)},
        )


def find_server_binary(name: str) -> Path:
    """Find a PostgreSQL server program: PATH first, then the newest packaged one."""
    on_path = shutil.which(name)
    if on_path is not None:
        return Path(on_path)

    # Debian and Ubuntu keep server programs off PATH, one directory per version.
    bin_directories = sorted(SERVER_BINARY_ROOT.glob("*/bin"), key=_version_key)
    for directory in reversed(bin_directories):
        candidate = directory / name
        if os.access(candidate, os.X_OK):
            return candidate

    raise ConfigError(
        f"{name} not found on PATH or under {SERVER_BINARY_ROOT}/*/bin; install the "
        "PostgreSQL server binaries (e.g. apt-get install postgresql)"
    )


def _version_key(bin_directory: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", bin_directory.parent.name))


def _run_as_prefix() -> list[str]:
    """Return the command prefix that runs server programs as a non-root user."""
    # initdb and postgres refuse to run as root.
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(SERVER_OS_USER)
    except KeyError:
        raise ConfigError(
            f"running as root needs an OS user named {SERVER_OS_USER!r} to run "
            "PostgreSQL; create it or run as another user"
        ) from None
    runuser = shutil.which("runuser")
    if runuser is None:
        raise ConfigError("running PostgreSQL as root needs runuser (util-linux)")
    return [runuser, "-u", SERVER_OS_USER, "--"]


def _locale_argument() -> str:
    """Prefer C.UTF-8 (C sorting, UTF-8 classes); minimal images may lack it."""
    locale_program = shutil.which("locale")
    if locale_program is None:
        return "--no-locale"
    listing = subprocess.run(
        [locale_program, "-a"], capture_output=True, text=True, check=False
    ).stdout
    # `locale -a` spells it C.utf8 or C.UTF-8 depending on the libc.
    names = {re.sub(r"[^a-z0-9]", "", line.lower()) for line in listing.splitlines()}
    return "--locale=C.UTF-8" if "cutf8" in names else "--no-locale"


def _run(command: list[str], *, cwd: Path, what: str, log: Path | None = None) -> None:
    logger.debug("Running %s.", shlex.join(command))
    try:
        subprocess.run(
            command,
            cwd=cwd,
            check=True,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_SECONDS * 2,
        )
    except subprocess.CalledProcessError as error:
        details = _tail(error.stderr or error.stdout or "")
        if log is not None and log.exists():
            server_log = log.read_text(errors="replace")
            details += f"\nlast lines of {log}:\n{_tail(server_log)}"
        message = f"{what} failed (exit {error.returncode}): {details}"
        raise DatabaseError(message) from error
    except subprocess.TimeoutExpired as error:
        raise DatabaseError(f"{what} did not finish in {error.timeout:.0f}s") from error


def _tail(text: str) -> str:
    return "\n".join(text.strip().splitlines()[-LOG_TAIL_LINES:])
