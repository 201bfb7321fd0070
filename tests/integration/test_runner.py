"""The embedded runner: the same node classes in one process, and the ``moodstream`` command."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
from helpers import Collector

from moodstream.runner import Pipeline
from moodstream_common.ros import RESULT_QOS
from moodstream_interfaces.msg import Emotion

pytestmark = [pytest.mark.ros]
MOODSTREAM = str(Path(sys.executable).parent / "moodstream")
PURPOSE = "policy.purpose=MoodStream's tests"  # what the emotions are for: required once they leave or are kept


def test_pipeline_in_one_process(face_clip):
    lines: list[str] = []
    # Offline, every frame counts: queues deep enough and no age limit (a robot keeps the newest only).
    offline = {"input_qos_depth": 10, "max_frame_age_s": 0.0}
    pipeline = Pipeline({"capture": {"source": "video", "path": str(face_clip), "loop": False, "fps": 60.0},
                         "detect": offline, "classify": offline}, console_sink=lines.append, want_images=True)
    try:
        summary = pipeline.run(duration=30)
        annotated = pipeline.observer.best_image  # emotion/image, drawn because someone subscribed
        # The console and the counters take the results in-process: nothing goes through DDS.
        in_process = {pub.topic: (pub.bus.subscribers(pub.topic), pub.dds.get_subscription_count())
                      for pub in (pipeline.classify.emotion_pub, pipeline.classify.emotions_pub)}
    finally:
        pipeline.close()
    assert in_process == {"/emotion": (2, 0), "/emotions": (1, 0)}, in_process
    assert annotated is not None and annotated.shape == (480, 640, 3)
    assert summary.frames == 90  # every frame of the clip, none lost to discovery
    assert summary.frames_with_faces >= 0.9 * summary.frames
    assert summary.track_ids == {1}
    assert summary.primary_labels.most_common(1)[0][0] == "happy"
    assert lines and lines[0].endswith(")") and "face #1: happy" in lines[0]


def test_two_namespaced_pipelines_side_by_side(face_clip):
    collector = Collector()
    for ns in ("front", "rear"):
        collector.subscribe(Emotion, f"/{ns}/emotion", RESULT_QOS)
    pipelines = [Pipeline({"capture": {"source": "video", "path": str(face_clip), "fps": 30.0}}, namespace=ns,
                          console_sink=lambda _line: None) for ns in ("front", "rear")]
    try:
        for _ in range(60):
            for p in pipelines:
                p.run(duration=0.05)
            collector.executor.spin_once(timeout_sec=0.01)
            if all(len(collector.messages[f"/{ns}/emotion"]) >= 5 for ns in ("front", "rear")):
                break
    finally:
        for p in pipelines:
            p.close()
        collector.close()
    for ns in ("front", "rear"):
        msgs = collector.messages[f"/{ns}/emotion"]
        assert len(msgs) >= 5 and any(m.face_present for m in msgs), ns


def test_run_command_prints_changes_and_a_summary(face_clip):
    out = subprocess.run([MOODSTREAM, "run", "--source", "video", str(face_clip), "--once", "--fps", "60"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "face #1: happy" in out.stdout
    assert "frames" in out.stdout.splitlines()[-1]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_ends_the_run_with_its_summary(sig):
    proc = subprocess.Popen([MOODSTREAM, "run", "--source", "synthetic"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:  # the first change of emotion: frames are running
            if "face #1:" in line:
                break
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    summary = re.fullmatch(r"(\d+) frames, (\d+) faces, 1 tracks, ([\d.]+) frames/s", out.splitlines()[-1])
    assert summary and int(summary[1]) > 0 and float(summary[3]) > 0, out
    assert "Traceback" not in err, err


def test_demo_writes_an_annotated_png(tmp_path):
    png = tmp_path / "demo.png"
    out = subprocess.run([MOODSTREAM, "demo", "--duration", "2", "--out", str(png)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    image = cv2.imread(str(png))
    assert image is not None and image.shape == (480, 640, 3)
    assert "annotated frame written" in out.stdout and "happy" in out.stdout


@pytest.mark.parametrize("args,message", [
    (["run", "--source", "video", "/no/such/clip.mp4"], "does not exist"),
    (["run", "-p", "detect.scale_fator=1.1"], "has no parameter 'scale_fator'"),
    (["run", "--model", "/no/such/model.tflite", "--duration", "1"], "model file /no/such/model.tflite does not exist"),
    (["run", "--mqtt", "http://broker:1883", "--duration", "1", "-p", PURPOSE], "MQTT URL must look like"),
    (["run", "--mqtt", "mqtt://127.0.0.1:1", "--mqtt-credentials", "/no/creds", "--duration", "1", "-p", PURPOSE],
     "No such file or directory: /no/creds"),
    # issue 13, D8: start-up input that used to end in a traceback, never stop, or run half-configured
    (["run", "--duration", "nan"], "must be a positive number of seconds, got nan"),
    (["run", "--mqtt", "mqtt://h:abc", "--duration", "1", "-p", PURPOSE],
     "the port in MQTT URL 'mqtt://h:abc' is not a number"),
    (["history", "--since", "yesterday"], "'yesterday' is not a time"),
    (["run", "--mqtt", "mqtts://127.0.0.1:8883", "--mqtt-ca", "/no/ca.crt", "--duration", "1", "-p", PURPOSE],
     "the MQTT CA certificate /no/ca.crt does not exist"),
    (["run", "-p", "capture.fps=-5"], "capture.fps must be a number from 0.1 to 1000"),
    (["run", "-p", "capture.width=0"], "capture.width must be an integer from 16 to 8192"),
])
def test_run_refuses_bad_settings_clearly(args, message):
    out = subprocess.run([MOODSTREAM, *args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert message in out.stderr


def test_a_corrupt_history_does_not_stop_the_runner(tmp_path):
    """Issue 13, D7: the damaged file is kept aside and a new one started."""
    import os

    state = tmp_path / "state" / "moodstream"
    state.mkdir(parents=True)
    (state / "history.db").write_bytes(b"\x00garbage" * 512)
    out = subprocess.run([MOODSTREAM, "run", "--duration", "3", "--history", "-p", PURPOSE],
                         capture_output=True, text=True,
                         timeout=120, env={**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")})
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Traceback" not in out.stderr and "is not a usable database" in out.stderr
    assert [p.name.startswith("history.db.corrupt-") for p in state.iterdir()].count(True) == 1


def test_the_benchmarks_run_and_report(tmp_path):
    """`moodstream bench` and `bench-graph` (short runs): numbers come out for every row; their
    values are measurements, printed, never judged here."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    moodstream = str(Path(sys.executable).parent / "moodstream")
    out = subprocess.run([moodstream, "bench", "--frames", "30", "--json", str(tmp_path / "bench.json")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    bench = json.loads((tmp_path / "bench.json").read_text())
    assert bench["pipeline"]["frames"] >= 25 and bench["naive"]["frames"] == 30
    out = subprocess.run([moodstream, "bench-graph", "--faces", "1", "--seconds", "2", "--only", "naive loop @",
                          "runner @", "launched graph @", "--log-dir", str(tmp_path / "logs"), "--json",
                          str(tmp_path / "graph.json")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    runs = json.loads((tmp_path / "graph.json").read_text())["runs"]
    assert set(runs) == {"1 face(s), naive loop @30", "1 face(s), runner @30", "1 face(s), launched graph @30"}
    for run in runs.values():
        assert run["frames"] > 0 and run["cpu_ms_per_frame"]["total"] > 0 and run["faces_per_frame"] > 0.5
    assert set(runs["1 face(s), launched graph @30"]["cpu_ms_per_frame"]) == {"pipeline", "total"}


def test_nothing_is_written_to_disk_unless_asked(tmp_path):
    """Issue 15, defaults that keep nothing: a plain run records no mood history; --history does,
    private to the user, and says where."""
    import os
    import stat

    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    out = subprocess.run([MOODSTREAM, "run", "--duration", "4"], capture_output=True, text=True, timeout=120,
                         env=env, cwd=tmp_path)
    assert out.returncode == 0 and "face #1" in out.stdout, out.stderr[-3000:]
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written == [], written
    assert "recording the mood history" not in out.stderr
    out = subprocess.run([MOODSTREAM, "run", "--duration", "4", "--history", "-p", PURPOSE], capture_output=True,
                         text=True,
                         timeout=120, env=env, cwd=tmp_path)
    history = tmp_path / "state" / "moodstream" / "history.db"
    assert out.returncode == 0 and f"recording the mood history in {history}" in out.stderr, out.stderr[-3000:]
    assert stat.S_IMODE(history.stat().st_mode) == 0o600
    assert stat.S_IMODE(history.parent.stat().st_mode) == 0o700


def test_egress_and_storage_are_audited_and_plaintext_egress_is_flagged(tmp_path):
    """Issue 15, the audit layer's start: where emotions go (an InfluxDB across the network,
    without TLS) and what is kept is logged, hash-chained; `moodstream audit` shows and checks it."""
    import os
    import stat

    audit = tmp_path / "audit.jsonl"
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    out = subprocess.run([MOODSTREAM, "run", "--duration", "3", "--history", "--influx", "http://192.0.2.1:8086",
                          "-p", f"policy.audit_log={audit}", "-p", PURPOSE], capture_output=True, text=True,
                              timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "emotions go to http://192.0.2.1:8086 unencrypted, across a network" in out.stderr
    assert stat.S_IMODE(audit.stat().st_mode) == 0o600
    shown = subprocess.run([MOODSTREAM, "audit", "--file", str(audit)], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "start" in shown.stdout and "flag: egress_without_tls" in shown.stdout
    assert "the hash chain holds" in shown.stdout and "history.db" in shown.stdout
    lines = audit.read_text().splitlines()
    audit.write_text("\n".join(lines[1:]) + "\n")  # the first entry removed
    shown = subprocess.run([MOODSTREAM, "audit", "--file", str(audit)], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 1 and "THE HASH CHAIN IS BROKEN" in shown.stdout
    # A plain run sends nothing anywhere and keeps nothing: no audit log either.
    plain = subprocess.run([MOODSTREAM, "run", "--duration", "2"], capture_output=True, text=True, timeout=120, env=env)
    assert plain.returncode == 0 and not (tmp_path / "state" / "moodstream" / "audit.jsonl").exists()


def test_the_declared_policy_is_checked_before_anything_starts(tmp_path):
    """Issue 15: a workplace is refused (AI Act Article 5(1)(f)) with status 2, and recorded in the
    audit log; storing emotions without a stated purpose is refused too."""
    import os

    from moodstream_common.audit import read, verify

    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    out = subprocess.run([MOODSTREAM, "run", "--duration", "2", "-p", "policy.context=workplace"],
                         capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 2 and "Article 5(1)(f)" in out.stderr and "Traceback" not in out.stderr, out.stderr
    audit = tmp_path / "state" / "moodstream" / "audit.jsonl"
    entries = read(audit)
    assert entries[0]["event"] == "refused start" and entries[0]["details"]["policy"]["policy.context"] == "workplace"
    assert verify(audit).ok
    out = subprocess.run([MOODSTREAM, "run", "--duration", "2", "-p", "policy.context=workplace", "-p",
                          "policy.medical_or_safety=true"], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-2000:]  # the Act's exception, declared
    out = subprocess.run([MOODSTREAM, "run", "--duration", "2", "--history"], capture_output=True, text=True,
                         timeout=120, env=env)
    assert out.returncode == 2 and "policy.purpose is empty" in out.stderr
    assert not (tmp_path / "state" / "moodstream" / "history.db").exists()
