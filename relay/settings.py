"""One typed settings object for the relay, filled from flags and environment."""

from __future__ import annotations

import math
import os
import socket
from dataclasses import dataclass, field

from relay.errors import ConfigError
from relay.prune import check_retention
from relay.retries import DEFAULT_SCHEDULE, RetryPolicy

# The smallest and largest seconds each duration may take; beyond a week nothing
# here makes sense, and a zero poll or time-out would spin or never end.
DURATION_BOUNDS = {
    "poll_interval": (0.01, 3600.0),
    "request_timeout": (0.1, 3600.0),
    "lease": (1.0, 7 * 86400.0),
    "shutdown_grace": (0.0, 3600.0),
    "slow_down_delay": (0.0, 86400.0),
    "max_retry_after": (0.0, 7 * 86400.0),
    "disable_after": (0.0, 90 * 86400.0),
    "prune_interval": (0.1, 7 * 86400.0),
}


def default_worker_id() -> str:
    """A name that tells operators which relay holds a claim."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Settings:
    """How one relay process behaves; every field has a flag and a variable."""

    dsn: str
    # The safety-net poll: events are found this often even without a NOTIFY.
    poll_interval: float = 1.0
    batch_size: int = 256
    max_in_flight: int = 256
    # One webhook may hold this many requests in flight, counted over all relays,
    # so that a slow or dead endpoint cannot take every slot.
    max_in_flight_per_webhook: int = 10
    request_timeout: float = 10.0
    # Delays after the first attempt; when they run out, the delivery has failed.
    retry_schedule: tuple[float, ...] = DEFAULT_SCHEDULE
    retry_jitter: float = 0.2
    slow_down_delay: float = 60.0
    max_retry_after: float = 86400.0
    # Failures in a row that make a webhook UNHEALTHY.
    unhealthy_after: int = 5
    # Failing this long without a single success disables a webhook (5 days).
    disable_after: float = 5 * 86400.0
    # A claim this old is presumed lost with its relay and becomes due again.
    lease: float = 60.0
    shutdown_grace: float = 10.0
    # Prune delivered events and old attempts older than this; None: never.
    retention: float | None = None
    prune_interval: float = 3600.0
    worker_id: str = field(default_factory=default_worker_id)

    def __post_init__(self) -> None:
        for name, (low, high) in DURATION_BOUNDS.items():
            value = getattr(self, name)
            if not (math.isfinite(value) and low <= value <= high):
                flag = "--" + name.replace("_", "-")
                raise ConfigError(
                    f"{flag} must be between {low:.15g} and {high:.15g} seconds, "
                    f"not {value}"
                )
        if self.retention is not None:
            check_retention(self.retention, "--retention")
        if self.lease <= self.request_timeout:
            raise ConfigError("--lease must be longer than --request-timeout")
        if not (0.0 <= self.retry_jitter <= 0.5):
            raise ConfigError(
                f"--retry-jitter must be between 0 and 0.5, not {self.retry_jitter}"
            )
        if any(not math.isfinite(step) or step < 0 for step in self.retry_schedule):
            raise ConfigError("--retry-schedule steps must be durations of 0 or more")

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            schedule=self.retry_schedule,
            jitter=self.retry_jitter,
            slow_down_delay=self.slow_down_delay,
            max_retry_after=self.max_retry_after,
        )
