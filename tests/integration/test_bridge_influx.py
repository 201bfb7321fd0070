"""The bridge writing to a real InfluxDB 1.x: the documented schema, and an outage of the database
with nothing lost."""

from __future__ import annotations

import pytest
from helpers import Collector, NodeProcess
from services.influxdb import InfluxDB
from test_bridge_mqtt import LABELS, emotion_array, publish_all

from moodstream_common.ros import RESULT_QOS
from moodstream_interfaces.msg import EmotionArray

pytestmark = [pytest.mark.ros, pytest.mark.slow]


@pytest.fixture
def influx(tmp_path):
    db = InfluxDB(tmp_path)
    db.start()
    yield db
    db.stop()


def start_bridge(tmp_path, influx: InfluxDB) -> NodeProcess:
    return NodeProcess("bridge_node", tmp_path, {
        "robot_id": "r1", "camera_id": "front", "influx_url": influx.url, "influx_database": influx.database,
        "influx_max_per_second": 0.0, "outbox_path": str(tmp_path / "outbox.db"), "history": "never",
            "policy.purpose": "tests"})


def count(influx: InfluxDB) -> int:
    rows = influx.points("SELECT count(confidence) FROM emotion")
    return int(rows[0]["count"]) if rows else 0


def wait_for(collector: Collector, condition, timeout: float) -> bool:
    return collector.spin_until(condition, timeout=timeout)


def test_points_follow_the_schema(tmp_path, influx):
    collector = Collector()
    pub = collector.node.create_publisher(EmotionArray, "/emotions", RESULT_QOS)
    bridge = start_bridge(tmp_path, influx)
    try:
        assert wait_for(collector, lambda: pub.get_subscription_count() > 0, 30), bridge.output()
        publish_all(collector, pub, [emotion_array(i) for i in range(12)])
        assert wait_for(collector, lambda: count(influx) >= 12, 30), bridge.output()
    finally:
        bridge.stop()
        collector.close()
    points = influx.points('SELECT * FROM emotion GROUP BY "robot","camera","track","label","source","mood"')
    assert len(points) == 12
    first = min(points, key=lambda p: p["time"])
    assert first["time"] == 1_790_000_000_123_456_789
    assert (first["robot"], first["camera"], first["track"], first["label"], first["source"], first["mood"]) == (
        "r1", "front", "3", "happy", "pipeline", "positive")
    assert first["confidence"] == pytest.approx(0.75) and first["smoothed_label"] == "happy"
    assert [first[f"p_{lab}"] for lab in LABELS] == pytest.approx([0.75] + [0.05] * 5)
    assert sorted(p["label"] for p in points) == sorted(LABELS * 2)


def test_database_outage_loses_nothing(tmp_path, influx):
    collector = Collector()
    pub = collector.node.create_publisher(EmotionArray, "/emotions", RESULT_QOS)
    bridge = start_bridge(tmp_path, influx)
    sent = [emotion_array(i) for i in range(40)]
    try:
        assert wait_for(collector, lambda: pub.get_subscription_count() > 0, 30), bridge.output()
        publish_all(collector, pub, sent[:10])
        assert wait_for(collector, lambda: count(influx) >= 10, 30), bridge.output()
        influx.stop()
        publish_all(collector, pub, sent[10:30])  # accepted while the database is down
        influx.start()
        publish_all(collector, pub, sent[30:])
        assert wait_for(collector, lambda: count(influx) >= 40, 60), bridge.output()
    finally:
        bridge.stop()
        collector.close()
    points = influx.points("SELECT * FROM emotion")
    assert len(points) == 40
    by_time = {p["time"]: p for p in points}
    for i, msg in enumerate(sent):
        p = by_time[(1_790_000_000 + i) * 1_000_000_000 + 123_456_789]
        assert p["label"] == msg.faces[0].label and p["confidence"] == pytest.approx(0.75)
    assert "unreachable" in bridge.output()
