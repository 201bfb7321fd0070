"""MQTT relay (paho-mqtt): QoS 1, a retained online/offline status with a last will, username and
password, TLS, reconnect with backoff, and delivery from a durable outbox (ROS-free).

A message leaves the outbox only when the broker acknowledged it (PUBACK), so everything accepted
while the broker is away is sent, oldest first, once it is back. QoS 1 is at-least-once: a message
whose acknowledgement was lost is sent again, and the payload's ``id`` lets a consumer drop the
repeat.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import ssl
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import paho.mqtt.client as mqtt

from .outbox import Outbox, wait_until_drained

log = logging.getLogger(__name__)


class MqttConfigError(ValueError):
    pass


@dataclass
class MqttSettings:
    url: str  # mqtt://host:1883 or mqtts://host:8883
    status_topic: str
    client_id: str = ""
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    tls_insecure: bool = False
    keepalive: int = 30
    max_inflight: int = 50


def credentials(path: str = "", env_prefix: str = "MOODSTREAM_MQTT") -> tuple[str | None, str | None]:
    """Username and password from a file (``username`` and ``password`` lines, or one
    ``username:password`` line) or from ``MOODSTREAM_MQTT_USERNAME`` / ``MOODSTREAM_MQTT_PASSWORD``.
    Never from the command line."""
    if path:
        text = Path(path).expanduser().read_text().strip()
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if len(lines) == 1 and ":" in lines[0]:
            user, _, password = lines[0].partition(":")
            return user, password
        if len(lines) == 2:
            return lines[0], lines[1]
        raise MqttConfigError(f"credentials file {path} must hold 'username:password' or two lines")
    return os.environ.get(f"{env_prefix}_USERNAME"), os.environ.get(f"{env_prefix}_PASSWORD")


def new_client(client_id: str) -> mqtt.Client:
    """A paho client with the MQTT 3.1.1 clean session MoodStream uses, from paho-mqtt 1.6 or 2.x.

    Ubuntu 24.04's python3-paho-mqtt (what rosdep installs) is 1.6, which has no
    ``CallbackAPIVersion``; the callbacks below accept both versions' arguments.
    """
    if hasattr(mqtt, "CallbackAPIVersion"):
        return mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311,
                           clean_session=True)
    return mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv311, clean_session=True)


class MqttRelay:
    def __init__(self, settings: MqttSettings, outbox: Outbox) -> None:
        url = urlparse(settings.url)
        if url.scheme not in ("mqtt", "mqtts") or not url.hostname:
            raise MqttConfigError(
                f"MQTT URL must look like mqtt://host:1883 or mqtts://host:8883, got {settings.url!r}")
        if url.username or url.password:
            raise MqttConfigError("put MQTT credentials in a file or the environment, not in the URL")
        self.settings, self.outbox = settings, outbox
        self.host, self.tls = url.hostname, url.scheme == "mqtts"
        try:
            self.port = url.port or (8883 if self.tls else 1883)
        except ValueError:
            raise MqttConfigError(f"the port in MQTT URL {settings.url!r} is not a number from 1 to 65535") from None
        for name, path in (("CA certificate", settings.ca_file), ("client certificate", settings.cert_file),
                           ("client key", settings.key_file)):
            if path and not Path(path).expanduser().is_file():
                raise MqttConfigError(f"the MQTT {name} {path} does not exist")
        client_id = settings.client_id or f"moodstream-{uuid.uuid4().hex[:8]}"
        self.client = new_client(client_id)
        if settings.username:
            self.client.username_pw_set(settings.username, settings.password)
        if self.tls:
            self.client.tls_set(ca_certs=settings.ca_file, certfile=settings.cert_file, keyfile=settings.key_file,
                                cert_reqs=ssl.CERT_REQUIRED)
            self.client.tls_insecure_set(settings.tls_insecure)
        self.client.will_set(settings.status_topic, self.status_payload("offline"), qos=1, retain=True)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_connect_fail = self._on_connect_fail
        self.connected = False
        self.flags: list[dict] = []
        self.last_error = ""
        self.tls_failed = False  # the last failed connection failed in the TLS handshake
        self.sent = 0
        self._lock = threading.Lock()
        self._inflight: dict[int, int] = {}  # paho mid -> outbox id
        self._acked_mids: set[int] = set()
        self._cursor = 0  # highest outbox id handed to paho since the last (re)connect
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None

    def status_payload(self, state: str) -> bytes:
        """The retained status: online or offline, and while online the policy flags that hold
        (``moodstream_common.watch``; an empty list when all is well)."""
        payload: dict = {"schema": "moodstream.status/1", "state": state}
        if state == "online":
            payload["flags"] = self.flags
        return json.dumps(payload).encode()

    def set_flags(self, flags: list[dict]) -> None:
        """Publish the status again when the policy flags change."""
        if flags == self.flags:
            return
        self.flags = flags
        if self.connected:
            self.client.publish(self.settings.status_topic, self.status_payload("online"), qos=1, retain=True)

    # -- paho callbacks (paho's network thread), for paho-mqtt 1.6 and 2.x ----------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties=None) -> None:
        # paho 2 gives a ReasonCode; paho 1.6 an int (0: accepted).
        if reason_code != 0:
            if isinstance(reason_code, int):
                reason_code = mqtt.connack_string(reason_code)
            self.last_error = f"broker refused the connection: {reason_code}"
            log.error("%s", self.last_error)
            return
        with self._lock:
            self.connected, self.last_error, self.tls_failed = True, "", False
            self._inflight.clear()
            self._acked_mids.clear()
            self._cursor = 0  # resend everything not acknowledged, oldest first
        client.publish(self.settings.status_topic, self.status_payload("online"), qos=1, retain=True)
        log.info("connected to %s:%d", self.host, self.port)

    def _on_disconnect(self, client, userdata, *args) -> None:
        # paho 2: (flags, reason_code, properties); paho 1.6: (rc,)
        reason_code = args[1] if len(args) >= 2 else args[0]
        with self._lock:
            self.connected = False
        if reason_code != 0:
            self.last_error = f"disconnected from {self.host}:{self.port} ({reason_code}); reconnecting"
            log.warning("%s", self.last_error)

    def _on_connect_fail(self, client, userdata) -> None:
        """paho retries (1 s, doubling to 30 s) without saying why: find out, log it once a cause."""
        reason = self.diagnose()
        self.tls_failed = reason.startswith("TLS:")
        error = f"cannot connect to {self.host}:{self.port}: {reason}"
        if error != self.last_error:
            log.error("%s; retrying", error)
        self.last_error = error

    def diagnose(self) -> str:
        """Why a connection fails: the socket's error, or the TLS handshake's (CA, host name, ...)."""
        try:
            sock = socket.create_connection((self.host, self.port), timeout=5)
        except OSError as err:
            return err.strerror or str(err)
        with sock:
            if not self.tls:
                return "the broker closed the connection"
            s = self.settings
            try:
                context = ssl.create_default_context(cafile=s.ca_file)
                if s.cert_file:
                    context.load_cert_chain(s.cert_file, s.key_file)
                context.check_hostname = not s.tls_insecure
                with context.wrap_socket(sock, server_hostname=self.host):
                    return "the broker closed the connection after the TLS handshake"
            except ssl.SSLCertVerificationError as err:
                return (f"TLS: certificate verify failed: {err.verify_message} "
                        "(check mqtt_ca_file, and the broker certificate and host name)")
            except (ssl.SSLError, OSError) as err:
                return f"TLS: {getattr(err, 'reason', None) or err}"

    def _on_publish(self, client, userdata, mid, *_) -> None:
        with self._lock:
            self._acked_mids.add(mid)

    # -- the outbox pump -------------------------------------------------------------------------
    def pump(self) -> None:
        """Acknowledge what the broker confirmed and hand paho the next messages."""
        with self._lock:
            acked = [self._inflight.pop(mid) for mid in self._acked_mids if mid in self._inflight]
            # Acknowledgements that match nothing in flight are stale (paho resending an old
            # message after a reconnect) or raced ahead of their publish: forget them. A stale
            # one kept could match a reused message id later and drop a message unsent; a raced
            # one forgotten only means that message goes out once more.
            self._acked_mids.clear()
            connected, room = self.connected, self.settings.max_inflight - len(self._inflight)
            cursor = self._cursor
        self.outbox.ack(acked)
        self.sent += len(acked)
        if not connected or room <= 0:
            return
        for row_id, topic, payload in self.outbox.peek(room, after=cursor):
            info = self.client.publish(topic, payload, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                break
            with self._lock:
                self._inflight[info.mid] = row_id
                self._cursor = row_id

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.pump()
            except Exception as err:  # keep relaying whatever happens to one message
                log.exception("MQTT pump failed: %s", err)
            self._stop.wait(0.02)

    def start(self) -> None:
        self.client.connect_async(self.host, self.port, keepalive=self.settings.keepalive)
        self.client.loop_start()
        self._worker = threading.Thread(target=self._run, name="mqtt-pump", daemon=True)
        self._worker.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Deliver what can be delivered within ``timeout``, say offline, disconnect."""
        wait_until_drained(self.outbox, lambda: self.connected, timeout)
        self._stop.set()
        if self._worker is not None:
            self._worker.join()
        if self.connected:
            info = self.client.publish(self.settings.status_topic, self.status_payload("offline"), qos=1, retain=True)
            info.wait_for_publish(timeout=2)
        self.client.disconnect()
        self.client.loop_stop()
