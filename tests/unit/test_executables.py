"""How a node executable's process ends (moodstream_common.executables): with the node's status once
the final garbage collection has destroyed what is left of rclpy, and, should that collection hang
(as rclpy's or Fast DDS's teardown of a participant did here once, in about 600 exits, while /dev/shm
was nearly full; not in 3,200 exits since), after a bounded time with status 1 and every thread's
stack."""

import os
import subprocess
import sys

import pytest

from moodstream_common.executables import DEFAULT_EXIT_WATCHDOG_S, exit_watchdog_seconds

# A node module whose main() leaves an object in a reference cycle, as rclpy's LifecycleNode does,
# so that only the final collection frees it. The automatic collector is off, so that nothing frees
# it earlier.
NODE_MODULE = """
import gc
import sys
import threading


class Leftover:
    def __init__(self, hang):
        self.me, self.hang = self, hang

    def __del__(self):
        sys.stderr.write("leftover collected\\n")
        if self.hang:  # as a middleware's teardown that never returns
            threading.Event().wait()


def main():
    gc.disable()
    Leftover(hang={hang})
    raise SystemExit({status})
"""


def run_executable(tmp_path, hang: bool, status: int, watchdog: str) -> subprocess.CompletedProcess:
    (tmp_path / "leftover_node.py").write_text(NODE_MODULE.format(hang=hang, status=status))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path]),
           "MOODSTREAM_EXIT_WATCHDOG_S": watchdog}
    code = "from moodstream_common.executables import _executable; _executable('leftover_node')()"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)


def test_the_process_ends_with_the_nodes_status_after_the_final_collection(tmp_path):
    done = run_executable(tmp_path, hang=False, status=3, watchdog="1")
    assert done.returncode == 3, done.stderr
    assert "leftover collected" in done.stderr and "Timeout" not in done.stderr


def test_a_final_collection_that_hangs_ends_the_process_with_status_1_and_its_stack(tmp_path):
    done = run_executable(tmp_path, hang=True, status=0, watchdog="1")
    assert done.returncode == 1, done.stderr
    assert "leftover collected" in done.stderr
    # faulthandler's dump: where the main thread was, in the collection the executable ran
    assert "Timeout (0:00:01)!" in done.stderr and "in __del__" in done.stderr and "in main" in done.stderr


@pytest.mark.parametrize(("value", "seconds"), [(None, DEFAULT_EXIT_WATCHDOG_S), ("30", 30.0), ("0.5", 0.5),
                                                ("soon", DEFAULT_EXIT_WATCHDOG_S), ("0", DEFAULT_EXIT_WATCHDOG_S),
                                                ("inf", DEFAULT_EXIT_WATCHDOG_S), ("nan", DEFAULT_EXIT_WATCHDOG_S)])
def test_the_watchdog_can_be_lengthened_to_attach_a_debugger(monkeypatch, value, seconds):
    if value is None:
        monkeypatch.delenv("MOODSTREAM_EXIT_WATCHDOG_S", raising=False)
    else:
        monkeypatch.setenv("MOODSTREAM_EXIT_WATCHDOG_S", value)
    assert exit_watchdog_seconds() == seconds
