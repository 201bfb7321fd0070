"""The shipped Node-RED flow (docker/node-red/flows.json) in a real Node-RED, between a real
Mosquitto (with a password) and a real InfluxDB: a published emotion lands in InfluxDB with its
timestamp and emoji, and so does an aggregate window; garbage is counted and dropped and does not
stop the flow."""

from __future__ import annotations

import json
import time

import paho.mqtt.client as mqtt
import pytest
from services.influxdb import InfluxDB
from services.mosquitto import Mosquitto
from services.nodered import NodeRed

pytestmark = [pytest.mark.slow]
USER, PASSWORD = "nodered", "flow-test-password"


def payload(i: int, label: str) -> bytes:
    probs = {lab: (0.75 if lab == label else 0.05) for lab in ("happy", "sad", "angry", "neutral", "surprised",
                                                                "fearful")}
    return json.dumps({
        "schema": "moodstream.emotion/1", "id": f"r1/front/{i}/1", "robot": "r1", "camera": "front",
        "source": "pipeline", "model": "m@1", "timestamp": f"2026-11-26T10:00:{i:02d}.250000000Z",
        "timestamp_ns": 0, "track_id": 1, "box": {"x": 1, "y": 2, "width": 3, "height": 4}, "label": label,
        "confidence": 0.75, "probabilities": probs, "smoothed_label": label, "smoothed_confidence": 0.7,
        "mood": "positive", "smoothed_mood": "positive"}).encode()


def test_flow_adds_timestamp_and_emoji_and_survives_garbage(tmp_path):
    (tmp_path / "mq").mkdir()
    (tmp_path / "db").mkdir()
    broker = Mosquitto(tmp_path / "mq", USER, PASSWORD, tls=False)
    influx = InfluxDB(tmp_path / "db")
    broker.start()
    influx.start()
    red = NodeRed(tmp_path, {"MQTT_HOST": "127.0.0.1", "MQTT_PORT": str(broker.port), "MQTT_USERNAME": USER,
                             "MQTT_PASSWORD": PASSWORD, "INFLUX_HOST": "127.0.0.1", "INFLUX_PORT": str(influx.port),
                             "INFLUX_DATABASE": influx.database, "INFLUX_USERNAME": "", "INFLUX_PASSWORD": ""})
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-publisher")
    try:
        red.start()
        client.username_pw_set(USER, PASSWORD)
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        garbage = [b"not json", b"{\"schema\": \"moodstream.emotion/1\"}", b"\xff\xfe", b"[1,2,3]", b"null",
                   json.dumps({"schema": "other/1", "label": "happy"}).encode()]
        for i, label in enumerate(["happy", "angry", "surprised"]):
            client.publish("moodstream/r1/front/emotion", garbage[i], qos=1).wait_for_publish(5)
            client.publish("moodstream/r1/front/emotion", payload(i, label), qos=1).wait_for_publish(5)
        for extra in garbage[3:]:
            client.publish("moodstream/r1/front/emotion", extra, qos=1).wait_for_publish(5)
        client.publish("moodstream/r1/front/emotion", payload(9, "sad"), qos=1).wait_for_publish(5)
        deadline = time.monotonic() + 30
        points = []
        while time.monotonic() < deadline and len(points) < 4:
            points = influx.points("SELECT * FROM emotion")
            time.sleep(0.3)
        assert len(points) == 4, red.log.read_text()[-3000:]
        by_label = {p["label"]: p for p in points}
        assert {p["emoji"] for p in points} == {"😊", "😡", "😲", "😢"}
        happy = by_label["happy"]
        assert happy["time"] == 1_795_687_200_250_000_000  # the frame's time, 2026-11-26T10:00:00.25Z
        assert happy["robot"] == "r1" and happy["camera"] == "front" and happy["smoothed_label"] == "happy"
        assert happy["p_happy"] == pytest.approx(0.75) and happy["confidence"] == pytest.approx(0.75)
        assert happy["received"].startswith("20")  # the arrival timestamp Node-RED added
        assert int(red.context("ms.enrich", "malformed")) == len(garbage)  # the admin API gives it as text

        # Aggregate mode: the bridge's windows go to emotion_summary, a suppressed one without shares.
        def window(minute: int, suppressed: bool) -> bytes:
            shares = {"happy": 0.5, "sad": 0.1, "angry": 0.0, "neutral": 0.3, "surprised": 0.1, "fearful": 0.0}
            return json.dumps({
                "schema": "moodstream.summary/1", "robot": "r1", "camera": "front",
                "window_start": f"2026-11-26T10:{minute:02d}:00.000Z",
                "window_end": f"2026-11-26T10:{minute:02d}:59.500Z",
                "frames": 1800, "face_observations": 0 if suppressed else 2400, "people": 1 if suppressed else 4,
                "max_faces_in_view": 2, "suppressed": suppressed,
                "counts": {k: 0 if suppressed else round(v * 2400) for k, v in shares.items()},
                "shares": {k: 0.0 if suppressed else v for k, v in shares.items()}}).encode()

        for message in (window(1, False), b"{\"schema\": \"moodstream.summary/1\"}", window(2, True)):
            client.publish("moodstream/r1/front/summary", message, qos=1).wait_for_publish(5)
        deadline = time.monotonic() + 30
        windows = []
        while time.monotonic() < deadline and len(windows) < 2:
            windows = influx.points("SELECT * FROM emotion_summary")
            time.sleep(0.3)
        assert len(windows) == 2, red.log.read_text()[-3000:]
        shown, hidden = sorted(windows, key=lambda w: w["time"])
        assert shown["time"] == 1_795_687_319_500_000_000 and shown["people"] == 4 and shown["suppressed"] is False
        assert shown["share_happy"] == pytest.approx(0.5) and shown["top_label"] == "happy" and shown["emoji"] == "😊"
        assert hidden["suppressed"] is True and hidden["share_happy"] is None and hidden["top_label"] == ""
        assert int(red.context("ms.summary", "malformed")) == 1
    finally:
        client.loop_stop()
        red.stop()
        influx.stop()
        broker.stop()


