"""Helpers for tests on real ROS 2 topics: node processes and a collecting subscriber."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

VENV_BIN = Path(sys.executable).parent


def native_stacks(pid: int) -> str:
    """The C stack of every thread of a live process (gdb, where installed): where a hang in
    rclpy or the middleware waits, which Python's own traceback does not show."""
    if shutil.which("gdb") is None:
        return "(no gdb here for the native stacks)"
    try:
        return subprocess.run(["gdb", "-p", str(pid), "-batch", "-ex", "thread apply all bt 30"],
                              capture_output=True, text=True, timeout=60).stdout
    except subprocess.TimeoutExpired:
        return "(gdb did not answer within 60 s)"


def shm_segments(pid: int) -> set[Path]:
    """The Fast DDS shared-memory segments a process has mapped (``/dev/shm/fastdds_<id>``: its
    participant's own, and those of the participants it reads from), not the port files every
    participant of a domain shares."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return set()
    found = {Path(line.split()[-1]) for line in maps.splitlines() if " /dev/shm/fastdds_" in line}
    return {path for path in found if not path.name.startswith("fastdds_port")}


def shm_segments_in_use() -> set[Path]:
    """Every segment some live process (of those this user may read) has mapped."""
    in_use: set[Path] = set()
    for proc in Path("/proc").glob("[0-9]*"):
        in_use |= shm_segments(int(proc.name))
    return in_use


def ros_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"'{value}'" if value.isdigit() or value == "" else value
    return str(value)


class NodeProcess:
    """One installed node executable in its own process, its output in a log file. Whatever a
    test leaves running (an assertion failed before its stop) is stopped after it (conftest)."""

    started: ClassVar[list[NodeProcess]] = []

    def __init__(self, executable: str, log_dir: Path, params: dict | None = None,
                 remaps: dict | None = None, namespace: str = "", env: dict | None = None) -> None:
        args = [str(VENV_BIN / executable), "--ros-args"]
        for name, value in (params or {}).items():
            args += ["-p", f"{name}:={ros_value(value)}"]
        for src, dst in (remaps or {}).items():
            args += ["-r", f"{src}:={dst}"]
        if namespace:
            args += ["-r", f"__ns:={namespace}"]
        self.log_path = log_dir / f"{executable}-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("w")
        # faulthandler: a process that hangs can be made to print where every thread is (wait_or_dump)
        env = {**(os.environ if env is None else env), "PYTHONFAULTHANDLER": "1"}
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        NodeProcess.started.append(self)

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    def wait_or_dump(self, timeout: float) -> int:
        """Wait for the process to end; if it hangs, fail with the stack of each of its threads."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            native = native_stacks(self.proc.pid)
            self.proc.send_signal(signal.SIGABRT)  # faulthandler prints every thread, then it dies
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            raise AssertionError(f"{self.proc.args[0]} still ran {timeout:.0f} s later:\n{self.output()}\n"
                                 f"{native}") from None

    @classmethod
    def stop_leftovers(cls) -> None:
        for node in cls.started:
            node.stop()  # SIGINT first: a killed node's shared-memory segment stays in /dev/shm
        cls.started.clear()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


class Collector:
    """A node in its own context that records every message of the topics it is given."""

    def __init__(self, name: str = "test_collector") -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = Node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.messages: dict[str, list] = defaultdict(list)
        self.subscriptions = {}

    def subscribe(self, msg_type, topic: str, qos) -> None:
        self.subscriptions[topic] = self.node.create_subscription(
            msg_type, topic, lambda msg, t=topic: self.messages[t].append(msg), qos)

    def spin_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            self.executor.spin_once(timeout_sec=0.05)
        return condition()

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
