"""InfluxDB writer: line protocol in batches, with retries, over the v1 API (``/write``, database,
optional user and password) or the v2 API (``/api/v2/write``, token, org, bucket), fed from a
durable outbox like the MQTT relay (ROS-free).

Schema: measurement ``emotion``; tags ``robot``, ``camera``, ``track``, ``label``, ``source``,
``mood``; fields ``confidence``, ``smoothed_confidence``, ``p_<label>`` for each class, and
``smoothed_label`` (string); time: the source frame's stamp, nanoseconds. In aggregate mode,
measurement ``emotion_summary``; tags ``robot``, ``camera``; fields ``frames``,
``face_observations``, ``people``, ``suppressed`` and ``share_<label>``; time: the window's end.
"""

from __future__ import annotations

import base64
import logging
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from .outbox import Outbox, wait_until_drained
from .records import EmotionRecord

log = logging.getLogger(__name__)
MEASUREMENT = "emotion"


def _tag(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def _string_field(value: str) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def line_protocol(record: EmotionRecord) -> str:
    tags = {"robot": record.robot, "camera": record.camera, "track": str(record.track_id), "label": record.label,
            "source": record.source, "mood": record.mood}
    fields = [f"confidence={record.confidence:.6g}", f"smoothed_confidence={record.smoothed_confidence:.6g}"]
    fields += [f"p_{_tag(lab)}={p:.6g}" for lab, p in zip(record.labels, record.probabilities, strict=True)]
    fields.append(f"smoothed_label={_string_field(record.smoothed_label)}")
    tag_text = ",".join(f"{k}={_tag(v)}" for k, v in sorted(tags.items()) if v != "")
    return f"{MEASUREMENT},{tag_text} {','.join(fields)} {record.stamp_ns}"


def summary_line_protocol(payload: dict, stamp_ns: int) -> str:
    """An aggregate window (:func:`records.summary_payload`) as one line."""
    tags = f"robot={_tag(payload['robot'])},camera={_tag(payload['camera'])}"
    # Numbers as floats, as Node-RED writes them: both paths can share one measurement.
    fields = [f"frames={payload['frames']}", f"face_observations={payload['face_observations']}",
              f"people={payload['people']}", f"suppressed={'true' if payload['suppressed'] else 'false'}"]
    if not payload["suppressed"]:
        fields += [f"share_{_tag(label)}={share:.6g}" for label, share in payload["shares"].items()]
    return f"{MEASUREMENT}_summary,{tags} {','.join(fields)} {stamp_ns}"


class InfluxConfigError(ValueError):
    pass


@dataclass
class InfluxSettings:
    url: str  # http(s)://host:8086
    api: str = "v1"  # v1 | v2
    database: str = "moodstream"  # v1
    username: str | None = None  # v1
    password: str | None = None  # v1
    token: str | None = None  # v2
    org: str = ""  # v2
    bucket: str = ""  # v2
    batch_size: int = 500
    timeout_s: float = 5.0


def write_request(settings: InfluxSettings, body: bytes) -> urllib.request.Request:
    base = settings.url.rstrip("/")
    if settings.api == "v1":
        query = {"db": settings.database, "precision": "ns"}
        request = urllib.request.Request(f"{base}/write?{urllib.parse.urlencode(query)}", data=body, method="POST")
        if settings.username:
            basic = base64.b64encode(f"{settings.username}:{settings.password or ''}".encode()).decode()
            request.add_header("Authorization", f"Basic {basic}")
    elif settings.api == "v2":
        if not (settings.org and settings.bucket):
            raise InfluxConfigError("the InfluxDB v2 API needs an org and a bucket")
        query = {"org": settings.org, "bucket": settings.bucket, "precision": "ns"}
        request = urllib.request.Request(f"{base}/api/v2/write?{urllib.parse.urlencode(query)}", data=body,
                                         method="POST")
        if settings.token:
            request.add_header("Authorization", f"Token {settings.token}")
    else:
        raise InfluxConfigError(f"influx api must be v1 or v2, got {settings.api!r}")
    request.add_header("Content-Type", "text/plain; charset=utf-8")
    return request


class InfluxWriter:
    """Sends the outbox's lines in batches; a batch leaves the outbox when the server took it
    (204). Unreachable server or 5xx: retried with backoff (1 s doubling to 30 s). A 4xx other
    than 401/403/404 means the data itself was refused: that batch is dropped and counted, so one
    bad point cannot block the queue."""

    def __init__(self, settings: InfluxSettings, outbox: Outbox) -> None:
        parsed = urllib.parse.urlparse(settings.url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise InfluxConfigError(f"InfluxDB URL must look like http://host:8086, got {settings.url!r}")
        write_request(settings, b"")  # fail now on a bad configuration
        self.settings, self.outbox = settings, outbox
        self.connected = False
        self.last_error = ""
        self.written = 0
        self.rejected = 0
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._delay = 1.0

    def put(self, record: EmotionRecord) -> None:
        self.outbox.put("influx", line_protocol(record).encode())

    def put_line(self, line: str) -> None:
        self.outbox.put("influx", line.encode())

    def flush_once(self) -> bool:
        """Send one batch; True when there may be more to send right away."""
        rows = self.outbox.peek(self.settings.batch_size)
        if not rows:
            return False
        body = b"\n".join(payload for _, _, payload in rows)
        try:
            with urllib.request.urlopen(write_request(self.settings, body), timeout=self.settings.timeout_s):
                pass
        except urllib.error.HTTPError as err:
            detail = err.read().decode(errors="replace")[:200]
            if 400 <= err.code < 500 and err.code not in (401, 403, 404):
                self.outbox.ack([row_id for row_id, _, _ in rows])
                self.rejected += len(rows)
                self.last_error = f"InfluxDB refused {len(rows)} points ({err.code}): {detail}"
                log.error("%s", self.last_error)
                return True
            self._failed(f"InfluxDB answered {err.code}: {detail}")
            return False
        except (urllib.error.URLError, OSError) as err:
            self._failed(f"InfluxDB at {self.settings.url} is unreachable: {err}")
            return False
        self.outbox.ack([row_id for row_id, _, _ in rows])
        self.written += len(rows)
        self.connected, self.last_error, self._delay = True, "", 1.0
        return True

    def _failed(self, message: str) -> None:
        if self.connected or message != self.last_error:
            log.warning("%s; retrying in %.0f s", message, self._delay)
        self.connected, self.last_error = False, message
        self._stop.wait(self._delay)
        self._delay = min(30.0, self._delay * 2)

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self.flush_once():
                self._stop.wait(0.2)

    def start(self) -> None:
        self._worker = threading.Thread(target=self._run, name="influx-writer", daemon=True)
        self._worker.start()

    def stop(self, timeout: float = 5.0) -> None:
        wait_until_drained(self.outbox, lambda: self.connected, timeout)
        self._stop.set()
        if self._worker is not None:
            self._worker.join()