def test_editor_and_admin_api_require_the_login_from_env(tmp_path):
    """Issue 13, D9: with BIND_ADDRESS=0.0.0.0 the editor is reachable by robots' networks, so it
    needs the login of docker/.env; a wrong password gets no token."""
    import urllib.error

    from services.nodered import ADMIN_PASSWORD, ADMIN_USER

    (tmp_path / "mq").mkdir()
    broker = Mosquitto(tmp_path / "mq", USER, PASSWORD, tls=False)
    broker.start()
    red = NodeRed(tmp_path, {"MQTT_HOST": "127.0.0.1", "MQTT_PORT": str(broker.port), "MQTT_USERNAME": USER,
                             "MQTT_PASSWORD": PASSWORD, "INFLUX_HOST": "127.0.0.1", "INFLUX_PORT": "9",
                             "INFLUX_DATABASE": "x", "INFLUX_USERNAME": "", "INFLUX_PASSWORD": ""})
    try:
        red.start()
        assert red.admin_get("/auth/login")["type"] == "credentials"  # the editor shows a login form
        with pytest.raises(urllib.error.HTTPError) as anonymous:
            red.admin_get("/flows")
        assert anonymous.value.code == 401
        for user, password in ((ADMIN_USER, "wrong-password"), ("root", ADMIN_PASSWORD), (ADMIN_USER, "")):
            with pytest.raises(urllib.error.HTTPError) as refused:
                red.token(user, password)
            assert refused.value.code in (400, 401, 403), (user, password)  # 400: no password at all
        flows = red.admin_get("/flows", red.token())
        assert any(node.get("type") == "mqtt in" for node in flows)
    finally:
        red.stop()
        broker.stop()


@pytest.mark.parametrize("password", ["", "short"])
def test_node_red_refuses_to_start_without_an_admin_password(tmp_path, password):
    red = NodeRed(tmp_path, {"NODE_RED_ADMIN_PASSWORD": password, "MQTT_HOST": "127.0.0.1", "MQTT_PORT": "9"})
    with pytest.raises(RuntimeError) as failed:
        red.start()
    assert "NODE_RED_ADMIN_PASSWORD is empty or shorter than 8 characters" in str(failed.value)
    assert red.proc.poll() is not None  # it exited instead of serving an open editor
