"""A stage's destroy_node() releases its rcl node, and with a process's last node the DDS participant
and its shared-memory segment, at once: not at some later garbage collection or at interpreter exit
(rclpy's own LifecycleNode stays in reference cycles until collected)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = [pytest.mark.ros]

# Run in a process of its own, with the collector off: only what destroy_node() frees goes.
STAGE = textwrap.dedent("""
    import gc
    import json
    from pathlib import Path

    import rclpy

    from moodstream_detect.node import DetectNode

    gc.disable()


    def segments():
        maps = Path("/proc/self/maps").read_text().splitlines()
        return sorted({line.split()[-1] for line in maps
                       if " /dev/shm/fastdds_" in line and "fastdds_port" not in line})


    rclpy.init()
    node = DetectNode()
    node.bring_up()
    seen = {"up": [node.state, segments()]}
    node.destroy_node()
    seen["destroyed"] = [node.state, segments()]
    node.destroy_node()  # a second call (a supervisor's clean-up after a failed start) is harmless
    seen["again"] = [node.state, segments()]
    rclpy.shutdown()
    print(json.dumps(seen))
""")


def test_destroying_a_stage_releases_its_participant_without_a_garbage_collection():
    done = subprocess.run([sys.executable, "-c", STAGE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    state, segments = seen["up"]
    assert state == "active" and segments, "no shared-memory segment while up: the check proves nothing"
    assert seen["destroyed"] == ["finalized", []]
    assert seen["again"] == ["finalized", []]
