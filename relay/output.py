"""How the operator commands print: a table for people, JSON for scripts, progress.

Only CLI modules use this. Each command builds its data once, as plain dicts and
lists; ``emit`` prints that same data either as JSON (``--json``) or through the
command's own renderer, so both forms always hold the same facts.

Progress goes to stderr: a tqdm bar (rate and time left) on a terminal, a plain
log line every few seconds otherwise (a systemd journal, a CI log, a pipe).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from types import TracebackType
from typing import Any

import click
from tqdm import tqdm

from relay.cli_options import F

logger = logging.getLogger("relay.progress")

# Seconds between progress lines when stderr is not a terminal.
LOG_EVERY_SECONDS = 5.0


def json_option(function: F) -> F:
    """``--json``: the same data as the table, as one JSON document on stdout."""
    decorator = click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="Print JSON for scripts instead of a table.",
    )
    return decorator(function)


def iso(value: datetime | None) -> str | None:
    """A time as every relay payload writes it: UTC, milliseconds, ``Z``."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{value.microsecond // 1000:03d}Z"
    )


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, default=_plain)


def emit(data: Any, as_json: bool, render: Callable[[Any], None]) -> None:
    """Print ``data`` as JSON when asked, otherwise with ``render``.

    A reader that stops early (``relay status | head -1``) has what it wanted:
    the rest goes nowhere and the command's exit status stays its own, where
    click would make it 1 (a failure) for the broken pipe.
    """
    try:
        if as_json:
            click.echo(to_json(data))
        else:
            render(data)
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def cell(value: Any) -> str:
    """One table cell: times as ISO, nothing as ``-``, lists joined."""
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return iso(value) or "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ",".join(str(item) for item in value) or "-"
    return " ".join(str(value).split())


def print_table(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[tuple[str, str]],
    *,
    empty: str = "Nothing to show.",
) -> None:
    """Rows as aligned columns; ``columns`` are (key, heading) pairs."""
    if not rows:
        click.echo(empty)
        return
    texts = [[cell(row.get(key)) for key, _ in columns] for row in rows]
    widths = [
        max(len(heading), *(len(text[index]) for text in texts))
        for index, (_, heading) in enumerate(columns)
    ]
    lines = [[heading for _, heading in columns], *texts]
    for line in lines:
        click.echo(
            "  ".join(t.ljust(w) for t, w in zip(line, widths, strict=True)).rstrip()
        )


class Progress:
    """Progress of a long operation, to stderr; use as a context manager.

    ``advance(n)`` after each chunk. On a terminal it is a bar with the rate and
    the time left; elsewhere an INFO line every ``LOG_EVERY_SECONDS`` and one at
    the end, so a log shows the operation moving without a line per chunk.
    """

    def __init__(
        self,
        label: str,
        total: int | None,
        *,
        unit: str = "events",
        initial: int = 0,
        terminal: bool | None = None,
    ) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.done = initial
        self._initial = initial
        self._terminal = sys.stderr.isatty() if terminal is None else terminal
        self._bar: tqdm[Any] | None = None
        self._started = time.monotonic()
        self._logged = self._started

    def __enter__(self) -> Progress:
        if self._terminal:
            self._bar = tqdm(
                total=self.total,
                initial=self.done,
                desc=self.label,
                unit=f" {self.unit}",
                unit_scale=True,
                file=sys.stderr,
                dynamic_ncols=True,
            )
        return self

    def advance(self, count: int) -> None:
        self.done += count
        if self._bar is not None:
            self._bar.update(count)
            return
        now = time.monotonic()
        if now - self._logged >= LOG_EVERY_SECONDS:
            self._logged = now
            self._log()

    def note(self, text: str) -> None:
        """A word on what it is doing (waiting for the relay, say)."""
        if self._bar is not None:
            self._bar.set_postfix_str(text)
        else:
            now = time.monotonic()
            if now - self._logged >= LOG_EVERY_SECONDS:
                self._logged = now
                self._log(text)

    def _log(self, note: str | None = None) -> None:
        elapsed = max(time.monotonic() - self._started, 1e-9)
        rate = (self.done - self._initial) / elapsed
        of_total = f" of {self.total:,}" if self.total is not None else ""
        left = ""
        if self.total is not None and rate > 0:
            left = f", about {max(self.total - self.done, 0) / rate:.0f} s left"
        suffix = f" ({note})" if note else ""
        logger.info(
            "%s: %s%s %s, %.0f/s%s%s",
            self.label,
            f"{self.done:,}",
            of_total,
            self.unit,
            rate,
            left,
            suffix,
            extra={"action": "progress", "done": self.done, "total": self.total},
        )

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.close()
        else:
            self._log()
