"""Bridge node: relays ``emotions`` to MQTT and InfluxDB, and records the local mood history
(SQLite) only when the operator asks for it (``history: always``, the runner's ``--history``).
In aggregate mode (``policy.aggregate_only``) it relays ``emotions/summary`` instead, and keeps
no history. It watches its own egress and storage, and the emotion topics' subscribers, against
the policy; the flags go to ``/diagnostics``, the audit log and the MQTT status topic."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from moodstream_common.lifecycle import StageNode
from moodstream_common.parameters import Spec, defaults
from moodstream_common.policy import POLICY_SPECS
from moodstream_common.ros import ParameterError, record_qos, run_node, stamp_to_seconds
from moodstream_interfaces.msg import EmotionArray, EmotionSummary

from .history import STATE_DIR, History
from .influx_writer import InfluxSettings, InfluxWriter, summary_line_protocol
from .mqtt_relay import MqttRelay, MqttSettings, credentials
from .outbox import Outbox
from .records import RateLimiter, encode, records_from_array, summary_payload


def _restart(default, description: str, *bounds, **kw) -> Spec:
    return Spec(default, description, *bounds, read_only=True, **kw)


SPECS = {
    "robot_id": _restart("", "the robot's name in topics and records (empty: this machine's host name)"),
    "camera_id": _restart("camera", "the camera's name in topics and records"),
    "mqtt_url": _restart("", "mqtt://host:1883 or mqtts://host:8883 (empty: no MQTT)"),
    "mqtt_topic_prefix": _restart("moodstream", "<prefix>/<robot>/<camera>/emotion (.../summary in aggregate "
                                  "mode) and .../status"),
    "mqtt_legacy_topic": _restart("", "also publish the bare smoothed label here (the original MoodStream's)"),
    "mqtt_client_id": _restart("", "MQTT client id (empty: a random one)"),
    "mqtt_credentials_file": _restart("", "'user:password' file (else $MOODSTREAM_MQTT_USERNAME / _PASSWORD)"),
    "mqtt_ca_file": _restart("", "CA certificate of an mqtts:// broker"),
    "mqtt_cert_file": _restart("", "client certificate (mqtts://)"),
    "mqtt_key_file": _restart("", "client key (mqtts://)"),
    "mqtt_tls_insecure": _restart(False, "skip the broker's host-name check (testing only)"),
    "influx_url": _restart("", "http://host:8086 (empty: no InfluxDB)"),
    "influx_api": _restart("v1", "v1 (/write, database) or v2 (/api/v2/write, org, bucket, token)",
                           choices=("v1", "v2")),
    "influx_database": _restart("moodstream", "InfluxDB 1.x database"),
    "influx_org": _restart("", "InfluxDB 2.x organisation"),
    "influx_bucket": _restart("", "InfluxDB 2.x bucket"),
    "influx_credentials_file": _restart("", "v1 'user:password', v2 the token (else $MOODSTREAM_INFLUX_*)"),
    "influx_max_per_second": Spec(1.0, "InfluxDB points per face and second (0: every frame)", 0.0, 1000.0),
    "outbox_path": _restart("", "outbox file (empty: $XDG_STATE_HOME/moodstream/outbox-<robot>-<camera>.db)"),
    "outbox_max_messages": _restart(100000, "messages the outbox keeps while the broker is away", 1, 10**9),
    "on_change": Spec(True, "relay a face when its smoothed label changes ..."),
    "max_per_second": Spec(1.0, "... and at most this often per face (0: no cap)", 0.0, 1000.0),
    "history": _restart("never", "the local mood history: never (nothing on disk), always, or auto (when neither "
                        "MQTT nor InfluxDB is set)", choices=("never", "always", "auto")),
    "history_db": _restart("", "history file (empty: $XDG_STATE_HOME/moodstream/history.db)"),
    "history_retention_days": _restart(30.0, "days of history kept (at most policy.retention_days)", 0.01,
                                       36500.0),
    "queue_depth": _restart(100, "emotion arrays the subscription holds while the bridge catches up", 1, 10000),
    **POLICY_SPECS,
}
DEFAULTS = defaults(SPECS)


def influx_settings(p: dict) -> InfluxSettings:
    """v1: user and password; v2: a token; from the credentials file or the environment."""
    secret = Path(p["influx_credentials_file"]).expanduser().read_text().strip() if p["influx_credentials_file"] else ""
    settings = InfluxSettings(url=p["influx_url"], api=p["influx_api"], database=p["influx_database"],
                              org=p["influx_org"], bucket=p["influx_bucket"])
    if p["influx_api"] == "v2":
        settings.token = secret or os.environ.get("MOODSTREAM_INFLUX_TOKEN")
    elif secret:
        settings.username, _, settings.password = secret.partition(":")
    else:
        settings.username = os.environ.get("MOODSTREAM_INFLUX_USERNAME")
        settings.password = os.environ.get("MOODSTREAM_INFLUX_PASSWORD")
    return settings


class BridgeNode(StageNode):
    """``emotions`` to MQTT, InfluxDB and the mood history. configure opens the outboxes and
    connects; activate subscribes; cleanup delivers what it can and closes the files."""

    stage = "bridge"

    def __init__(self, name: str = "bridge", **kwargs) -> None:
        super().__init__(name, SPECS, **kwargs)
        p = self.params
        p["robot_id"] = p["robot_id"] or socket.gethostname()
        if self.aggregate_only and p["history"] == "always":
            raise ParameterError("the mood history keeps each person's series, and the policy allows aggregates "
                                 "only (policy.aggregate_only, or policy.context public): set history to never")
        self.enforce_policy(egress=self.egress, stored=[str(self.history_path)] if self.records_history else [])
        self.watch_emotion_topics()
        base = f"{p['mqtt_topic_prefix']}/{p['robot_id']}/{p['camera_id']}"
        self.emotion_topic, self.status_topic = f"{base}/emotion", f"{base}/status"
        self.summary_topic = f"{base}/summary"
        self.limiter = RateLimiter(p["on_change"], p["max_per_second"])
        self.relay: MqttRelay | None = None
        self.outbox: Outbox | None = None
        self.influx: InfluxWriter | None = None
        self.history: History | None = None
        self.subscription = None
        self.audited_start = False
        self.received = 0
        self.accepted = 0

    @property
    def egress(self) -> list[str]:
        """Where emotions leave this process: the broker and the database configured."""
        return [url for url in (self.params["mqtt_url"], self.params["influx_url"]) if url]

    @property
    def records_history(self) -> bool:
        p = self.params
        if self.aggregate_only:
            return False
        return p["history"] == "always" or (p["history"] == "auto" and not p["mqtt_url"] and not p["influx_url"])

    @property
    def history_path(self) -> Path:
        return Path(self.params["history_db"]).expanduser() if self.params["history_db"] else STATE_DIR / "history.db"

    def setup(self) -> None:
        p = self.params
        if p["mqtt_url"]:
            outbox = p["outbox_path"] or STATE_DIR / f"outbox-{p['robot_id']}-{p['camera_id']}.db"
            self.outbox = Outbox(outbox, p["outbox_max_messages"])
            user, password = credentials(p["mqtt_credentials_file"])
            self.relay = MqttRelay(MqttSettings(
                url=p["mqtt_url"], status_topic=self.status_topic, client_id=p["mqtt_client_id"], username=user,
                password=password, ca_file=p["mqtt_ca_file"] or None, cert_file=p["mqtt_cert_file"] or None,
                key_file=p["mqtt_key_file"] or None, tls_insecure=p["mqtt_tls_insecure"]), self.outbox)
            self.relay.start()
            self.get_logger().info(f"relaying to {p['mqtt_url']} on {self.emotion_topic} "
                                   f"({len(self.outbox)} messages waiting in {outbox})")
        if p["influx_url"]:
            self.influx = InfluxWriter(influx_settings(p), Outbox(
                STATE_DIR / f"influx-outbox-{p['robot_id']}-{p['camera_id']}.db" if not p["outbox_path"]
                else Path(p["outbox_path"]).with_suffix(".influx.db"), p["outbox_max_messages"]))
            self.influx_limiter = RateLimiter(on_change=False, max_per_second=p["influx_max_per_second"])
            self.influx.start()
            self.get_logger().info(f"writing to InfluxDB {p['influx_url']} ({p['influx_api']} API)")
        if self.records_history:
            retention = min(p["history_retention_days"], p["policy.retention_days"])  # flagged when cut
            self.history = History(self.history_path, retention)
            self.history_limiter = RateLimiter(on_change=False, max_per_second=1.0)
            self.get_logger().info(f"recording the mood history in {self.history.path}")
        self._audit_start()

    def _audit_start(self) -> None:
        """Where emotions go, in the audit log, whenever they leave the process or are stored; and
        the watcher's verdict on it."""
        p, egress = self.params, self.egress
        if not egress and self.history is None:
            return  # nothing leaves, nothing is kept: nothing to account for
        stored = {"history": str(self.history.path), "retention_days": self.history.retention_ns / 86400e9} \
            if self.history is not None else None
        self.watcher.record("start", robot=p["robot_id"], camera=p["camera_id"], egress=egress, stored=stored,
                            output="aggregate" if self.aggregate_only else "per person",
                            policy={name: p[name] for name in POLICY_SPECS})
        self.audited_start = True
        for flag in self.watcher.check_egress(egress):
            self.get_logger().warning(f"{flag.message}: use mqtts:// or https:// (see docs/bridge.md)")
        if self.history is not None:
            for flag in self.watcher.check_storage({str(self.history.path): p["history_retention_days"]}):
                self.get_logger().error(flag.message)

    def check_graph(self) -> None:
        super().check_graph()
        if self.relay is not None:
            self.relay.set_flags([flag.as_dict() for flag in self.watcher.flags])

    def start(self) -> None:
        if self.aggregate_only:
            self.subscription = self.create_subscription(EmotionSummary, "emotions/summary", self.on_summary,
                                                         record_qos(self.params["queue_depth"]))
        else:
            self.subscription = self.create_subscription(EmotionArray, "emotions", self.on_emotions,
                                                         record_qos(self.params["queue_depth"]))

    def stop(self) -> None:
        if self.subscription is not None:
            self.destroy_subscription(self.subscription)
            self.subscription = None

    def teardown(self) -> None:
        if self.audited_start:
            self.watcher.record("stop", received=self.received, accepted=self.accepted)
            self.audited_start = False
        if self.relay is not None:
            self.relay.stop()
        if self.influx is not None:
            self.influx.stop()
            self.influx.outbox.close()
        for store in (self.outbox, self.history):
            if store is not None:
                store.close()
        self.relay = self.influx = self.outbox = self.history = None

    def on_parameters(self, names: set[str]) -> None:
        """Rate limits change live; everything else needs a restart (read-only)."""
        p = self.params
        self.limiter.on_change, self.limiter.max_per_second = p["on_change"], p["max_per_second"]
        if self.influx is not None:
            self.influx_limiter.max_per_second = p["influx_max_per_second"]

    def on_emotions(self, msg: EmotionArray) -> None:
        now = time.monotonic()
        self.received += 1
        for record in records_from_array(msg, self.params["robot_id"], self.params["camera_id"]):
            if self.history is not None and self.history_limiter.allow(record, now):
                self.history.add(record)
            if self.influx is not None and self.influx_limiter.allow(record, now):
                self.influx.put(record)
            if self.outbox is not None and self.limiter.allow(record, now):
                message_id = f"{self.params['robot_id']}/{self.params['camera_id']}/{record.stamp_ns}/{record.track_id}"
                self.outbox.put(self.emotion_topic, encode(record.to_payload(message_id)))
                if self.params["mqtt_legacy_topic"]:
                    self.outbox.put(self.params["mqtt_legacy_topic"], record.smoothed_label.encode())
                self.accepted += 1

    def on_summary(self, msg: EmotionSummary) -> None:
        """Aggregate mode: every window goes to MQTT and InfluxDB (no rate limit: one a window)."""
        self.received += 1
        payload = summary_payload(msg, self.params["robot_id"], self.params["camera_id"])
        if self.outbox is not None:
            self.outbox.put(self.summary_topic, encode(payload))
            self.accepted += 1
        if self.influx is not None:
            self.influx.put_line(summary_line_protocol(payload, int(stamp_to_seconds(msg.header.stamp) * 1e9)))

    def status(self) -> tuple[str, str, dict]:
        values = {"received": self.received, "accepted": self.accepted}
        if self.relay is not None and self.outbox is not None:
            values.update(mqtt_connected=self.relay.connected, mqtt_sent=self.relay.sent, waiting=len(self.outbox),
                          dropped_oldest=self.outbox.dropped)
        if self.influx is not None:
            values.update(influx_connected=self.influx.connected, influx_written=self.influx.written,
                          influx_waiting=len(self.influx.outbox), influx_rejected=self.influx.rejected)
        if self.history is not None:
            values["history_db"] = str(self.history.path)
        stores = [self.outbox, self.history, self.influx.outbox if self.influx is not None else None]
        moved = [str(s.recovered_from) for s in stores if s is not None and s.recovered_from is not None]
        if moved:
            values["corrupt_files_moved_to"] = ", ".join(moved)
            return "warn", f"a corrupt database was moved aside and a new one started: {moved[0]}", values
        if self.influx is not None and self.influx.last_error:
            return "warn", self.influx.last_error, values
        unencrypted = [f.subject for f in self.watcher.flags if f.code == "egress_without_tls"]
        if unencrypted:
            values["unencrypted_egress"] = ", ".join(unencrypted)
        if self.relay is not None and not self.relay.connected:
            level = "error" if self.relay.tls_failed else "warn"
            return level, self.relay.last_error or "connecting to the broker", values
        return "ok", "relaying", values


def main(args: list[str] | None = None) -> None:
    run_node(BridgeNode, args)
