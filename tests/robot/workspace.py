"""What a robot does, for the tests: a colcon workspace of MoodStream, `ros2 launch`, the `ros2` CLI.

The ROS 2 launch/CLI stack comes from ../shared/ros2 (installed into the venv by
``scripts/setup.sh --test``) on top of rclpy from PyPI; on a robot the ROS install provides it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from moodstream_common.environment import PROFILE_VARIABLES

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.prefix)
VENV_BIN = Path(sys.executable).parent


def require(message: str) -> None:
    """Skip on a developer's machine; fail in CI, where scripts/setup.sh --test installs the stack."""
    (pytest.fail if os.environ.get("CI") else pytest.skip)(message)


def missing_stack() -> str | None:
    """Why the launch stack cannot run here, or None."""
    if importlib.util.find_spec("launch_ros") is None or not (VENV_BIN / "ros2").is_file():
        return ("the ROS 2 launch/CLI stack is not installed (scripts/setup.sh --test installs it from "
                "../shared/ros2 beside the project)")
    if not (VENV_BIN / "colcon").is_file():
        return "colcon is not installed (pip install colcon-common-extensions; scripts/setup.sh --test does)"
    return None


class Workspace:
    """``colcon build`` of src/ into a fresh workspace, and the environment of its ``setup.bash``."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.install = base / "install"
        # As on a robot where nobody chose a Fast DDS profile: the launch file picks each process's
        # (the tests' own processes have one from conftest).
        env = {name: value for name, value in os.environ.items() if name not in PROFILE_VARIABLES}
        env.update({"AMENT_PREFIX_PATH": str(VENV), "CMAKE_PREFIX_PATH": str(VENV),
                    "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"})
        log = base / "colcon-build.log"
        with log.open("w") as out:
            rc = subprocess.call(
                [str(VENV_BIN / "colcon"), "build", "--base-paths", str(ROOT / "src"),
                 "--build-base", str(base / "build"), "--install-base", str(self.install),
                 "--cmake-args", "-DBUILD_TESTING=OFF"],
                cwd=base, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=600)
        self.build_log = log.read_text()
        if rc != 0:
            pytest.fail(f"colcon build failed ({rc}):\n{self.build_log[-4000:]}")
        dump = subprocess.run(
            ["bash", "-c", f". {self.install / 'setup.bash'} && {sys.executable} -c "
                           "'import json, os; print(json.dumps(dict(os.environ)))'"],
            env=env, capture_output=True, text=True, check=True)
        self.env = json.loads(dump.stdout.strip().splitlines()[-1])

    def run(self, *args: str, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
        """A command in the sourced workspace, e.g. ``run("ros2", "node", "list")``."""
        return subprocess.run(list(args), env=self.env, capture_output=True, text=True, timeout=timeout, **kwargs)

    def nodes(self) -> set[str]:
        out = self.run("ros2", "node", "list", "--no-daemon", "--spin-time", "4")
        return set(out.stdout.split())

    def wait_for_nodes(self, expected: set[str], timeout: float = 60) -> set[str]:
        """Every node ``ros2 node list`` showed until all of ``expected`` were seen (or the timeout).

        A fresh CLI process discovers the graph anew each time, and on a loaded machine one call
        may miss a node that the next one sees: the calls' results are merged.
        """
        deadline = time.monotonic() + timeout
        seen: set[str] = set()
        while time.monotonic() < deadline:
            seen |= self.nodes()
            if expected <= seen:
                break
        return seen

    def topic_types(self) -> dict[str, str]:
        out = self.run("ros2", "topic", "list", "-t", "--no-daemon", "--spin-time", "4")
        types = {}
        for line in out.stdout.splitlines():
            name, _, kind = line.partition(" ")
            types[name] = kind.strip("[] ")
        return types


class Launch:
    """``ros2 launch moodstream <file> ARG:=VALUE ...`` as a process of its own, its output in a log."""

    def __init__(self, ws: Workspace, *args: str, launch_file: str = "pipeline.launch.py",
                 package: str = "moodstream") -> None:
        self.log_path = ws.base / f"launch-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(["ros2", "launch", package, launch_file, *args], env=ws.env,
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    def wait(self, timeout: float = 60) -> int:
        self.proc.wait(timeout=timeout)
        self._log.close()
        return self.proc.returncode

    def stop(self) -> int:
        """Ctrl-C, as a user stops it: ros2 launch passes SIGINT on to every node."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if not self._log.closed:
            self._log.close()
        return self.proc.returncode

    def __enter__(self) -> Launch:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def colcon(ws: Workspace, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """colcon in the workspace's folder, with its build and install bases."""
    env = {**os.environ, "AMENT_PREFIX_PATH": str(VENV), "CMAKE_PREFIX_PATH": str(VENV),
           "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run([str(VENV_BIN / "colcon"), *args, "--base-paths", str(ROOT / "src"),
                           "--build-base", str(ws.base / "build"), "--install-base", str(ws.install)],
                          cwd=ws.base, env=env, capture_output=True, text=True, timeout=timeout)


#: What a fresh CLI process answers when it has not discovered the node or its services yet.
NOT_FOUND_YET = ("Node not found", "Exception while calling service", "Waiting for service")


def ros2_cli(ws: Workspace, *args: str, attempts: int = 8) -> str:
    """``ros2 ARGS --no-daemon``; a fresh CLI process may not have found the node yet: retried."""
    out = ""
    for _ in range(attempts):
        run = ws.run("ros2", *args, "--no-daemon", "--spin-time", "3")
        out = run.stdout + run.stderr
        if not any(text in out for text in NOT_FOUND_YET):
            return out
    return out


def params_file(folder: Path, changes: dict[str, dict]) -> str:
    """The installed params.yaml with ``changes`` ({node: {name: value}}), written into ``folder``."""
    import yaml

    params = yaml.safe_load((ROOT / "src" / "moodstream" / "config" / "params.yaml").read_text())
    for node, values in changes.items():
        params[f"/**/{node}"]["ros__parameters"].update(values)
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return str(path)
