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


# -- health: what /diagnostics says about a stage ---------------------------------------------------
from moodstream_common.stats import HealthConfig  # noqa: E402

CONFIG = HealthConfig(expected_rate_hz=10.0, stall_warn_s=2.0, stall_error_s=10.0, latency_budget_ms=20.0)


def feed(stats: StageStats, clock: FakeClock, seconds: float, rate_hz: float, latency_s: float = 0.005) -> None:
    for _ in range(int(seconds * rate_hz)):
        clock.now += 1 / rate_hz
        stats.tick()
        stats.add_latency("detect", latency_s)


def test_ok_only_while_input_flows_at_the_expected_rate():
    clock = FakeClock()
    stats = StageStats(clock=clock)
    assert stats.health(CONFIG, "detect") == ("ok", "waiting for the first input")
    feed(stats, clock, 5, 10.0)
    assert stats.health(CONFIG, "detect") == ("ok", "")
    feed(stats, clock, 5, 3.0)  # the camera slows to under half
    level, why = stats.health(CONFIG, "detect", "images")
    assert level == "warn" and "images at 3." in why and "expected 10 Hz" in why
    feed(stats, clock, 5, 10.0)
    assert stats.health(CONFIG, "detect")[0] == "ok"


def test_a_stall_warns_then_errs_and_recovers():
    clock = FakeClock()
    stats = StageStats(clock=clock)
    feed(stats, clock, 5, 10.0)
    clock.now += 2.5
    assert stats.health(CONFIG, "detect", "images") == ("warn", "no images for 2.5 s")
    clock.now += 8.0
    assert stats.health(CONFIG, "detect", "images") == ("error", "no images for 10 s")
    feed(stats, clock, 4, 10.0)
    assert stats.health(CONFIG, "detect")[0] == "ok"


def test_never_any_input_is_an_error_after_the_stall_time():
    clock = FakeClock()
    stats = StageStats(clock=clock)
    clock.now += 11.0
    assert stats.health(CONFIG, "detect", "images") == ("error", "no images for 11 s (none yet)")


def test_latency_over_budget_and_drops_warn():
    clock = FakeClock()
    stats = StageStats(clock=clock)
    feed(stats, clock, 5, 10.0, latency_s=0.030)
    level, why = stats.health(CONFIG, "detect")
    assert level == "warn" and "p95 30.0 ms is over the 20 ms budget" in why
    stats.drop("dropped a frame: unsupported image encoding '32FC1'")
    assert stats.health(CONFIG, "detect") == ("warn", "dropped a frame: unsupported image encoding '32FC1'")


def test_no_expected_rate_judges_only_a_stall():
    clock = FakeClock()
    stats = StageStats(clock=clock)
    feed(stats, clock, 5, 1.0)
    assert stats.health(HealthConfig(), "detect") == ("ok", "")
