"""How a node executable ends: errors racing a shutdown are a clean stop, errors while running are not."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from helpers import VENV_BIN

pytestmark = [pytest.mark.ros]

NODE = textwrap.dedent("""
    import sys

    import rclpy
    from rclpy.node import Node

    from moodstream_common.ros import run_node

    SHUT_DOWN_FIRST = sys.argv[1] == "after-shutdown"


    class Failing(Node):
        def __init__(self):
            super().__init__("failing")
            self.create_timer(0.05, self.tick)

        def tick(self):
            if SHUT_DOWN_FIRST:
                # What a signal does from rclpy's signal thread while a callback runs.
                rclpy.shutdown()
            raise RuntimeError("publisher's context is invalid")


    run_node(Failing, [])
""")


def run(mode: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", NODE, mode], capture_output=True, text=True, timeout=60)


def test_error_raised_after_shutdown_began_is_a_clean_stop():
    out = run("after-shutdown")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr


def test_error_while_running_stops_the_node_with_status_1_and_says_why():
    out = run("while-running")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "failing stopped on an error" in out.stderr and "publisher's context is invalid" in out.stderr


FRAME_CLOCK_NODE = textwrap.dedent("""
    from moodstream_common.frame_clock import FrameClock
    from moodstream_common.lifecycle import StageNode
    from moodstream_common.ros import run_node


    class Ticking(StageNode):
        def __init__(self):
            super().__init__("ticking", {})
            self.ticks = 0

        def start(self):
            self.ticker = self.start_ticking(100.0, self.tick)
            if not isinstance(self.ticker, FrameClock):
                raise RuntimeError("run_node's executor gave no frame clock")

        def tick(self):
            self.ticks += 1
            if self.ticks == 5:
                raise RuntimeError("the detector broke on frame 5")


    run_node(Ticking, [])
""")


def test_an_error_on_the_frame_clock_thread_stops_the_node_as_a_timer_error_does():
    out = subprocess.run([sys.executable, "-c", FRAME_CLOCK_NODE], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "ticking stopped on an error" in out.stderr and "the detector broke on frame 5" in out.stderr, out.stderr


BUSY_NODE = textwrap.dedent("""
    import time

    from rclpy.node import Node

    from moodstream_common.ros import run_node


    class Busy(Node):
        def __init__(self):
            super().__init__("busy")
            self.create_timer(0.01, self.tick)
            self.ticks = 0

        def tick(self):
            self.ticks += 1
            if self.ticks == 1:
                self.get_logger().info("callback started")
            deadline = time.monotonic() + 0.5
            while time.monotonic() < deadline:  # Python bytecode, where an interrupt would land
                pass
            self.get_logger().info(f"callback {self.ticks} finished")


    run_node(Busy, [])
""")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_lets_the_running_callback_finish(sig):
    # Before: rclpy chained the signal to Python's default handler, whose KeyboardInterrupt landed
    # in whatever bytecode ran: mid-callback, or half-way through rclpy building a Task (CI saw
    # that Task's __del__ print a traceback).
    proc = subprocess.Popen([sys.executable, "-c", BUSY_NODE], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        assert "callback started" in proc.stdout.readline()
        time.sleep(0.2)  # inside the first callback's busy half-second
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    assert "callback 1 finished" in out and "Traceback" not in out, out


@pytest.mark.parametrize("delay", [0.1 * i for i in range(1, 16)], ids=lambda d: f"{d:.1f}s")
def test_ctrl_c_twice_while_a_node_starts_is_a_clean_stop(tmp_path, delay):
    """A terminal's Ctrl-C under ros2 launch reaches a node twice, 50 ms apart, whenever it comes:
    here at 15 moments of the bridge's start (DDS participant, lifecycle services, parameters).

    CI once saw the first signal shut the context down under the lifecycle constructor, which
    failed on it; the KeyboardInterrupt that followed landed in the handling of that error and
    ended the process with status -2 and a traceback. Where the signal lands in a run is chance,
    so the sweep covers the start's length, not one moment of it."""
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path)}
    proc = subprocess.Popen([str(VENV_BIN / "bridge_node"), "--ros-args", "-p", "history:=never",
                             "-r", f"__ns:=/ctrl_c_{int(delay * 10)}"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    assert "Traceback" not in out, out
