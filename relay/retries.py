"""When a failed delivery is tried again: the schedule, its jitter, ``Retry-After``.

Pure functions of numbers and strings, no I/O, so the schedule is tested as a
table without sleeping.

Why jitter: after an outage every failed delivery would otherwise come due in
the same second and hit the receiver that just recovered all at once.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from relay.errors import ConfigError

# Delays after the first, immediate attempt: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
# Eight attempts spread over a little more than a day.
DEFAULT_SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
DEFAULT_SCHEDULE_TEXT = "5s,5m,30m,2h,5h,10h,10h"

UNIT_SECONDS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[smhd]?)\s*$")
MAX_STEPS = 50
MAX_STEP_SECONDS = 7 * 86400.0


def parse_duration(text: str) -> float:
    """Seconds of ``12``, ``1.5s``, ``5m``, ``2h`` or ``3d``."""
    match = _DURATION.match(text)
    if match is None:
        raise ConfigError(
            f"malformed duration {text!r}: write a number with s, m, h or d"
        )
    return float(match["number"]) * UNIT_SECONDS[match["unit"]]


def parse_schedule(text: str) -> tuple[float, ...]:
    """The delays of ``5s,5m,30m``; an empty text means a single attempt."""
    if not text.strip():
        return ()
    steps = tuple(parse_duration(part) for part in text.split(","))
    if len(steps) > MAX_STEPS:
        raise ConfigError(f"--retry-schedule has {len(steps)} steps; at most 50")
    if any(step > MAX_STEP_SECONDS for step in steps):
        raise ConfigError("--retry-schedule steps must be at most 7 days each")
    return steps


@dataclass(frozen=True)
class RetryPolicy:
    """How long a delivery waits after each failed attempt."""

    # Delay after attempt 1, 2, ...; past the end the delivery has failed for good.
    schedule: tuple[float, ...] = DEFAULT_SCHEDULE
    # Each delay is multiplied by a random factor within 1 +- jitter.
    jitter: float = 0.2
    # A receiver that timed out or said 429 is overloaded: wait at least this.
    slow_down_delay: float = 60.0
    # A Retry-After beyond this is cut to it.
    max_retry_after: float = 86400.0

    def delay_after(
        self,
        attempt: int,
        *,
        slow_down: bool = False,
        retry_after: float | None = None,
        uniform: Callable[[float, float], float] = random.uniform,
    ) -> float | None:
        """Seconds until the attempt after failed ``attempt``; None when none is left.

        ``slow_down`` says the receiver timed out or answered 429.
        """
        if attempt > len(self.schedule):
            return None

        delay = self.schedule[attempt - 1]
        if self.jitter:
            delay *= uniform(1.0 - self.jitter, 1.0 + self.jitter)
        if slow_down:
            delay = max(delay, self.slow_down_delay)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_retry_after))
        return delay


# Reconnecting to PostgreSQL: from half a second, doubling, up to half a minute.
RECONNECT_FIRST_DELAY = 0.5
RECONNECT_MAX_DELAY = 30.0


def reconnect_delay(
    failures: int, uniform: Callable[[float, float], float] = random.uniform
) -> float:
    """Seconds to wait after ``failures`` failed tries in a row (1 or more)."""
    ceiling = min(RECONNECT_MAX_DELAY, RECONNECT_FIRST_DELAY * 2 ** (failures - 1))
    # Full jitter in the upper half: relays that lost the server together do not
    # all knock at once when it comes back.
    return uniform(ceiling / 2, ceiling)
