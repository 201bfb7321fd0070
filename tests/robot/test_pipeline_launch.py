"""pipeline.launch.py as a robot runs it: a colcon workspace, `ros2 launch`, separate processes,
and checks from a separate node and from the `ros2` CLI."""

from __future__ import annotations

import re
import time

import cv2
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from helpers import Collector
from sensor_msgs.msg import Image
from workspace import ROOT, Launch, params_file

from moodstream_capture.synthetic import SyntheticScene
from moodstream_common.image_conv import numpy_to_image
from moodstream_common.ros import IMAGE_QOS, RESULT_QOS
from moodstream_interfaces.msg import Emotion

pytestmark = [pytest.mark.ros, pytest.mark.slow]
LABELS = ("happy", "sad", "angry", "neutral", "surprised", "fearful")
PIPELINE = {"/capture", "/detect", "/classify"}


def assert_clean_stop(launch: Launch) -> None:
    """Ctrl-C ends every node with status 0, as a supervisor expects."""
    launch.stop()
    out = launch.output()
    started = len(re.findall(r"process started with pid", out))
    clean = len(re.findall(r"process has finished cleanly", out))
    assert started and clean == started, out[-4000:]


def wait_for_emotion(collector: Collector, topic: str, timeout: float, tick=None) -> bool:
    def done() -> bool:
        if tick is not None:
            tick()
        return any(m.face_present for m in collector.messages[topic])
    return collector.spin_until(done, timeout)


def echo_once(workspace, topic: str, msg_type: str, field: str, *qos: str) -> list[str]:
    """One message's field as `ros2 topic echo --once` prints it, split into words. The type is given
    so the CLI subscribes at once instead of giving up when discovery takes longer than its spin
    time (a loaded CI run saw `Could not determine the type for the passed topic`)."""
    out = workspace.run("ros2", "topic", "echo", topic, msg_type, "--once", "--no-daemon", "--timeout", "30",
                        *qos, "--field", field)
    return out.stdout.split() or [out.stderr]


def test_emotion_reaches_an_outside_node_and_the_cli(workspace):
    launch = Launch(workspace, "console:=true", "rviz:=true")
    outside = Collector("behaviour_controller")
    try:
        outside.subscribe(Emotion, "/emotion", RESULT_QOS)
        assert wait_for_emotion(outside, "/emotion", 90), launch.output()[-4000:]
        face = next(m for m in outside.messages["/emotion"] if m.face_present).face
        assert face.smoothed_label in LABELS and 0.0 < face.smoothed_confidence <= 1.0
        assert list(face.labels) == list(LABELS) and abs(sum(face.probabilities) - 1.0) < 1e-3

        nodes = workspace.wait_for_nodes(PIPELINE | {"/bridge", "/console"})
        assert PIPELINE | {"/bridge", "/console"} <= nodes, nodes
        types = workspace.topic_types()
        assert types.get("/emotion") == "moodstream_interfaces/msg/Emotion", types
        assert types.get("/emotions") == "moodstream_interfaces/msg/EmotionArray", types
        assert types.get("/faces") == "moodstream_interfaces/msg/DetectedFaces", types
        assert types.get("/image_raw") == "sensor_msgs/msg/Image", types
        echo = echo_once(workspace, "/emotion", "moodstream_interfaces/msg/Emotion", "face.smoothed_label")
        assert echo[0] in LABELS, echo
        # The stages share one process (composed:=true, the default) and hand faces over in-process;
        # the faces topic is still published to anyone who subscribes.
        assert re.search(r"\[pipeline_node-\d+\]: process started", launch.output())
        echo = echo_once(workspace, "/faces", "moodstream_interfaces/msg/DetectedFaces", "detector")
        assert echo[0] == "haar", echo
    finally:
        outside.close()
        assert_clean_stop(launch)
    out = launch.output()
    assert "rviz2 is not installed" in out and "moodstream.rviz" in out
    assert re.search(r"\[console.*\] face #\d+: (" + "|".join(LABELS) + r") \(\d+%\)", out), out[-4000:]


def onnx_params(tmp_path) -> str:
    """The installed params.yaml with classify on onnxruntime, what rosdep gives a robot."""
    return params_file(tmp_path, {"classify": {"runtime": "onnx"}})


