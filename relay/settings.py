"""One typed settings object for the relay, filled from flags and environment."""

from __future__ import annotations

import math
import os
import socket
from dataclasses import dataclass, field

from relay.errors import ConfigError

# The smallest and largest seconds each duration may take; beyond a week nothing
# here makes sense, and a zero poll or time-out would spin or never end.
DURATION_BOUNDS = {
    "poll_interval": (0.01, 3600.0),
    "request_timeout": (0.1, 3600.0),
    "retry_delay": (0.0, 7 * 86400.0),
    "lease": (1.0, 7 * 86400.0),
    "shutdown_grace": (0.0, 3600.0),
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
    batch_size: int = 100
    max_in_flight: int = 64
    request_timeout: float = 10.0
    # TODO(issue 4): replace the fixed delay with a schedule, jitter and Retry-After.
    retry_delay: float = 30.0
    # A claim this old is presumed lost with its relay and becomes due again.
    lease: float = 60.0
    shutdown_grace: float = 10.0
    worker_id: str = field(default_factory=default_worker_id)

    def __post_init__(self) -> None:
        for name, (low, high) in DURATION_BOUNDS.items():
            value = getattr(self, name)
            if not (math.isfinite(value) and low <= value <= high):
                flag = "--" + name.replace("_", "-")
                raise ConfigError(
                    f"{flag} must be between {low:g} and {high:g} seconds, not {value}"
                )
        if self.lease <= self.request_timeout:
            raise ConfigError("--lease must be longer than --request-timeout")
