"""The Grafana dashboard and provisioning: the dashboard JSON type-checks against Grafana's published
schema (@grafana/schema with tsc), and every panel's and variable's query runs against a real
InfluxDB holding test data and returns the expected series. (No Grafana server can be installed
here; what Grafana itself would draw is not checked.)"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from services.influxdb import InfluxDB
from services.mosquitto import missing

from moodstream_bridge.influx_writer import line_protocol, summary_line_protocol
from moodstream_bridge.records import EmotionRecord

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "docker" / "grafana"
DASHBOARD = json.loads((GRAFANA / "dashboards" / "moodstream.json").read_text())
LABELS = ("happy", "sad", "angry", "neutral", "surprised", "fearful")


# The schema's enums (MappingType, FieldColorModeId, ...) are TypeScript enums; JSON holds their
# string values. Json<T> turns every enum into the union of its values, the rest stays as is.
JSON_TYPE = """
type Json<T> = T extends string ? `${T}` : T extends number | boolean | null | undefined ? T
  : T extends (infer U)[] ? Json<U>[] : T extends object ? { [K in keyof T]: Json<T[K]> } : T;
"""


def type_check(dashboard: dict) -> subprocess.CompletedProcess:
    check = GRAFANA / "check"
    tsc = check / "node_modules" / ".bin" / "tsc"
    if not tsc.exists():
        missing("@grafana/schema and typescript are not installed (scripts/setup.sh --test installs them)")
    source = check / "dashboard_check.ts"
    source.write_text("import type { Dashboard } from '@grafana/schema';\n" + JSON_TYPE
                      + f"export const dashboard: Json<Dashboard> = {json.dumps(dashboard, indent=1)};\n")
    try:
        return subprocess.run([str(tsc), "--noEmit", "--strict", "--skipLibCheck", "--moduleResolution", "node",
                               "--target", "es2020", str(source)], capture_output=True, text=True, cwd=check)
    finally:
        source.unlink()


def test_dashboard_matches_grafanas_schema():
    out = type_check(DASHBOARD)
    assert out.returncode == 0, out.stdout + out.stderr
    # The check can fail: a wrong type or an unknown value is caught.
    assert type_check(DASHBOARD | {"panels": [{"id": "one", "type": "stat", "gridPos": {"h": 1}}]}).returncode != 0
    bad_mapping = json.loads(json.dumps(DASHBOARD))
    bad_mapping["panels"][0]["fieldConfig"]["defaults"]["mappings"][0]["type"] = "valu"
    assert type_check(bad_mapping).returncode != 0


def test_provisioning_points_at_the_dashboard_and_its_data_source():
    ds = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "influxdb.yaml").read_text())["datasources"][0]
    uids = {t["datasource"]["uid"] for p in DASHBOARD["panels"] for t in p["targets"]}
    uids |= {v["datasource"]["uid"] for v in DASHBOARD["templating"]["list"]}
    assert uids == {ds["uid"]} and ds["type"] == "influxdb"
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "moodstream.yaml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    titles = {p["title"] for p in DASHBOARD["panels"]}
    assert titles == {"Current emotion", "Emotions over time", "Confidence over time", "Share of each emotion",
                      "Recent detections", "Aggregate shares (policy.aggregate_only)"}
    assert [v["name"] for v in DASHBOARD["templating"]["list"]] == ["robot", "camera"]


@pytest.fixture(scope="module")
def influx_with_data(tmp_path_factory):
    db = InfluxDB(tmp_path_factory.mktemp("influx"))
    db.start()
    now_ns = time.time_ns()
    lines = []
    # r1/front: track 1 happy for 20 points then sad for 10; track 2 angry. r2/back: neutral.
    for i in range(30):
        label = "happy" if i < 20 else "sad"
        lines.append(record("r1", "front", 1, label, now_ns - (60 - i) * 10**9))
    for i in range(10):
        lines.append(record("r1", "front", 2, "angry", now_ns - (40 - i) * 10**9))
    for i in range(5):
        lines.append(record("r2", "back", 1, "neutral", now_ns - (30 - i) * 10**9))
    import urllib.request

    body = "\n".join([*(line_protocol(r) for r in lines), *summary_lines(now_ns)]).encode()
    urllib.request.urlopen(urllib.request.Request(f"{db.url}/write?db={db.database}&precision=ns", data=body,
                                                  method="POST"), timeout=10)
    yield db
    db.stop()


def summary_lines(now_ns: int) -> list[str]:
    """Aggregate mode's windows for r1/front, as the bridge writes them: two with shares, one
    suppressed (too few people)."""
    lines = []
    for minutes_ago, happy, suppressed in ((3, 0.6, False), (2, 0.0, True), (1, 0.2, False)):
        shares = {label: 0.0 for label in LABELS}
        if not suppressed:
            shares.update(happy=happy, neutral=1.0 - happy)
        payload = {"robot": "r1", "camera": "front", "frames": 1800, "face_observations": 0 if suppressed else 3600,
                   "people": 1 if suppressed else 5, "suppressed": suppressed, "shares": shares}
        lines.append(summary_line_protocol(payload, now_ns - minutes_ago * 60 * 10**9))
    return lines


def record(robot: str, camera: str, track: int, label: str, stamp_ns: int) -> EmotionRecord:
    probs = tuple(0.8 if lab == label else 0.04 for lab in LABELS)
    return EmotionRecord(robot, camera, "pipeline", "m@1", stamp_ns, track, (0, 0, 10, 10), label, 0.8, label, 0.8,
                         LABELS, probs, "positive", "positive")


def grafana_query(query: str, robot: str = "r1", camera: str = ".*") -> str:
    """What Grafana's InfluxDB data source sends for a raw query."""
    return (query.replace("$timeFilter", "time >= now() - 1h").replace("$__interval", "10s")
            .replace("/^$robot$/", f"/^{robot}$/").replace("/^$camera$/", f"/^{camera}$/"))


