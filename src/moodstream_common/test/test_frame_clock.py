"""The capture's frame clock: ticks under the stage lock, stops cleanly, hands errors over, no bursts."""

from __future__ import annotations

import itertools
import threading
import time

from moodstream_common.frame_clock import FrameClock
from moodstream_common.local_bus import StageLock


def wait_until(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.002)
    return condition()


def test_ticks_hold_the_lock_and_none_starts_after_a_stop_under_the_lock():
    lock = threading.RLock()
    ticks: list[bool] = []

    def tick() -> None:  # another thread cannot take the lock while a tick runs
        probe = threading.Thread(target=lambda: ticks.append(lock.acquire(blocking=False)))
        probe.start()
        probe.join()

    clock = FrameClock(200.0, tick, lock, on_error=lambda err: None).start()
    assert wait_until(lambda: len(ticks) >= 3)
    with lock:  # as a lifecycle transition in the executor stops it
        clock.stop()
        count = len(ticks)
    clock.join(5.0)
    time.sleep(0.05)
    assert len(ticks) == count and not clock.running
    assert not any(ticks), "a tick ran without the lock"


def test_an_error_stops_the_clock_and_reaches_on_error_once():
    errors: list[BaseException] = []
    calls = []

    def tick() -> None:
        calls.append(1)
        if len(calls) == 2:
            raise ValueError("the detector broke")

    clock = FrameClock(500.0, tick, threading.RLock(), on_error=errors.append).start()
    assert wait_until(lambda: errors)
    clock.join(5.0)
    assert [str(e) for e in errors] == ["the detector broke"] and len(calls) == 2 and not clock.running


def test_a_slow_tick_brings_one_tick_at_once_then_the_period_again_not_a_burst():
    times: list[float] = []

    def tick() -> None:
        times.append(time.monotonic())
        if len(times) == 1:
            time.sleep(0.055)  # five and a half periods of 10 ms

    clock = FrameClock(100.0, tick, threading.RLock(), on_error=lambda err: None).start()
    assert wait_until(lambda: len(times) >= 6)
    clock.stop()
    clock.join(5.0)
    slow_end = times[0] + 0.055
    # A catch-up would run five ticks at once right after the slow one; the clock runs one at once,
    # then one per period (a busy machine only delays them).
    assert sum(1 for t in times[1:] if t - slow_end < 0.025) <= 3, [round(t - times[0], 4) for t in times]


