"""How the launched stages behave as processes: respawned when one dies, and stopped cleanly
however Ctrl-C or a supervisor's SIGTERM reaches them."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest
from helpers import Collector
from test_pipeline_launch import wait_for_emotion
from workspace import Launch, params_file

from moodstream_common.environment import PROFILE_VARIABLES
from moodstream_common.ros import RESULT_QOS
from moodstream_interfaces.msg import Emotion

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def pid_of(launch: Launch, executable: str) -> int:
    """The newest process of ``executable`` that ros2 launch started."""
    pids = re.findall(rf"\[{executable}-\d+\]: process started with pid \[(\d+)\]", launch.output())
    assert pids, launch.output()[-3000:]
    return int(pids[-1])


@pytest.mark.parametrize(("composed", "executable"), [("true", "pipeline_node"), ("false", "classify_node")])
def test_a_stage_that_dies_is_started_again(workspace, composed, executable):
    launch = Launch(workspace, "bridge:=false", f"composed:={composed}")
    outside = Collector("respawn_watcher")
    try:
        outside.subscribe(Emotion, "/emotion", RESULT_QOS)
        assert wait_for_emotion(outside, "/emotion", 90), launch.output()[-4000:]
        first = pid_of(launch, executable)
        os.kill(first, signal.SIGKILL)
        assert outside.spin_until(lambda: pid_of(launch, executable) != first, 30), launch.output()[-4000:]
        outside.messages["/emotion"].clear()
        assert wait_for_emotion(outside, "/emotion", 90), launch.output()[-4000:]
    finally:
        outside.close()
        launch.stop()
    assert re.search(rf"\[{executable}-\d+\]: process has died \[pid \d+, exit code -9", launch.output())


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
        assert sorted(started) == ["bridge_node", "console_node", "pipeline_node"], out[-4000:]
        assert sorted(clean) == sorted(started), out[-4000:]
        assert "process has died" not in out and "Traceback" not in out, out[-4000:]


def test_frames_carry_the_optical_frame_and_their_camera_info(workspace, tmp_path):
    import yaml
    from sensor_msgs.msg import CameraInfo, Image

    from moodstream_common.ros import IMAGE_QOS

    calibration = tmp_path / "front.yaml"
    calibration.write_text(yaml.safe_dump({
        "image_width": 640, "image_height": 480, "camera_name": "front",
        "camera_matrix": {"rows": 3, "cols": 3, "data": [600, 0, 320, 0, 600, 240, 0, 0, 1]},
        "distortion_model": "plumb_bob", "distortion_coefficients": {"rows": 1, "cols": 5, "data": [0.0] * 5},
        "rectification_matrix": {"rows": 3, "cols": 3, "data": [1, 0, 0, 0, 1, 0, 0, 0, 1]},
        "projection_matrix": {"rows": 3, "cols": 4, "data": [600, 0, 320, 0, 0, 600, 240, 0, 0, 0, 1, 0]}}))
    params = params_file(tmp_path, {"capture": {"camera_info_file": f"file://{calibration}"}})
    launch = Launch(workspace, "bridge:=false", f"params_file:={params}")
    outside = Collector("calibration_watcher")
    try:
        outside.subscribe(Image, "/image_raw", IMAGE_QOS)
        outside.subscribe(CameraInfo, "/camera_info", IMAGE_QOS)
        outside.subscribe(Emotion, "/emotion", RESULT_QOS)

        def matched() -> bool:
            images = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in outside.messages["/image_raw"]}
            return any((i.header.stamp.sec, i.header.stamp.nanosec) in images for i in outside.messages["/camera_info"])
        assert outside.spin_until(lambda: matched() and outside.messages["/emotion"], 90), launch.output()[-4000:]
        info = outside.messages["/camera_info"][-1]
        assert (info.width, info.height, info.k[0], info.header.frame_id) == (640, 480, 600.0, "camera_optical_frame")
        assert outside.messages["/image_raw"][-1].header.frame_id == "camera_optical_frame"
        assert outside.messages["/emotion"][-1].header.frame_id == "camera_optical_frame"
    finally:
        outside.close()
        launch.stop()


def stage_levels(collector: Collector, since: int) -> dict[str, tuple[int, str]]:
    """The latest (level, message) of each stage in /diagnostics messages from index ``since`` on."""
    levels = {}
    for array in collector.messages["/diagnostics"][since:]:
        for status in array.status:
            levels[status.name.split(":")[0]] = (status.level, status.message)
    return levels


def test_a_stalled_camera_turns_the_stages_to_warn_and_back(workspace):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

    launch = Launch(workspace, "bridge:=false", "console:=true", "composed:=false")  # a camera process to stop
    outside = Collector("stall_watcher")
    try:
        outside.subscribe(Emotion, "/emotion", RESULT_QOS)
        outside.subscribe(DiagnosticArray, "/diagnostics", 10)
        assert wait_for_emotion(outside, "/emotion", 90), launch.output()[-4000:]
        watched = ("/detect", "/classify", "/console")
        assert outside.spin_until(lambda: all(stage_levels(outside, 0).get(s, (9,))[0] == DiagnosticStatus.OK
                                              for s in watched), 30), stage_levels(outside, 0)
        capture = pid_of(launch, "capture_node")
        os.kill(capture, signal.SIGSTOP)  # a camera that hangs: no frames, no exit
        try:
            mark = len(outside.messages["/diagnostics"])
            assert outside.spin_until(lambda: all(stage_levels(outside, mark).get(s, (0,))[0] == DiagnosticStatus.WARN
                                                  for s in watched), 5.0 + 1.0), stage_levels(outside, mark)
            assert outside.spin_until(lambda: "no images for" in stage_levels(outside, mark)["/detect"][1], 5.0), (
                stage_levels(outside, mark))
        finally:
            os.kill(capture, signal.SIGCONT)
        mark = len(outside.messages["/diagnostics"])
        assert outside.spin_until(lambda: all(stage_levels(outside, mark).get(s, (9,))[0] == DiagnosticStatus.OK
                                              for s in watched), 15), stage_levels(outside, mark)
    finally:
        outside.close()
        launch.stop()


def shm_segment_of(pid: int) -> int:
    """The shared-memory segment size of the Fast DDS profile process ``pid`` was started with."""
    environ = dict(item.split("=", 1) for item in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in item)
    profiles = [environ[name] for name in PROFILE_VARIABLES if name in environ]
    assert len(profiles) == 1, profiles
    return int(re.search(r"<segment_size>(\d+)</segment_size>", Path(profiles[0]).read_text())[1])


def test_each_process_gets_the_dds_profile_for_what_it_publishes(workspace):
    launch = Launch(workspace, "composed:=false", "console:=true")  # and the bridge, as by default
    outside = Collector("profile_watcher")
    try:
        outside.subscribe(Emotion, "/emotion", RESULT_QOS)
        # Frames cross from capture's 8 MB segment to detect, which has a 2 MB one of its own.
        assert wait_for_emotion(outside, "/emotion", 90), launch.output()[-4000:]
        segments = {exe: shm_segment_of(pid_of(launch, exe))
                    for exe in ("capture_node", "detect_node", "classify_node", "bridge_node", "console_node")}
        mib = 1 << 20
        assert segments == {"capture_node": 8 * mib, "classify_node": 8 * mib,  # they publish images
                            "detect_node": 2 * mib, "bridge_node": 2 * mib, "console_node": 2 * mib}, segments
    finally:
        outside.close()
        launch.stop()


def test_a_paused_stage_resumes_with_the_newest_frame_not_a_backlog(workspace):
    launch = Launch(workspace, "bridge:=false", "composed:=false")  # classify in a process of its own to pause
    outside = Collector("backlog_watcher")
    try:
        outside.subscribe(Emotion, "/emotion", RESULT_QOS)
        assert wait_for_emotion(outside, "/emotion", 90), launch.output()[-4000:]
        classify = pid_of(launch, "classify_node")
        clock = outside.node.get_clock()
        os.kill(classify, signal.SIGSTOP)  # busy for 3 s while detect goes on at 30 fps
        paused_from = clock.now().nanoseconds
        outside.spin_until(lambda: False, 3.0)
        paused_to = clock.now().nanoseconds
        os.kill(classify, signal.SIGCONT)
        outside.spin_until(lambda: False, 3.0)
        stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in outside.messages["/emotion"]]
        from_pause = [s for s in stamps if paused_from + 2 * 10**8 < s < paused_to]
        after = [s for s in stamps if s >= paused_to]
        # ~90 frames were detected during the pause: at most the newest comes through, then live frames.
        assert len(from_pause) <= 2 and len(after) >= 10, (len(from_pause), len(after))
    finally:
        outside.close()
        launch.stop()


def test_parameters_are_described_checked_and_applied_live(workspace, tmp_path):
    from workspace import ros2_cli

    from moodstream_interfaces.msg import DetectedFaces

    params = params_file(tmp_path, {"capture": {"synthetic_faces": 2}})
    launch = Launch(workspace, "bridge:=false", f"params_file:={params}")
    outside = Collector("parameter_watcher")
    try:
        outside.subscribe(DetectedFaces, "/faces", RESULT_QOS)
        assert outside.spin_until(lambda: any(len(m.faces) == 2 for m in outside.messages["/faces"]), 90), (
            launch.output()[-4000:])
        described = ros2_cli(workspace, "param", "describe", "/detect", "downscale")
        assert "detect on a frame this much smaller" in described and "Min value: 0.1" in described, described
        refused = {
            ("/classify", "smoothing_alpha", "5.0"): "out of range",
            ("/classify", "smoothing", "bogus"): "smoothing must be one of ema, window, none, got 'bogus'",
            ("/capture", "source", "webcam"): "read-only",
            ("/detect", "detector", "yolo"): "unknown detector 'yolo'",
        }
        for (node, name, value), reason in refused.items():
            out = ros2_cli(workspace, "param", "set", node, name, value)
            assert "Setting parameter failed" in out and reason in out, (node, name, out)
        assert "Set parameter successful" in ros2_cli(workspace, "param", "set", "/detect", "max_faces", "1")
        applied = time.time()
        outside.messages["/faces"].clear()

        def stamped_later() -> list:
            # Frames taken after the change; those before it may still wait in the reliable queue
            # (depth 10) while the CLI runs, and hold two faces.
            return [m for m in outside.messages["/faces"]
                    if m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 > applied]

        outside.spin_until(lambda: len(stamped_later()) >= 30, 30)
        later = stamped_later()
        assert later and all(len(m.faces) <= 1 for m in later), [len(m.faces) for m in later]
        assert "Integer value is: 1" in ros2_cli(workspace, "param", "get", "/detect", "max_faces")
    finally:
        outside.close()
        launch.stop()
    assert "parameters changed: max_faces=1" in launch.output()


def test_lifecycle_pauses_the_camera_and_resumes_it(workspace):
    """ros2 lifecycle set /capture deactivate: /emotion stops within a second and the camera is
    released; activate: it resumes. The state shows in /diagnostics."""
    from diagnostic_msgs.msg import DiagnosticArray
    from workspace import ros2_cli

    launch = Launch(workspace, "bridge:=false")
    outside = Collector("lifecycle_watcher")
    try:
        outside.subscribe(Emotion, "/emotion", RESULT_QOS)
        outside.subscribe(DiagnosticArray, "/diagnostics", 10)
        assert wait_for_emotion(outside, "/emotion", 90), launch.output()[-4000:]
        for node in ("/capture", "/detect", "/classify"):
            assert "active [3]" in ros2_cli(workspace, "lifecycle", "get", node)
        assert "Transitioning successful" in ros2_cli(workspace, "lifecycle", "set", "/capture", "deactivate")
        outside.spin_until(lambda: False, 1.0)
        paused_at = len(outside.messages["/emotion"])
        outside.spin_until(lambda: False, 3.0)
        assert len(outside.messages["/emotion"]) == paused_at, "emotions kept coming with the camera inactive"
        assert "inactive [2]" in ros2_cli(workspace, "lifecycle", "get", "/capture")
        capture_state = [dict((kv.key, kv.value) for kv in s.values)["lifecycle"]
                         for a in outside.messages["/diagnostics"] for s in a.status if s.name.startswith("/capture")]
        assert capture_state and capture_state[-1] == "inactive", capture_state[-3:]
        assert "Transitioning successful" in ros2_cli(workspace, "lifecycle", "set", "/capture", "activate")
        assert outside.spin_until(lambda: len(outside.messages["/emotion"]) > paused_at + 5, 30)
    finally:
        outside.close()
        launch.stop()
    out = launch.output()
    assert "released synthetic" in out and re.search(r"\[capture\]: inactive", out), out[-3000:]


def test_autostart_false_waits_for_a_lifecycle_manager(workspace, tmp_path):
    from workspace import ros2_cli

    params = params_file(tmp_path, {node: {"autostart": False} for node in ("capture", "detect", "classify")})
    launch = Launch(workspace, "bridge:=false", f"params_file:={params}")
    outside = Collector("manager")
    try:
        outside.subscribe(Emotion, "/emotion", RESULT_QOS)
        assert "unconfigured [1]" in ros2_cli(workspace, "lifecycle", "get", "/classify")
        assert not wait_for_emotion(outside, "/emotion", 3.0)
        for node in ("/classify", "/detect", "/capture"):  # as a lifecycle manager would
            for transition in ("configure", "activate"):
                out = ros2_cli(workspace, "lifecycle", "set", node, transition)
                assert "Transitioning successful" in out, (node, transition, out)
        assert wait_for_emotion(outside, "/emotion", 60), launch.output()[-4000:]
    finally:
        outside.close()
        launch.stop()
