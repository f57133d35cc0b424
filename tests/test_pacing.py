"""How long the relay waits between looks while writers keep adding events."""

from __future__ import annotations

import pytest

from relay.service import busy_pause


@pytest.mark.parametrize(
    ("new_events", "pause"),
    [(1, 0.002), (19, 0.002), (20, 0.004), (45, 0.008), (50, 0.01), (100, 0.01)],
)
def test_the_pause_grows_with_the_events_a_look_found_up_to_ten_ms(
    new_events: int, pause: float
) -> None:
    assert busy_pause(new_events) == pytest.approx(pause)
