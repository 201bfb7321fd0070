"""Stage statistics behind /diagnostics."""

from __future__ import annotations

import pytest

from moodstream_common.stats import StageStats


class FakeClock:
    """A settable clock, so that the test does not depend on how fast it runs."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rate_latency_and_counters():
    clock = FakeClock()
    stats = StageStats(clock=clock)
    for _ in range(11):
        stats.tick()
        stats.add_latency("detect", 0.004)
        clock.now += 0.1
    clock.now -= 0.1
    summary = stats.summary()
    assert float(summary["rate_hz"]) == pytest.approx(10.0)
    assert summary["processed"] == "11" and summary["detect_p50_ms"] == "4.00"


def test_a_dropped_frame_is_reported_for_a_while_then_forgotten():
    clock = FakeClock()
    stats = StageStats(clock=clock)
    assert stats.recent_drop() == ""
    stats.drop("dropped a frame: bad encoding")
    clock.now += 9.0
    assert stats.recent_drop(hold_s=10.0) == "dropped a frame: bad encoding"
    assert stats.summary()["dropped"] == "1"
    clock.now += 2.0
    assert stats.recent_drop(hold_s=10.0) == ""
    assert stats.summary()["dropped"] == "1"
