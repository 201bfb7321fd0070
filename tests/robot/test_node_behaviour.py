"""How the launched stages behave as processes: respawned when one dies, and stopped cleanly
however Ctrl-C or a supervisor's SIGTERM reaches them."""

from __future__ import annotations

import os
import re
import signal

import pytest
from helpers import Collector
from test_pipeline_launch import wait_for_emotion
from workspace import Launch

from moodstream_common.ros import RESULT_QOS
from moodstream_interfaces.msg import Emotion

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def pid_of(launch: Launch, executable: str) -> int:
    """The newest process of ``executable`` that ros2 launch started."""
    pids = re.findall(rf"\[{executable}-\d+\]: process started with pid \[(\d+)\]", launch.output())
    assert pids, launch.output()[-3000:]
    return int(pids[-1])


def test_a_stage_that_dies_is_started_again(workspace):
    launch = Launch(workspace, "bridge:=false")
    outside = Collector("respawn_watcher")
    try:
        outside.subscribe(Emotion, "/emotion", RESULT_QOS)
        assert wait_for_emotion(outside, "/emotion", 90), launch.output()[-4000:]
        first = pid_of(launch, "classify_node")
        os.kill(first, signal.SIGKILL)
        assert outside.spin_until(lambda: pid_of(launch, "classify_node") != first, 30), launch.output()[-4000:]
        outside.messages["/emotion"].clear()
        assert wait_for_emotion(outside, "/emotion", 90), launch.output()[-4000:]
    finally:
        outside.close()
        launch.stop()
    assert re.search(r"\[classify_node-\d+\]: process has died \[pid \d+, exit code -9", launch.output())


def test_ctrl_c_on_the_whole_process_group_stops_every_node_cleanly(workspace):
    """What a terminal's Ctrl-C does: every process of the group gets SIGINT at once, and ros2
    launch sends its nodes SIGINT again. Twice, as the race it used to lose was timing-dependent."""
    for _ in range(2):
        launch = Launch(workspace, "console:=true")
        outside = Collector("signal_watcher")
        try:
            outside.subscribe(Emotion, "/emotion", RESULT_QOS)
            assert wait_for_emotion(outside, "/emotion", 90), launch.output()[-4000:]
        finally:
            outside.close()
        os.killpg(launch.proc.pid, signal.SIGINT)
        launch.wait(60)
        out = launch.output()
        started = re.findall(r"\[(\w+)-\d+\]: process started", out)
        clean = re.findall(r"\[(\w+)-\d+\]: process has finished cleanly", out)
        assert len(started) == 5 and sorted(clean) == sorted(started), out[-4000:]
        assert "process has died" not in out and "Traceback" not in out, out[-4000:]