class Camera:
    """An outside camera driver: synthetic frames on /camera/image_raw, in any encoding."""

    def __init__(self, collector: Collector, topic: str = "/camera/image_raw") -> None:
        self.collector = collector
        self.pub = collector.node.create_publisher(Image, topic, IMAGE_QOS)
        self.scene = SyntheticScene(seed=4)
        self.index = 0
        self.last = 0.0
        self.sent: dict[tuple[int, int], str] = {}  # stamp -> encoding
        self.encoding = "bgr8"

    def tick(self) -> None:
        if time.monotonic() - self.last < 1 / 15:
            return
        self.last = time.monotonic()
        msg = encode(self.scene.render(self.index), self.encoding)
        msg.header.stamp = self.collector.node.get_clock().now().to_msg()
        msg.header.frame_id = "camera"
        self.sent[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = self.encoding
        self.pub.publish(msg)
        self.index += 1

    def answered(self, encoding: str) -> bool:
        """An emotion with a face came back for a frame sent in ``encoding``."""
        return any(m.face_present and self.sent.get((m.header.stamp.sec, m.header.stamp.nanosec)) == encoding
                   for m in self.collector.messages["/emotion"])


def raw_image(height: int, width: int, encoding: str, step: int, data: bytes, bigendian: bool = False) -> Image:
    msg = Image(height=height, width=width, encoding=encoding, step=step, is_bigendian=int(bigendian))
    msg.data = data
    return msg


def encode(bgr: np.ndarray, encoding: str) -> Image:
    """A camera driver's message of ``bgr`` in ``encoding``."""
    h, w = bgr.shape[:2]
    if encoding in ("bgr8", "rgb8"):
        return numpy_to_image(bgr if encoding == "bgr8" else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), encoding)
    if encoding == "rgba8":
        return numpy_to_image(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGBA), "rgba8")
    if encoding == "mono16":  # big-endian, as some industrial cameras send
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(">u2") << 8
        return raw_image(h, w, "mono16", w * 2, gray.tobytes(), bigendian=True)
    if encoding == "yuv422":  # UYVY
        yuv = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV).astype(np.uint16)
        u = ((yuv[:, 0::2, 1] + yuv[:, 1::2, 1]) // 2).astype(np.uint8)
        v = ((yuv[:, 0::2, 2] + yuv[:, 1::2, 2]) // 2).astype(np.uint8)
        packed = np.stack([u, yuv[:, 0::2, 0].astype(np.uint8), v, yuv[:, 1::2, 0].astype(np.uint8)], axis=-1)
        return raw_image(h, w, "yuv422", w * 2, packed.tobytes())
    if encoding == "32FC1":  # a depth image on the wrong topic: nothing the stages can use
        depth = np.full((h, w), 1.5, np.float32)
        return raw_image(h, w, "32FC1", w * 4, depth.tobytes())
    if encoding == "truncated":
        return raw_image(h, w, "bgr8", w * 3, bgr.tobytes()[: w * 3 * 10])
    raise ValueError(encoding)


def test_source_topic_reads_an_outside_camera_in_any_encoding(workspace, tmp_path):
    launch = Launch(workspace, "source:=topic", "image_topic:=/camera/image_raw", "bridge:=false",
                    f"params_file:={onnx_params(tmp_path)}")
    driver = Collector("camera_driver")
    try:
        camera = Camera(driver)
        driver.subscribe(Emotion, "/emotion", RESULT_QOS)
        driver.subscribe(DiagnosticArray, "/diagnostics", 10)
        for encoding in ("bgr8", "rgba8", "mono16", "yuv422", "rgb8"):
            camera.encoding = encoding
            assert driver.spin_until(lambda e=encoding: (camera.tick(), camera.answered(e))[1], 90), (
                f"no emotion for {encoding} frames\n" + launch.output()[-4000:])

        # Frames the stages cannot use: dropped and reported, never a crash.
        def detect_warns(text: str) -> bool:
            return any(s.level == DiagnosticStatus.WARN and s.name.startswith("/detect") and text in s.message
                       for a in driver.messages["/diagnostics"] for s in a.status)
        for encoding, text in (("32FC1", "32FC1"), ("truncated", "bytes")):
            camera.encoding = encoding
            assert driver.spin_until(lambda t=text: (camera.tick(), detect_warns(t))[1], 30), (
                f"no diagnostic for {encoding} frames\n" + launch.output()[-4000:])
        camera.encoding = "bgr8"
        driver.messages["/emotion"].clear()
        assert wait_for_emotion(driver, "/emotion", 60, camera.tick), launch.output()[-4000:]

        nodes = workspace.wait_for_nodes({"/detect", "/classify"})
        assert {"/detect", "/classify"} <= nodes and not nodes & {"/capture", "/bridge"}, nodes
    finally:
        driver.close()
        assert_clean_stop(launch)
    assert "on runtime onnx" in launch.output()


def test_two_cameras_in_two_namespaces(workspace):
    front = Launch(workspace, "namespace:=front", "bridge:=false")
    rear = Launch(workspace, "namespace:=rear", "bridge:=false")
    outside = Collector("two_camera_controller")
    try:
        outside.subscribe(Emotion, "/front/emotion", RESULT_QOS)
        outside.subscribe(Emotion, "/rear/emotion", RESULT_QOS)
        assert outside.spin_until(lambda: all(any(m.face_present for m in outside.messages[t])
                                              for t in ("/front/emotion", "/rear/emotion")), 120), (
            front.output()[-3000:] + rear.output()[-3000:])
        expected = {f"/{ns}{n}" for ns in ("front", "rear") for n in PIPELINE}
        nodes = workspace.wait_for_nodes(expected)
        assert expected <= nodes and "/front/bridge" not in nodes and "/emotion" not in workspace.topic_types()
    finally:
        outside.close()
        try:
            assert_clean_stop(front)
        finally:  # stopped even when the front's stop was not clean: no graph outlives the test
            assert_clean_stop(rear)


def test_a_bad_source_is_refused_with_the_choices(workspace):
    launch = Launch(workspace, "source:=camera")
    assert launch.wait(60) != 0
    out = launch.output()
    assert '"source" provided value "camera" is not valid' in out, out
    for choice in ("synthetic", "webcam", "video", "images", "topic", "openmv"):
        assert f"'{choice}'" in out
    assert "process started" not in out


def test_consent_is_given_and_revoked_with_the_ros2_cli(workspace, tmp_path):
    """Issue 15 as a robot runs it: the YAML's /** policy asks for consent; the launched graph
    processes nothing until `ros2 service call /consent`, the latched state is read with
    `ros2 topic echo`, and revoking stops the emotions."""
    import yaml

    params = yaml.safe_load((ROOT / "src" / "moodstream" / "config" / "params.yaml").read_text())
    params["/**"]["ros__parameters"]["policy"]["require_consent"] = True
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    launch = Launch(workspace, f"params_file:={path}", "bridge:=false")
    outside = Collector("consent_screen")
    try:
        outside.subscribe(Emotion, "/emotion", RESULT_QOS)
        assert workspace.wait_for_nodes(PIPELINE) >= PIPELINE, launch.output()[-3000:]
        state = echo_once(workspace, "/consent/state", "std_msgs/msg/Bool", "data",
                          "--qos-durability", "transient_local", "--qos-reliability", "reliable")
        assert state[:1] == ["False"], state
        outside.spin_until(lambda: False, timeout=3)
        assert outside.messages["/emotion"] == [], "emotions before consent"
        given = workspace.run("ros2", "service", "call", "/consent", "std_srvs/srv/SetBool", "{data: true}")
        assert "success=True" in given.stdout and "consent given" in given.stdout, given.stdout + given.stderr
        assert wait_for_emotion(outside, "/emotion", 60), launch.output()[-3000:]
        revoked = workspace.run("ros2", "service", "call", "/consent", "std_srvs/srv/SetBool", "{data: false}")
        assert "consent revoked" in revoked.stdout, revoked.stdout + revoked.stderr
        outside.spin_until(lambda: False, timeout=1.0)
        count = len(outside.messages["/emotion"])
        outside.spin_until(lambda: False, timeout=3)
        assert len(outside.messages["/emotion"]) == count
    finally:
        outside.close()
        assert_clean_stop(launch)
