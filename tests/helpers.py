"""Helpers for tests on real ROS 2 topics: node processes and a collecting subscriber."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

VENV_BIN = Path(sys.executable).parent


def ros_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"'{value}'" if value.isdigit() or value == "" else value
    return str(value)


class NodeProcess:
    """One installed node executable in its own process, its output in a log file."""

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
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, env=env)

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

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
