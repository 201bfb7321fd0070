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
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any


class FrameClock:
    """Calls ``tick()`` ``rate_hz`` times a second on a thread of its own, under ``lock``; with
    ``acquire``, ``tick(acquire())``, ``acquire`` called without the lock.

    Like an rcl timer, a late tick does not bring a burst of catch-up ticks: the periods missed
    are skipped. An exception from ``acquire`` or ``tick`` stops the clock and goes to
    ``on_error`` (called without the lock). After :meth:`stop`, no tick runs, even for what an
    ``acquire`` already under way returns."""

    def __init__(self, rate_hz: float, tick: Callable[..., None], lock, on_error: Callable[[BaseException], None],
                 name: str = "frame-clock", acquire: Callable[[], Any] | None = None) -> None:
        self.period = 1.0 / rate_hz
        self._tick, self._lock, self._on_error, self._acquire = tick, lock, on_error, acquire
        self._stopped = threading.Event()
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
        """Wait for the thread to end (after :meth:`stop`, never while holding ``lock``)."""
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._stopped.is_set()

    def _run(self) -> None:
        due = time.monotonic()
        while True:
            delay = due - time.monotonic()
            if delay > 0 and self._stopped.wait(delay):
                return
            error = None
            try:
                args = () if self._acquire is None else (self._acquire(),)
            except BaseException as err:  # handed over whole, to be raised in the executor
                error = err
            else:
                with self._lock:
                    if self._stopped.is_set():
                        return
                    try:
                        self._tick(*args)
                    except BaseException as err:
                        error = err
            if error is not None:
                self._stopped.set()
                self._on_error(error)
                return
            period = self.period
            late = time.monotonic() - due
            due += period * max(1, math.ceil(late / period)) if late > 0 else period
