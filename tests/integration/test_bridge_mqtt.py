"""The bridge against a real Mosquitto with a password and TLS: payload, QoS 1, topic tree,
retained status and last will, and an outage of the broker with nothing lost."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from helpers import Collector, NodeProcess
from sensor_msgs.msg import RegionOfInterest
from services.mosquitto import Mosquitto, missing

from moodstream_common.ros import RESULT_QOS
from moodstream_interfaces.msg import EmotionArray, FaceEmotion

pytestmark = [pytest.mark.ros, pytest.mark.slow]
LABELS = ["happy", "sad", "angry", "neutral", "surprised", "fearful"]
USER, PASSWORD = "robot", "s3cret-for-tests"


@pytest.fixture
def broker(tmp_path):
    b = Mosquitto(tmp_path, USER, PASSWORD)
    b.start()
    yield b
    b.stop()


class Subscriber:
    """A persistent-session QoS 1 subscriber, as a dashboard's would be."""

    def __init__(self, broker: Mosquitto, client_id: str = "test-subscriber") -> None:
        self.messages: list[mqtt.MQTTMessage] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        self.client.username_pw_set(USER, PASSWORD)
        self.client.tls_set(ca_certs=str(broker.tls["ca"]), cert_reqs=ssl.CERT_REQUIRED)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe([("moodstream/#", 1), ("emotion", 1)])
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 2)
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()

    def _on_message(self, client, userdata, message) -> None:
        with self.lock:
            self.messages.append(message)

    def on(self, topic: str) -> list[mqtt.MQTTMessage]:
        with self.lock:
            return [m for m in self.messages if m.topic == topic]

    def wait(self, condition, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.05)
        return condition()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def emotion_array(i: int) -> EmotionArray:
    probs = [0.05] * 6
    top = i % 6
    probs[top] = 0.75
    msg = EmotionArray(image_width=640, image_height=480, model="moodstream-emotion@test")
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1_790_000_000 + i, 123_456_789
    msg.header.frame_id = "camera"
    msg.faces = [FaceEmotion(
        track_id=3, roi=RegionOfInterest(x_offset=10 + i, y_offset=20, width=80, height=80), detection_score=1.0,
        label=LABELS[top], confidence=0.75, smoothed_label=LABELS[top], smoothed_confidence=0.75,
        labels=LABELS, probabilities=probs, smoothed_probabilities=probs, mood="positive", smoothed_mood="positive",
        moods=["positive", "negative", "neutral", "other"], mood_probabilities=[0.75, 0.15, 0.05, 0.05],
        smoothed_mood_probabilities=[0.75, 0.15, 0.05, 0.05])]
    return msg


PAHO_1_6 = Path(sys.prefix) / "paho-mqtt-1.6"


