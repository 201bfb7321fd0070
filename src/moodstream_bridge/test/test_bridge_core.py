"""The bridge's ROS-free parts: records and payload, rate limits, the outbox, the history."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from moodstream_bridge.history import History, summarize
from moodstream_bridge.mqtt_relay import MqttConfigError, MqttRelay, MqttSettings, credentials
from moodstream_bridge.outbox import Outbox
from moodstream_bridge.records import EmotionRecord, RateLimiter, iso8601_ns

LABELS = ("happy", "sad", "angry", "neutral", "surprised", "fearful")


def record(stamp_s: float, label: str = "happy", track: int = 1, mood: str = "positive") -> EmotionRecord:
    probs = tuple(0.75 if lab == label else 0.05 for lab in LABELS)
    return EmotionRecord("r1", "cam", "pipeline", "m@1", int(stamp_s * 1e9), track, (1, 2, 30, 30), label, 0.75,
                         label, 0.75, LABELS, probs, mood, mood)


def test_iso8601_keeps_nanoseconds():
    assert iso8601_ns(1_790_000_000_000_000_001) == "2026-09-21T14:13:20.000000001Z"


def test_rate_limiter_on_change_and_cap():
    limiter = RateLimiter(on_change=True, max_per_second=2.0)
    assert limiter.allow(record(0, "happy"), 0.0)
    assert not limiter.allow(record(0, "happy"), 5.0)  # no change
    assert not limiter.allow(record(0, "sad"), 0.1)  # changed, but 0.1 s < 0.5 s
    assert limiter.allow(record(0, "sad"), 0.6)
    assert limiter.allow(record(0, "happy", track=2), 0.6)  # another face has its own budget
    every = RateLimiter(on_change=False, max_per_second=1.0)
    assert [every.allow(record(0), t) for t in (0.0, 0.5, 1.0, 1.2, 2.1)] == [True, False, True, False, True]


def test_outbox_is_durable_ordered_and_bounded(tmp_path):
    box = Outbox(tmp_path / "o.db", max_messages=3)
    ids = [box.put("t", f"m{i}".encode()) for i in range(4)]
    assert box.dropped == 1 and len(box) == 3
    assert [p for _, _, p in box.peek(10)] == [b"m1", b"m2", b"m3"]
    box.ack([ids[1], ids[0]])  # ids[0] was dropped as the oldest: acknowledging it changes nothing
    assert len(box) == 2
    assert [p for _, _, p in box.peek(10, after=ids[1])] == [b"m2", b"m3"]
    box.close()
    again = Outbox(tmp_path / "o.db", max_messages=3)  # a restart of the bridge
    assert [p for _, _, p in again.peek(10)] == [b"m2", b"m3"] and len(again) == 2


def test_credentials_never_from_the_url(tmp_path, monkeypatch):
    f = tmp_path / "c"
    f.write_text("alice:pw\n")
    assert credentials(str(f)) == ("alice", "pw")
    f.write_text("bob\nsecret\n")
    assert credentials(str(f)) == ("bob", "secret")
    monkeypatch.setenv("MOODSTREAM_MQTT_USERNAME", "env-user")
    monkeypatch.setenv("MOODSTREAM_MQTT_PASSWORD", "env-pw")
    assert credentials("") == ("env-user", "env-pw")
    box = Outbox(tmp_path / "o.db")
    with pytest.raises(MqttConfigError, match="not in the URL"):
        MqttRelay(MqttSettings("mqtt://u:p@host:1883", "s"), box)
    with pytest.raises(MqttConfigError, match="must look like"):
        MqttRelay(MqttSettings("http://host", "s"), box)


def test_history_summary_retention_and_restart(tmp_path):
    base = 1_790_000_000.0  # 14:13:20 UTC
    h = History(tmp_path / "h.db", retention_days=1, clock=lambda: int((base + 3600) * 1e9))
    for i in range(10):
        h.add(record(base + i, "happy"))
    for i in range(10, 16):
        h.add(record(base + i, "sad", mood="negative"))
    h.add(record(base + 3600, "sad", mood="negative"))  # next hour, after a long gap
    h.add(record(base - 3 * 86400, "angry", mood="negative"))  # too old
    assert h.prune() == 1  # the first add pruned nothing; the old record came later
    h.close()
    h = History(tmp_path / "h.db")  # survives a restart
    rows = h.rows(int((base - 10) * 1e9), int((base + 4000) * 1e9))
    s = summarize(rows)
    assert s.records == 17 and s.changes == 1
    assert s.seconds_per_label["happy"] == pytest.approx(10.0) and s.seconds_per_label["sad"] == pytest.approx(5.0)
    assert s.dominant_mood_per_hour() == {int(base) // 3600: "positive"}


def test_history_command_prints_and_plots(tmp_path):
    h = History(tmp_path / "h.db", retention_days=10_000)
    start = dt.datetime(2026, 11, 26, 9, 0, tzinfo=dt.timezone.utc).timestamp()
    for i in range(120):
        label, mood = ("happy", "positive") if i < 80 else ("angry", "negative")
        h.add(record(start + i * 60, label, mood=mood))  # one a minute: gaps over 5 s count no time
    for i in range(30):
        h.add(record(start + 7200 + i, "sad", mood="negative"))
    h.close()
    png = tmp_path / "h.png"
    out = subprocess.run([str(Path(sys.executable).parent / "moodstream"), "history", "--db", str(tmp_path / "h.db"),
                          "--since", "2026-11-26T08:00", "--until", "2026-11-26T12:00", "--plot", str(png)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "150 records, 2 emotion changes" in out.stdout
    assert "sad" in out.stdout and "2026-11-26 11:00  negative" in out.stdout
    image = cv2.imread(str(png))
    assert image is not None and image.shape[0] == 360


def test_line_protocol_schema_and_escaping():
    from moodstream_bridge.influx_writer import line_protocol

    r = record(1_790_000_000.5, "sad", track=4, mood="negative")
    line = line_protocol(r)
    assert line == ("emotion,camera=cam,label=sad,mood=negative,robot=r1,source=pipeline,track=4 "
                    "confidence=0.75,smoothed_confidence=0.75,p_happy=0.05,p_sad=0.75,p_angry=0.05,p_neutral=0.05,"
                    "p_surprised=0.05,p_fearful=0.05,smoothed_label=\"sad\" 1790000000500000000")
    odd = EmotionRecord("robot 1,a=b", "cam", "pipeline", "m", 1, 1, (0, 0, 1, 1), "happy", 1.0, 'say "hi"', 1.0,
                        LABELS, (1.0, 0, 0, 0, 0, 0), "positive", "positive")
    assert "robot=robot\\ 1\\,a\\=b" in line_protocol(odd) and 'smoothed_label="say \\"hi\\""' in line_protocol(odd)


def test_influx_requests_for_both_apis():
    from moodstream_bridge.influx_writer import InfluxConfigError, InfluxSettings, write_request

    v1 = write_request(InfluxSettings("http://db:8086/", database="moods", username="u", password="p"), b"x")
    assert v1.full_url == "http://db:8086/write?db=moods&precision=ns"
    assert v1.get_header("Authorization") == "Basic dTpw" and v1.data == b"x"
    v2 = write_request(InfluxSettings("https://cloud:8086", api="v2", token="tok", org="lab", bucket="b"), b"y")
    assert v2.full_url == "https://cloud:8086/api/v2/write?org=lab&bucket=b&precision=ns"
    assert v2.get_header("Authorization") == "Token tok"
    with pytest.raises(InfluxConfigError, match="org and a bucket"):
        write_request(InfluxSettings("http://db:8086", api="v2"), b"")
    with pytest.raises(InfluxConfigError, match="v1 or v2"):
        write_request(InfluxSettings("http://db:8086", api="v3"), b"")


# -- damaged files (issue 13, D7) and private files (D9) -----------------------------------------------
def test_a_corrupt_outbox_is_moved_aside_and_a_new_one_started(tmp_path):
    import logging
    import stat

    from moodstream_bridge.outbox import Outbox

    path = tmp_path / "state" / "outbox.db"
    path.parent.mkdir()
    path.write_bytes(b"this is not SQLite" * 100)
    warnings: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: warnings.append(record.getMessage())
    logging.getLogger("moodstream.bridge").addHandler(handler)
    try:
        box = Outbox(path)
    finally:
        logging.getLogger("moodstream.bridge").removeHandler(handler)
    assert box.recovered_from is not None and box.recovered_from.read_bytes() == b"this is not SQLite" * 100
    assert box.recovered_from.name.startswith("outbox.db.corrupt-")
    assert any("is not a usable database" in w and "started a new one" in w for w in warnings)
    box.put("t", b"p")
    assert len(box) == 1
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    box.close()
    again = Outbox(path)  # the new file is healthy: nothing to move next time
    assert again.recovered_from is None and len(again) == 1
    again.close()


def test_a_damaged_history_is_moved_aside(tmp_path):
    import sqlite3

    from moodstream_bridge.history import History

    path = tmp_path / "history.db"
    healthy = History(path)
    healthy.close()
    data = bytearray(path.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # the header survives, the schema page does not
    path.write_bytes(bytes(data))
    history = History(path)
    assert history.recovered_from is not None
    assert sqlite3.connect(path).execute("SELECT COUNT(*) FROM emotions").fetchone() == (0,)
    history.close()


def test_new_state_folders_and_files_are_private(tmp_path):
    import stat

    from moodstream_bridge.history import History

    path = tmp_path / "new" / "history.db"
    History(path).close()
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_retention_is_enforced_when_the_writer_opens_and_a_reader_deletes_nothing(tmp_path):
    """Issue 15: records past the retention go when the bridge opens the history, even if nothing
    was recorded since; `moodstream history` (a reader) never deletes."""
    base = 1_790_000_000.0
    writer = History(tmp_path / "h.db", retention_days=1, clock=lambda: int(base * 1e9))
    writer.add(record(base - 2 * 86400, "sad", mood="negative"))  # already past the retention
    writer.add(record(base - 60, "happy"))
    writer.close()
    reader = History(tmp_path / "h.db")
    assert len(reader.rows(0, int(2e18))) == 2  # opened for reading: nothing deleted
    with pytest.raises(ValueError, match="opened for reading"):
        reader.prune()
    reader.close()
    later = History(tmp_path / "h.db", retention_days=1, clock=lambda: int((base + 3600) * 1e9))
    assert [r[4] for r in later.rows(0, int(2e18))] == ["happy"]  # the writer purged at open
    later.close()
