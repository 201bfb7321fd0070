"""Issue 15 on real topics across processes: consent (the service, the latched state, the camera
closed, revocation), an unknown subscriber flagged, aggregate-only output, retention against the
policy, and the flags on the MQTT status topic (a real Mosquitto)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from helpers import Collector, NodeProcess
from std_msgs.msg import Bool
from std_srvs.srv import SetBool

from moodstream_common.audit import read, verify
from moodstream_common.consent import CONSENT_QOS
from moodstream_common.ros import RESULT_QOS, record_qos
from moodstream_interfaces.msg import Emotion, EmotionArray, EmotionSummary

MOODSTREAM = str(Path(sys.executable).parent / "moodstream")


def statuses(collector: Collector, name_part: str) -> list:
    return [s for array in collector.messages["/diagnostics"] for s in array.status if name_part in s.name]


def values(status) -> dict:
    return {kv.key: kv.value for kv in status.values}


def call(collector: Collector, client, granted: bool) -> SetBool.Response:
    future = client.call_async(SetBool.Request(data=granted))
    assert collector.spin_until(future.done, timeout=10), "the consent service did not answer"
    return future.result()


def test_nothing_is_processed_until_consent_and_revoking_stops_and_forgets(tmp_path):
    """Capture, detect and classify in three processes with policy.require_consent: the camera
    stays closed and no emotion is published until the consent service says yes; the state is
    latched for a late indicator; revoking closes the camera, stops the emotions, and the person
    seen afterwards is a new track. Every change is in the audit log."""
    audit = tmp_path / "audit.jsonl"
    policy = {"policy.require_consent": True, "policy.audit_log": str(audit)}
    nodes = [NodeProcess("capture_node", tmp_path, {"fps": 10.0, **policy}),
             NodeProcess("detect_node", tmp_path, policy),
             NodeProcess("classify_node", tmp_path, policy)]
    collector = Collector()
    try:
        collector.subscribe(EmotionArray, "/emotions", record_qos(100))
        collector.subscribe(Bool, "/consent/state", CONSENT_QOS)
        collector.subscribe(DiagnosticArray, "/diagnostics", RESULT_QOS)
        client = collector.node.create_client(SetBool, "/consent")
        assert collector.spin_until(client.service_is_ready, timeout=30), nodes[1].output()
        assert collector.spin_until(lambda: collector.messages["/consent/state"], timeout=10)
        assert collector.messages["/consent/state"][-1].data is False

        def camera_closed() -> bool:
            capture = statuses(collector, "capture")
            return bool(capture) and "camera is closed" in capture[-1].message

        assert collector.spin_until(camera_closed, timeout=15), nodes[0].output()

        def stages_wait() -> bool:  # OK, not a fault: waiting is what the policy asks for
            latest = [statuses(collector, stage)[-1:] for stage in ("detect", "classify")]
            return all(s and (s[0].level, s[0].message, values(s[0]).get("consent")) ==
                       (DiagnosticStatus.OK, "waiting for consent", "False") for s in latest)

        assert collector.spin_until(stages_wait, timeout=15), [statuses(collector, s)[-1:]
                                                               for s in ("detect", "classify")]
        collector.spin_until(lambda: False, timeout=3)
        assert collector.messages["/emotions"] == []  # the graph is up, and nothing is processed
        assert "capturing from" not in nodes[0].output()

        answer = call(collector, client, True)
        assert answer.success and "consent given" in answer.message
        assert collector.spin_until(lambda: len(collector.messages["/emotions"]) >= 10, timeout=30), \
            nodes[0].output() + nodes[1].output()
        first_tracks = {f.track_id for m in collector.messages["/emotions"] for f in m.faces}
        assert first_tracks == {1}

        # A late indicator light gets the current state at once (latched).
        late = Collector("indicator")
        try:
            late.subscribe(Bool, "/consent/state", CONSENT_QOS)
            assert late.spin_until(lambda: late.messages["/consent/state"], timeout=10)
            assert late.messages["/consent/state"][-1].data is True
        finally:
            late.close()

        answer = call(collector, client, False)
        assert answer.success and "consent revoked" in answer.message
        collector.spin_until(lambda: False, timeout=1.0)  # what was already in flight
        count = len(collector.messages["/emotions"])
        collector.spin_until(lambda: False, timeout=3)
        assert len(collector.messages["/emotions"]) == count
        assert collector.spin_until(lambda: "consent revoked" in nodes[0].output(), timeout=5)
        assert "closed" in nodes[0].output().split("consent revoked")[-1]

        call(collector, client, True)
        assert collector.spin_until(lambda: len(collector.messages["/emotions"]) >= count + 5, timeout=30)
        later_tracks = {f.track_id for m in collector.messages["/emotions"][count:] for f in m.faces}
        assert later_tracks and later_tracks.isdisjoint(first_tracks)  # forgotten: a new track
    finally:
        collector.close()
        for node in nodes:
            node.stop()
    entries = read(audit)
    assert [e["event"] for e in entries] == ["policy", "consent given", "consent revoked", "consent given"]
    assert entries[0]["details"]["policy"]["policy.require_consent"] is True  # classify states the policy
    assert verify(audit).ok


def test_an_unknown_subscriber_is_flagged_in_diagnostics_and_the_audit_log(tmp_path):
    audit = tmp_path / "audit.jsonl"
    policy = {"policy.allowed_consumers": "bridge, console", "policy.audit_log": str(audit)}
    classify = NodeProcess("classify_node", tmp_path, policy)
    collector = Collector("snoop")
    try:
        collector.subscribe(DiagnosticArray, "/diagnostics", RESULT_QOS)
        collector.subscribe(Emotion, "/emotion", RESULT_QOS)  # the snoop listens in

        def flagged() -> bool:
            found = statuses(collector, "classify")
            return bool(found) and found[-1].level == b"\x02" and "/snoop subscribes to /emotion" in found[-1].message

        assert collector.spin_until(flagged, timeout=30), classify.output()
        assert values(statuses(collector, "classify")[-1])["policy_flags"] == "unknown_subscriber"
        assert "/snoop subscribes to /emotion" in classify.output()
        collector.node.destroy_subscription(collector.subscriptions.pop("/emotion"))
        assert collector.spin_until(lambda: statuses(collector, "classify")[-1].level != b"\x02", timeout=30)
    finally:
        collector.close()
        classify.stop()
    entries = read(audit)[1:]  # after the declared policy
    assert [(e["event"], e["details"]["subject"]) for e in entries] == [
        ("flag: unknown_subscriber", "/emotion <- /snoop"), ("cleared: unknown_subscriber", "/emotion <- /snoop")]
    assert entries[0]["level"] == "error" and verify(audit).ok


def test_public_context_publishes_aggregates_only_and_flags_per_person_output(tmp_path):
    """policy.context public forces aggregate_only: emotions/summary carries counts and shares
    (none while too few people were seen), and no per-person topic is published; a node that
    publishes per-person emotions anyway is flagged."""
    policy = {"policy.context": "public", "policy.aggregate_window_s": 1.0, "policy.aggregate_min_people": 1}
    nodes = [NodeProcess("capture_node", tmp_path, {"fps": 10.0, "synthetic_faces": 2, **policy}),
             NodeProcess("detect_node", tmp_path, policy), NodeProcess("classify_node", tmp_path, policy)]
    collector = Collector("rogue")
    try:
        collector.subscribe(EmotionSummary, "/emotions/summary", record_qos(100))
        collector.subscribe(DiagnosticArray, "/diagnostics", RESULT_QOS)
        assert collector.spin_until(lambda: len(collector.messages["/emotions/summary"]) >= 3, timeout=40), \
            nodes[2].output()
        summary = collector.messages["/emotions/summary"][-1]
        assert summary.people >= 1 and not summary.suppressed and summary.frames >= 5
        assert list(summary.labels) == ["happy", "sad", "angry", "neutral", "surprised", "fearful"]
        assert sum(summary.counts) == summary.face_observations
        assert sum(summary.shares) == pytest.approx(1.0, abs=1e-5)
        graph = dict(collector.node.get_topic_names_and_types())
        for topic in ("/emotions", "/emotion", "/emotion/image"):
            assert not collector.node.get_publishers_info_by_topic(topic), graph
        rogue = collector.node.create_publisher(EmotionArray, "/emotions", RESULT_QOS)  # noqa: F841

        def flagged() -> bool:
            found = statuses(collector, "classify")
            return bool(found) and "/rogue publishes per-person emotions on /emotions" in found[-1].message

        assert collector.spin_until(flagged, timeout=30), nodes[2].output()
    finally:
        collector.close()
        for node in nodes:
            node.stop()


def test_aggregate_mode_refuses_a_per_person_history(tmp_path):
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    out = subprocess.run([MOODSTREAM, "run", "--duration", "2", "--history", "-p", "policy.context=public",
                          "-p", "policy.purpose=tests"], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 2 and "aggregates only" in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert not (tmp_path / "state" / "moodstream" / "history.db").exists()


def test_a_retention_beyond_the_policy_is_flagged_and_cut(tmp_path):
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    out = subprocess.run([MOODSTREAM, "run", "--duration", "3", "--history", "-p", "policy.purpose=tests",
                          "-p", "bridge.history_retention_days=90", "-p", "policy.retention_days=7"],
                         capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "keeps 90 days, and policy.retention_days allows 7: cut to 7" in out.stderr
    entries = read(tmp_path / "state" / "moodstream" / "audit.jsonl")
    start = next(e for e in entries if e["event"] == "start")
    assert start["details"]["stored"]["retention_days"] == pytest.approx(7.0)
    assert any(e["event"] == "flag: retention_beyond_policy" and e["level"] == "error" for e in entries)


def test_the_runner_asks_for_consent_through_its_flag(tmp_path):
    """--consent: the operator confirms at start; without it (and no terminal to ask on) the
    runner says how to give consent and processes nothing."""
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    out = subprocess.run([MOODSTREAM, "run", "--duration", "4", "-p", "policy.require_consent=true"],
                         capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "waiting for consent" in out.stdout and "std_srvs/srv/SetBool" in out.stdout
    assert out.stdout.strip().splitlines()[-1].startswith("0 frames")
    out = subprocess.run([MOODSTREAM, "run", "--duration", "4", "--consent", "-p", "policy.require_consent=true"],
                         capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL)
    assert out.returncode == 0 and "face #1" in out.stdout, out.stderr[-3000:]
    events = [e["event"] for e in read(tmp_path / "state" / "moodstream" / "audit.jsonl")]
    assert events == ["policy", "policy", "consent given"]  # each start states its policy


def test_faces_that_arrive_without_consent_are_dropped_and_flagged(tmp_path):
    """A stage upstream that ignores the policy (here: faces published by hand while nobody has
    given consent) gets nothing classified, and the classifier flags it."""
    import numpy as np
    from sensor_msgs.msg import RegionOfInterest

    from moodstream_common.image_conv import numpy_to_image
    from moodstream_interfaces.msg import DetectedFace, DetectedFaces

    audit = tmp_path / "audit.jsonl"
    classify = NodeProcess("classify_node", tmp_path, {"policy.require_consent": True,
                                                      "policy.audit_log": str(audit)})
    collector = Collector("rogue_detector")
    try:
        collector.subscribe(EmotionArray, "/emotions", record_qos(100))
        collector.subscribe(DiagnosticArray, "/diagnostics", RESULT_QOS)
        pub = collector.node.create_publisher(DetectedFaces, "/faces", RESULT_QOS)
        assert collector.spin_until(lambda: pub.get_subscription_count() > 0, timeout=30), classify.output()
        crop = np.random.default_rng(0).integers(0, 255, (48, 48), dtype=np.uint8)

        def flagged() -> bool:
            msg = DetectedFaces(image_width=640, image_height=480, detector="haar")
            msg.header.stamp = collector.node.get_clock().now().to_msg()
            msg.faces = [DetectedFace(roi=RegionOfInterest(x_offset=10, y_offset=10, width=96, height=96),
                                      score=1.0, crop=numpy_to_image(crop, "mono8", msg.header))]
            pub.publish(msg)
            found = statuses(collector, "classify")
            return bool(found) and "processing_without_consent" in values(found[-1]).get("policy_flags", "")

        assert collector.spin_until(flagged, timeout=30), classify.output()
        assert collector.messages["/emotions"] == []
    finally:
        collector.close()
        classify.stop()
    assert [e["event"] for e in read(audit)] == ["policy", "flag: processing_without_consent"]


def test_the_runner_in_a_public_context_prints_windows_not_people(tmp_path):
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    out = subprocess.run([MOODSTREAM, "run", "--duration", "5", "-p", "policy.context=public", "-p",
                          "policy.aggregate_window_s=1.5", "-p", "policy.aggregate_min_people=1"],
                         capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "face #" not in out.stdout  # no per-person line
    windows = [line for line in out.stdout.splitlines() if "frames, 1 person: happy" in line]
    assert len(windows) >= 2, out.stdout
    assert "aggregate windows of 1.5 s (policy.aggregate_only: no per-person output)" in out.stdout