def panel(title: str) -> str:
    return next(p for p in DASHBOARD["panels"] if p["title"] == title)["targets"][0]["query"]


def test_every_panel_query_returns_the_expected_series(influx_with_data):
    db = influx_with_data
    current = db.query(grafana_query(panel("Current emotion"), camera="front"))["results"][0]["series"][0]
    assert current["values"][0][1] == "sad"  # track 1's newest point; angry ended earlier

    timeline = db.query(grafana_query(panel("Emotions over time")))["results"][0]["series"]
    assert {s["tags"]["track"] for s in timeline} == {"1", "2"}
    track1 = next(s for s in timeline if s["tags"]["track"] == "1")
    labels = [v[1] for v in track1["values"]]
    assert labels[0] == "happy" and labels[-1] == "sad" and set(labels) == {"happy", "sad"}

    confidence = db.query(grafana_query(panel("Confidence over time")))["results"][0]["series"]
    assert {s["tags"]["label"] for s in confidence} == {"happy", "sad", "angry"}
    assert all(abs(v[1] - 0.8) < 1e-6 for s in confidence for v in s["values"])

    share = db.query(grafana_query(panel("Share of each emotion")))["results"][0]["series"]
    assert {s["tags"]["label"]: s["values"][0][1] for s in share} == {"happy": 20, "sad": 10, "angry": 10}

    table = db.query(grafana_query(panel("Recent detections")))["results"][0]["series"][0]
    assert table["columns"][:3] == ["time", "smoothed_label", "confidence"] and len(table["values"]) == 40
    assert table["values"][0][1] == "sad"  # newest first

    windows = db.query(grafana_query(panel("Aggregate shares (policy.aggregate_only)"), camera="front").replace(
        "10s", "1m"))["results"][0]["series"][0]
    assert windows["columns"] == ["time", *LABELS]
    assert [(v[1], v[4]) for v in windows["values"]] == [(0.6, 0.4), (0.2, 0.8)]  # the suppressed one left out

    other = db.query(grafana_query(panel("Share of each emotion"), robot="r2"))["results"][0]["series"]
    assert {s["tags"]["label"]: s["values"][0][1] for s in other} == {"neutral": 5}


def test_variables_list_robots_and_their_cameras(influx_with_data):
    db = influx_with_data
    robot_q, camera_q = (v["query"] for v in DASHBOARD["templating"]["list"])
    robots = db.query(robot_q)["results"][0]["series"][0]["values"]
    assert [v[1] for v in robots] == ["r1", "r2"]
    cameras = db.query(re.sub(r"/\^\$robot\$/", "/^r2$/", camera_q))["results"][0]["series"][0]["values"]
    assert [v[1] for v in cameras] == ["back"]