def test_a_graph_a_little_slower_than_the_camera_runs_at_its_own_pace_not_every_other_period():
    starts: list[float] = []

    def tick() -> None:  # 11 ms of work at a period of 10 ms
        starts.append(time.monotonic())
        time.sleep(0.011)

    clock = FrameClock(100.0, tick, threading.RLock(), on_error=lambda err: None).start()
    assert wait_until(lambda: len(starts) >= 21)
    clock.stop()
    clock.join(5.0)
    gaps = sorted(b - a for a, b in itertools.pairwise(starts[1:]))
    # Waiting for the next period boundary, as an rcl timer does, would start a tick every 20 ms.
    assert gaps[len(gaps) // 2] < 0.016, [round(g, 4) for g in gaps]


def test_a_new_rate_applies_from_the_next_tick():
    clock = FrameClock(30.0, lambda: None, threading.RLock(), on_error=lambda err: None)
    assert abs(clock.period - 1 / 30) < 1e-12
    clock.set_rate(240.0)
    assert abs(clock.period - 1 / 240) < 1e-12


def test_acquire_runs_without_the_lock_and_hands_its_value_to_the_tick():
    lock = threading.RLock()
    held_while_acquiring: list[bool] = []
    counter = iter(range(10**6))
    ticked: list[int] = []

    def try_lock() -> None:
        free = lock.acquire(blocking=False)
        held_while_acquiring.append(not free)
        if free:
            lock.release()

    def acquire() -> int:  # another thread can take the lock meanwhile
        probe = threading.Thread(target=try_lock)
        probe.start()
        probe.join()
        return next(counter)

    clock = FrameClock(200.0, ticked.append, lock, on_error=lambda err: None, acquire=acquire).start()
    assert wait_until(lambda: len(ticked) >= 3)
    clock.stop()
    clock.join(5.0)
    assert not any(held_while_acquiring), "acquire ran under the lock"
    assert ticked == list(range(len(ticked)))  # each value once, in order


def test_what_an_acquire_under_way_returns_after_a_stop_is_not_ticked():
    lock = threading.RLock()
    acquiring, go_on = threading.Event(), threading.Event()
    ticked: list[str] = []

    def acquire() -> str:
        acquiring.set()
        go_on.wait(10)
        return "frame"

    clock = FrameClock(100.0, ticked.append, lock, on_error=lambda err: None, acquire=acquire).start()
    assert acquiring.wait(5)
    with lock:
        clock.stop()
    go_on.set()
    clock.join(5.0)
    assert ticked == [] and not clock.running


def test_an_error_in_acquire_stops_the_clock_and_reaches_on_error():
    errors: list[BaseException] = []

    def acquire():
        raise OSError("the camera is gone")

    clock = FrameClock(100.0, lambda frame: None, threading.RLock(), on_error=errors.append, acquire=acquire).start()
    clock.join(5.0)
    assert [str(e) for e in errors] == ["the camera is gone"] and not clock.running


def test_behind_the_clock_the_next_frame_is_read_beside_the_tick_in_order_never_two_reads_at_once():
    lock = threading.RLock()
    reading = threading.Lock()
    overlaps: list[bool] = []  # a read began while a tick ran
    in_tick = threading.Event()
    concurrent_reads: list[int] = []
    counter = iter(range(10**6))
    ticked: list[int] = []

    def acquire() -> int:
        if not reading.acquire(blocking=False):
            concurrent_reads.append(1)
            reading.acquire()
        try:
            overlaps.append(in_tick.is_set())
            time.sleep(0.002)  # a camera's decode
            return next(counter)
        finally:
            reading.release()

    def tick(frame: int) -> None:
        in_tick.set()
        ticked.append(frame)
        time.sleep(0.004)  # the graph's work: slower than the 500 Hz asked for
        in_tick.clear()

    clock = FrameClock(500.0, tick, lock, on_error=lambda err: None, acquire=acquire).start()
    assert wait_until(lambda: len(ticked) >= 20)
    clock.stop()
    clock.join(5.0)
    assert ticked == list(range(len(ticked)))  # every frame read once, ticked once, in order
    assert not concurrent_reads
    assert sum(overlaps) >= len(overlaps) // 2, "reads did not overlap the ticks while behind the clock"


def test_at_a_rate_the_graph_keeps_every_frame_is_read_when_due_not_ahead():
    in_tick = threading.Event()
    overlaps: list[bool] = []
    ticked: list[float] = []

    def acquire() -> float:
        overlaps.append(in_tick.is_set())
        return time.monotonic()

    def tick(read_at: float) -> None:
        in_tick.set()
        ticked.append(time.monotonic() - read_at)
        time.sleep(0.001)
        in_tick.clear()

    clock = FrameClock(50.0, tick, threading.RLock(), on_error=lambda err: None, acquire=acquire).start()
    assert wait_until(lambda: len(ticked) >= 8)
    clock.stop()
    clock.join(5.0)
    assert not any(overlaps), "a frame was read ahead at a rate the graph keeps"


def test_an_error_in_a_read_ahead_stops_the_clock_and_no_later_tick_runs():
    errors: list[BaseException] = []
    ticked: list[int] = []
    counter = iter(range(10**6))

    def acquire() -> int:
        n = next(counter)
        if n == 5:
            raise OSError("the camera is gone")
        return n

    def tick(frame: int) -> None:
        ticked.append(frame)
        time.sleep(0.003)  # behind the 1 kHz clock: frames are read ahead

    clock = FrameClock(1000.0, tick, threading.RLock(), on_error=errors.append, acquire=acquire).start()
    clock.join(5.0)
    assert [str(e) for e in errors] == ["the camera is gone"] and not clock.running
    assert ticked == [0, 1, 2, 3, 4]


def test_what_a_read_ahead_returns_after_a_stop_is_not_ticked_and_join_waits_for_its_thread():
    lock = threading.RLock()
    go_on = threading.Event()
    counter = iter(range(10**6))
    ticked: list[int] = []
    blocked = threading.Event()

    def acquire() -> int:
        n = next(counter)
        if n == 3:  # read ahead (the clock is behind), then held up
            blocked.set()
            go_on.wait(10)
        return n

    def tick(frame: int) -> None:
        ticked.append(frame)
        time.sleep(0.003)

    clock = FrameClock(1000.0, tick, lock, on_error=lambda err: None, acquire=acquire, name="held-up").start()
    assert blocked.wait(5)
    with lock:
        clock.stop()
    clock.join(0.2)  # the held-up read outlasts a short join: the clock still has a thread
    assert clock.alive and not clock.running
    go_on.set()
    clock.join(5.0)  # waits for the read ahead too, not only the clock's own thread
    assert not clock.alive
    assert not any(t.name == "held-up-read" for t in threading.enumerate())
    assert ticked == [0, 1, 2]
    time.sleep(0.05)
    assert next(counter) == 4, "a read began after the stop"


def test_behind_the_clock_a_thread_waiting_for_the_stage_lock_gets_its_turn():
    # The executor (a parameter change, a service call) must not wait for as long as the clock
    # ticks back to back: Python's own locks let the thread that releases one take it again first.
    lock = StageLock()

    def tick() -> None:  # 5 ms of work holding the GIL, at a rate of 1 kHz: always behind
        started = time.perf_counter()
        while time.perf_counter() - started < 0.005:
            pass

    clock = FrameClock(1000.0, tick, lock, on_error=lambda err: None).start()
    turns, longest = 0, 0.0
    started = time.monotonic()
    while time.monotonic() - started < 1.0:
        asked = time.monotonic()
        with lock:
            turns += 1
        longest = max(longest, time.monotonic() - asked)
        time.sleep(0.002)
    clock.stop()
    clock.join(5.0)
    assert turns >= 40 and longest < 0.2, (turns, longest)


def test_the_stage_lock_is_reentrant_and_says_whether_it_was_taken():
    lock = StageLock()
    with lock, lock:  # reentrant, as the executor's callbacks and the stages nest it
        taken_elsewhere: list[bool] = []
        probe = threading.Thread(target=lambda: taken_elsewhere.append(lock.acquire(blocking=False)))
        probe.start()
        probe.join()
        assert taken_elsewhere == [False]
        assert lock.acquire(timeout=0.01)  # its owner again
        lock.release()
    probe = threading.Thread(target=lambda: taken_elsewhere.append(lock.acquire(timeout=1)) or lock.release())
    probe.start()
    probe.join()
    assert taken_elsewhere == [False, True]
