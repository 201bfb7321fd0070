"""A camera's frame clock on its own thread (ROS-free).

Why not a ROS timer: each time rclpy's executor wakes it rebuilds its wait set from every
entity of every node it holds, in Python. A process of three lifecycle stages has about sixty
(parameter, lifecycle and consent services, QoS event handlers, timers), and a wake-up cost
1.7 ms of CPU here whether or not the frame does any work: at 30 frames per second a fifth of
the composed pipeline's CPU. A thread that sleeps until the next frame costs microseconds, and
the executor, with nothing to do between frames, sleeps too.

The clock calls ``tick`` while holding ``lock``: the lock that the process's executor holds
while it runs any other callback (:class:`moodstream_common.ros.StageExecutor`), so that a frame
never runs beside a parameter change, a lifecycle transition or a consent change. What may block
for long (a camera's read: up to a frame period, or seconds when the camera stalls) goes in
``acquire``, called without the lock, so that the executor's callbacks (parameters, diagnostics,
services) are not held up by it.

When the clock falls behind (the next frame is due before the current tick would end: a rate
the graph cannot keep, as when replaying a video as fast as it goes), it reads the next frame
beside the tick, on a second thread, instead of after it: reading (a camera's decode, a video's,
the synthetic scene's rendering) then overlaps the processing, as a camera driver's own capture
thread would. At a rate the graph keeps, every frame is read when it is due, so no frame is read
early and waits. Ticking back to back, the clock lets a thread waiting for the lock (the executor)
take it before each tick (:class:`moodstream_common.local_bus.StageLock`): Python's locks are not
fair, and a parameter change would otherwise wait for as long as the clock stays behind.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class _ReadAhead:
    """Runs ``acquire`` on a daemon thread of its own, one call at a time, when asked."""

    def __init__(self, acquire: Callable[[], Any], name: str) -> None:
        self._acquire = acquire
        self._asked, self._done = threading.Event(), threading.Event()
        self._value: Any = None
        self._error: BaseException | None = None
        self._closed = False
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def start(self) -> None:
        self._done.clear()
        self._asked.set()

    def result(self) -> Any:
        """What the read :meth:`start` began returned (its exception raised); waits for it."""
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value

    def close(self) -> None:
        """End the thread, after the read under way if any (its result is dropped)."""
        self._closed = True
        self._asked.set()

    def _run(self) -> None:
        while True:
            self._asked.wait()
            self._asked.clear()
            if self._closed:
                return
            try:
                self._value, self._error = self._acquire(), None
            except BaseException as err:  # handed to the clock's thread whole
                self._value, self._error = None, err
            self._done.set()


class FrameClock:
    """Calls ``tick()`` ``rate_hz`` times a second on a thread of its own, under ``lock``; with
    ``acquire``, ``tick(acquire())``, ``acquire`` called without the lock.

    A clock that falls behind does not catch up with a burst of ticks: the next tick starts when
    the late one ends, and the period counts from there. (An rcl timer waits for its next period
    boundary instead, which halves the rate of a graph a little slower than its camera.) Behind
    the clock, ``acquire`` reads the next frame beside the current tick (never two reads at once,
    always in order). An exception from ``acquire`` or ``tick`` stops the clock and goes to
    ``on_error`` (called without the lock). After :meth:`stop`, no tick runs, even for what an
    ``acquire`` already under way returns, and no read begins."""

    def __init__(self, rate_hz: float, tick: Callable[..., None], lock, on_error: Callable[[BaseException], None],
                 name: str = "frame-clock", acquire: Callable[[], Any] | None = None) -> None:
        self.period = 1.0 / rate_hz
        self._tick, self._lock, self._on_error, self._acquire = tick, lock, on_error, acquire
        self._let_waiters_in = getattr(lock, "let_waiters_in", None)  # a local_bus.StageLock's
        self._stopped = threading.Event()
        self._reader: _ReadAhead | None = None  # the read-ahead thread, once the clock first falls behind
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> FrameClock:
        self._thread.start()
        return self

    def set_rate(self, rate_hz: float) -> None:
        """From the next tick on."""
        self.period = 1.0 / rate_hz

    def stop(self) -> None:
        """No tick starts after this returns when called under ``lock`` (as the executor's
        callbacks are); does not wait for the thread, which may be waiting for that lock."""
        self._stopped.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the clock's threads to end (after :meth:`stop`, never while holding ``lock``):
        the frame under way, and a read ahead under way, within ``timeout`` each."""
        for thread in (self._thread, self._reader.thread if self._reader is not None else None):
            if thread is not None and thread.is_alive() and thread is not threading.current_thread():
                thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._stopped.is_set()

    @property
    def alive(self) -> bool:
        """Whether a thread of the clock still runs (it may be stopped, finishing a frame or a read)."""
        return self._thread.is_alive() or (self._reader is not None and self._reader.thread.is_alive())

    def _run(self) -> None:
        try:
            self._run_ticks()
        finally:
            if self._reader is not None:
                self._reader.close()

    def _run_ticks(self) -> None:
        due = time.monotonic()
        last_tick = 0.0
        read_ahead = False
        while True:
            delay = due - time.monotonic()
            if delay > 0 and self._stopped.wait(delay):
                return
            error = None
            try:
                if read_ahead:
                    args = (self._reader.result(),)
                    read_ahead = False
                else:
                    args = () if self._acquire is None else (self._acquire(),)
            except BaseException as err:  # handed over whole, to be raised in the executor
                error = err
            else:
                started = time.monotonic()
                if self._let_waiters_in is not None:  # the executor's turn first, when it waits
                    self._let_waiters_in()
                with self._lock:
                    if self._stopped.is_set():
                        return
                    # Started under the lock, after the check: no read begins after a stop.
                    if self._acquire is not None and started + last_tick >= due + self.period:
                        if self._reader is None:
                            self._reader = _ReadAhead(self._acquire, f"{self._thread.name}-read")
                        self._reader.start()  # the next frame, due before this tick would end
                        read_ahead = True
                    try:
                        self._tick(*args)
                    except BaseException as err:
                        error = err
                last_tick = time.monotonic() - started
            if error is not None:
                self._stopped.set()
                self._on_error(error)
                return
            due = max(due + self.period, time.monotonic())
