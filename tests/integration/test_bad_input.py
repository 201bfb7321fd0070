"""Bad input at the node level, on real topics and processes: clear errors, no crash loops."""

from __future__ import annotations

import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from helpers import Collector, NodeProcess
from sensor_msgs.msg import Image

from moodstream_capture.synthetic import SyntheticScene
from moodstream_common.image_conv import numpy_to_image
from moodstream_common.ros import IMAGE_QOS, RESULT_QOS
from moodstream_interfaces.msg import DetectedFaces

pytestmark = [pytest.mark.ros]


def test_corrupt_model_stops_classify_with_one_clear_line(tmp_path, repo_root):
    bad = tmp_path / "emotion.tflite"
    bad.write_bytes(b"garbage" * 100)
    (tmp_path / "emotion.json").write_text((repo_root / "models" / "emotion.json").read_text())
    proc = NodeProcess("classify_node", tmp_path, {"model_path": str(bad)})
    proc.proc.wait(timeout=30)
    out = proc.output()
    proc.stop()
    assert proc.proc.returncode == 1
    assert f"{bad} is not a loadable TFLite model" in out
    assert "Traceback" not in out


def test_missing_camera_retries_with_backoff_and_reports_it(tmp_path):
    collector = Collector()
    collector.subscribe(DiagnosticArray, "/diagnostics", 10)
    proc = NodeProcess("capture_node", tmp_path, {"source": "webcam", "device": "/dev/video-moodstream-none",
                                                  "reconnect_max_s": 1.0})
    try:
        def capture_error():
            return any(s.level == DiagnosticStatus.ERROR and "capture" in s.name
                       for d in collector.messages["/diagnostics"] for s in d.status)
        assert collector.spin_until(capture_error, timeout=20), proc.output()
        time.sleep(2)
        assert proc.proc.poll() is None, "capture_node exited instead of retrying"
    finally:
        proc.stop()
        collector.close()
    out = proc.output()
    assert "/dev/video-moodstream-none does not exist: is it plugged in?" in out
    assert out.count("retrying in") >= 3
    assert "Traceback" not in out


def test_detect_drops_bad_frames_and_keeps_going(tmp_path):
    collector = Collector()
    collector.subscribe(DetectedFaces, "/faces", RESULT_QOS)
    pub = collector.node.create_publisher(Image, "/image_mono", IMAGE_QOS)  # detect's input; colour is converted
    proc = NodeProcess("detect_node", tmp_path)
    try:
        assert collector.spin_until(lambda: pub.get_subscription_count() > 0, timeout=20)
        bad_frames = [Image(height=0, width=0, encoding="bgr8"),
                      Image(height=480, width=640, encoding="bgr8", step=1920, data=bytes(100)),
                      Image(height=4, width=4, encoding="32FC1", step=16, data=bytes(64))]
        good = numpy_to_image(SyntheticScene(seed=0).render(0))

        def faces_arrived():
            return any(m.faces for m in collector.messages["/faces"])
        for _ in range(40):
            for frame in bad_frames:  # one at a time: the input keeps only the newest frame
                pub.publish(frame)
                collector.spin_until(lambda: False, timeout=0.05)
            pub.publish(good)
            # Until a face came through and a bad frame was seen (the input keeps the newest frame
            # only, so a slow start can overwrite a bad frame before detect takes it).
            if collector.spin_until(faces_arrived, timeout=0.25) and "dropped a frame" in proc.output():
                break
        assert faces_arrived(), proc.output()
        assert proc.proc.poll() is None
    finally:
        proc.stop()
        collector.close()
    out = proc.output()
    assert "dropped a frame" in out and "Traceback" not in out


def test_odd_sized_frames_go_through(tmp_path):
    """Frames of odd sizes (not 640x480, odd widths, gray) are valid input for the detector."""
    from moodstream_detect.detectors import HaarDetector

    detector = HaarDetector(1.1, 4, 48, 0.6)
    for shape in [(241, 317), (480, 641), (101, 99)]:
        assert detector.detect(np.zeros(shape, np.uint8)) == []
