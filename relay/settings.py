"""One typed settings object for the relay, filled from flags and environment."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field


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