@pytest.fixture(params=["2.x", "1.6"])
def paho_env(request) -> dict | None:
    """The bridge process's environment: the venv's paho-mqtt 2.x, or 1.6, what rosdep's
    python3-paho-mqtt is on Ubuntu 24.04 (scripts/setup.sh --test puts it beside the venv)."""
    if request.param == "2.x":
        return None
    if not (PAHO_1_6 / "paho" / "mqtt" / "client.py").is_file():
        missing(f"paho-mqtt 1.6 is not in {PAHO_1_6} (scripts/setup.sh --test installs it)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PAHO_1_6), os.environ.get("PYTHONPATH", "")])}
    version = subprocess.run([sys.executable, "-c", "import paho.mqtt; print(paho.mqtt.__version__)"],
                             env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert version == "1.6.1"
    return env


def start_bridge(tmp_path, broker: Mosquitto, env: dict | None = None) -> NodeProcess:
    creds = tmp_path / "mqtt-credentials"
    creds.write_text(f"{USER}:{PASSWORD}\n")
    return NodeProcess("bridge_node", tmp_path, {
        "robot_id": "r1", "camera_id": "front", "mqtt_url": f"mqtts://127.0.0.1:{broker.port}",
        "mqtt_credentials_file": str(creds), "mqtt_ca_file": str(broker.tls["ca"]), "mqtt_legacy_topic": "emotion",
        "outbox_path": str(tmp_path / "outbox.db"), "max_per_second": 0.0, "history": "never",
            "policy.purpose": "tests"}, env=env)


def publish_all(collector: Collector, pub, messages: list[EmotionArray]) -> None:
    """At a camera's pace: the topic keeps the last 10 messages for a subscriber that lags."""
    for msg in messages:
        pub.publish(msg)
        collector.spin_until(lambda: False, timeout=0.03)


def test_payload_topics_status_and_last_will(tmp_path, broker, paho_env):
    sub = Subscriber(broker)
    collector = Collector()
    pub = collector.node.create_publisher(EmotionArray, "/emotions", RESULT_QOS)
    bridge = start_bridge(tmp_path, broker, paho_env)
    try:
        assert collector.spin_until(lambda: pub.get_subscription_count() > 0, timeout=30), bridge.output()
        assert sub.wait(lambda: sub.on("moodstream/r1/front/status"), timeout=20), bridge.output()
        publish_all(collector, pub, [emotion_array(i) for i in range(6)])
        assert sub.wait(lambda: len(sub.on("moodstream/r1/front/emotion")) >= 6, timeout=20), bridge.output()
        payloads = [json.loads(m.payload) for m in sub.on("moodstream/r1/front/emotion")]
        first = payloads[0]
        assert first == {
            "schema": "moodstream.emotion/1", "id": "r1/front/1790000000123456789/3", "robot": "r1",
            "camera": "front", "source": "pipeline", "model": "moodstream-emotion@test",
            "timestamp": "2026-09-21T14:13:20.123456789Z", "timestamp_ns": 1790000000123456789, "track_id": 3,
            "box": {"x": 10, "y": 20, "width": 80, "height": 80}, "label": "happy", "confidence": 0.75,
            "probabilities": {"happy": 0.75, "sad": 0.05, "angry": 0.05, "neutral": 0.05, "surprised": 0.05,
                              "fearful": 0.05},
            "smoothed_label": "happy", "smoothed_confidence": 0.75, "mood": "positive", "smoothed_mood": "positive"}
        assert [p["label"] for p in payloads[:6]] == LABELS
        assert all(m.qos == 1 for m in sub.on("moodstream/r1/front/emotion"))
        assert [m.payload.decode() for m in sub.on("emotion")][:6] == LABELS  # the legacy bare label
        # A newcomer gets the retained status.
        late = Subscriber(broker, client_id="late-subscriber")
        assert late.wait(lambda: late.on("moodstream/r1/front/status"), timeout=10)
        status = late.on("moodstream/r1/front/status")[0]
        assert status.retain and json.loads(status.payload)["state"] == "online"
        late.close()
        # The bridge dies without a word: the broker publishes its last will.
        bridge.proc.send_signal(signal.SIGKILL)
        assert sub.wait(lambda: json.loads(sub.on("moodstream/r1/front/status")[-1].payload)["state"] == "offline",
                        timeout=20)
    finally:
        bridge.stop()
        collector.close()
        sub.close()


def test_broker_outage_loses_nothing(tmp_path, broker, paho_env):
    sub = Subscriber(broker)
    collector = Collector()
    pub = collector.node.create_publisher(EmotionArray, "/emotions", RESULT_QOS)
    bridge = start_bridge(tmp_path, broker, paho_env)
    sent = [emotion_array(i) for i in range(60)]
    try:
        assert collector.spin_until(lambda: pub.get_subscription_count() > 0, timeout=30), bridge.output()
        assert sub.wait(lambda: sub.on("moodstream/r1/front/status"), timeout=20)
        publish_all(collector, pub, sent[:20])
        assert sub.wait(lambda: len(sub.on("moodstream/r1/front/emotion")) >= 20, timeout=20)
        broker.stop()
        publish_all(collector, pub, sent[20:45])  # accepted while the broker is away
        collector.spin_until(lambda: False, timeout=1.0)
        broker.start()
        publish_all(collector, pub, sent[45:])
        expected = {f"r1/front/{1_790_000_000 + i}123456789/3" for i in range(60)}

        def all_arrived() -> bool:
            return {json.loads(m.payload)["id"] for m in sub.on("moodstream/r1/front/emotion")} >= expected
        assert sub.wait(all_arrived, timeout=60), bridge.output()
    finally:
        bridge.stop()
        collector.close()
        sub.close()
    by_id = {}
    for m in sub.on("moodstream/r1/front/emotion"):
        payload = json.loads(m.payload)
        assert by_id.setdefault(payload["id"], payload) == payload  # a repeat is the same message
    assert set(by_id) == expected
    for i, msg in enumerate(sent):
        p = by_id[f"r1/front/{1_790_000_000 + i}123456789/3"]
        assert p["label"] == msg.faces[0].label and p["box"]["x"] == msg.faces[0].roi.x_offset


def test_bridge_restart_while_the_broker_is_down_loses_nothing(tmp_path, broker):
    sub = Subscriber(broker)
    assert sub.wait(lambda: sub.client.is_connected(), timeout=10)
    broker.stop()
    collector = Collector()
    pub = collector.node.create_publisher(EmotionArray, "/emotions", RESULT_QOS)
    bridge = start_bridge(tmp_path, broker)
    try:
        assert collector.spin_until(lambda: pub.get_subscription_count() > 0, timeout=30), bridge.output()
        publish_all(collector, pub, [emotion_array(i) for i in range(10)])
        collector.spin_until(lambda: False, timeout=0.5)
        bridge.stop()  # accepted, never sent: they wait in the outbox on disk
        broker.start()
        bridge = start_bridge(tmp_path, broker)  # the same outbox file
        expected = {f"r1/front/{1_790_000_000 + i}123456789/3" for i in range(10)}
        assert sub.wait(lambda: {json.loads(m.payload)["id"] for m in sub.on("moodstream/r1/front/emotion")}
                        >= expected, timeout=60), bridge.output()
    finally:
        bridge.stop()
        collector.close()
        sub.close()


def test_runner_points_at_a_broker_in_one_step(tmp_path, broker, face_clip):
    sub = Subscriber(broker)
    creds = tmp_path / "creds"
    creds.write_text(f"{USER}:{PASSWORD}\n")
    out = subprocess.run([str(Path(sys.executable).parent / "moodstream"), "run", "--source", "video", str(face_clip),
                          "--once", "-p", "policy.purpose=tests", "--mqtt", f"mqtts://127.0.0.1:{broker.port}",
                          "--mqtt-ca", str(broker.tls["ca"]),
                          "--mqtt-credentials", str(creds), "--robot-id", "lab", "--camera-id", "desk"],
                         capture_output=True, text=True, timeout=120)
    try:
        assert out.returncode == 0, out.stdout + out.stderr
        assert sub.wait(lambda: sub.on("moodstream/lab/desk/emotion"), timeout=20), out.stderr
        first = json.loads(sub.on("moodstream/lab/desk/emotion")[0].payload)
        assert first["label"] in LABELS and first["source"] == "pipeline" and first["smoothed_label"] == "happy"
        assert json.loads(sub.on("moodstream/lab/desk/status")[-1].payload)["state"] == "offline"  # a clean stop
    finally:
        sub.close()


def test_a_tls_failure_is_reported_with_its_reason(tmp_path, broker):
    """Issue 13, D6: a wrong CA is an ERROR in /diagnostics and one log line, not a silent retry."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
    from services.mosquitto import make_tls

    other = tmp_path / "other-ca"
    other.mkdir()
    wrong_ca = make_tls(other)["ca"]
    creds = tmp_path / "mqtt-credentials"
    creds.write_text(f"{USER}:{PASSWORD}\n")
    collector = Collector()
    collector.subscribe(DiagnosticArray, "/diagnostics", 10)
    bridge = NodeProcess("bridge_node", tmp_path, {
        "mqtt_url": f"mqtts://127.0.0.1:{broker.port}", "mqtt_credentials_file": str(creds),
        "mqtt_ca_file": str(wrong_ca), "outbox_path": str(tmp_path / "outbox.db"), "history": "never",
            "policy.purpose": "tests"})
    try:
        def tls_error() -> bool:
            return any(s.level == DiagnosticStatus.ERROR and "certificate verify failed" in s.message
                       for d in collector.messages["/diagnostics"] for s in d.status if s.name.startswith("/bridge"))
        assert collector.spin_until(tls_error, timeout=30), bridge.output()
        collector.spin_until(lambda: False, timeout=4.0)  # paho retries meanwhile
    finally:
        collector.close()
        bridge.stop()
    log = bridge.output()
    assert log.count("certificate verify failed") == 1, log  # logged once, not at every retry


def test_policy_flags_reach_the_status_topic_and_aggregates_the_summary_topic(tmp_path, broker):
    """Issue 15: in aggregate mode (policy.context public) the bridge relays emotions/summary to
    .../summary; an unknown subscriber to an emotion topic shows in the retained status's flags,
    and clears when it leaves."""
    from moodstream_interfaces.msg import EmotionSummary

    sub = Subscriber(broker)
    collector = Collector("snoop")
    creds = tmp_path / "mqtt-credentials"
    creds.write_text(f"{USER}:{PASSWORD}\n")
    bridge = NodeProcess("bridge_node", tmp_path, {
        "robot_id": "r1", "camera_id": "front", "mqtt_url": f"mqtts://127.0.0.1:{broker.port}",
        "mqtt_credentials_file": str(creds), "mqtt_ca_file": str(broker.tls["ca"]),
        "outbox_path": str(tmp_path / "outbox.db"), "policy.purpose": "tests", "policy.context": "public",
        "policy.allowed_consumers": "bridge", "policy.audit_log": str(tmp_path / "audit.jsonl")})
    try:
        pub = collector.node.create_publisher(EmotionSummary, "/emotions/summary", RESULT_QOS)
        assert collector.spin_until(lambda: pub.get_subscription_count() > 0, timeout=30), bridge.output()
        msg = EmotionSummary(frames=30, face_observations=45, people=3, max_faces_in_view=2, suppressed=False,
                             labels=LABELS, counts=[20, 5, 0, 20, 0, 0], shares=[4 / 9, 1 / 9, 0, 4 / 9, 0, 0])
        msg.header.stamp.sec, msg.window_start.sec = 1_790_000_060, 1_790_000_000
        pub.publish(msg)
        assert sub.wait(lambda: sub.on("moodstream/r1/front/summary"), timeout=20), bridge.output()
        payload = json.loads(sub.on("moodstream/r1/front/summary")[0].payload)
        assert payload == {
            "schema": "moodstream.summary/1", "robot": "r1", "camera": "front",
            "window_start": "2026-09-21T14:13:20.000Z", "window_end": "2026-09-21T14:14:20.000Z",
            "frames": 30, "face_observations": 45, "people": 3, "max_faces_in_view": 2, "suppressed": False,
            "counts": dict(zip(LABELS, [20, 5, 0, 20, 0, 0], strict=True)),
            "shares": {"happy": 0.444444, "sad": 0.111111, "angry": 0.0, "neutral": 0.444444, "surprised": 0.0,
                       "fearful": 0.0}}
        assert not sub.on("moodstream/r1/front/emotion")

        def status_flags() -> list:
            found = sub.on("moodstream/r1/front/status")
            return json.loads(found[-1].payload).get("flags", []) if found else []

        snoop = collector.node.create_subscription(EmotionSummary, "/emotions/summary", lambda m: None, RESULT_QOS)
        assert sub.wait(lambda: any(f["code"] == "unknown_subscriber" for f in status_flags()), timeout=30), \
            bridge.output()
        flag = next(f for f in status_flags() if f["code"] == "unknown_subscriber")
        assert flag["level"] == "error" and flag["subject"] == "/emotions/summary <- /snoop"
        collector.node.destroy_subscription(snoop)
        assert sub.wait(lambda: status_flags() == [] and len(sub.on("moodstream/r1/front/status")) >= 3,
                        timeout=30), bridge.output()
    finally:
        bridge.stop()
        collector.close()
        sub.close()
