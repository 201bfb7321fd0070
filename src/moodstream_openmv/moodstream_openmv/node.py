"""OpenMV host node: reads the camera's UART frames with pyserial and publishes the same emotion
messages as the host pipeline, on ``openmv/emotions`` and ``openmv/emotion`` (remap them to
``emotions`` / ``emotion`` to stand in for the host pipeline); in aggregate mode
(``policy.aggregate_only``) ``openmv/emotions/summary`` alone. With ``policy.require_consent`` it
hosts the ``consent`` service and leaves the serial port closed until consent is given: the
camera keeps running its firmware, but nothing it sends is read."""

from __future__ import annotations

import contextlib
import time
from collections import deque

import numpy as np
import serial
from std_msgs.msg import Header

from moodstream_classify.convert import summary_to_msg, to_messages
from moodstream_classify.estimator import ESTIMATOR_SPECS, estimator_from_params, reconfigure
from moodstream_classify.model import ModelError, apply_temperature, default_model_path, read_metadata, temperature_of
from moodstream_common.aggregate import Aggregator
from moodstream_common.backoff import Backoff
from moodstream_common.consent import ConsentHost
from moodstream_common.lifecycle import StageNode
from moodstream_common.parameters import Spec, defaults
from moodstream_common.policy import POLICY_SPECS
from moodstream_common.preprocess import Box
from moodstream_common.ros import record_qos, run_node
from moodstream_interfaces.msg import Emotion, EmotionArray, EmotionSummary

from .firmware_protocol import LABELS
from .protocol import BareLabel, CameraError, FacesFrame, Heartbeat, LineParser

SPECS = {
    "port": Spec("/dev/ttyACM0", "the camera's USB serial, or a UART adapter on UART3", read_only=True),
    "baud": Spec(115200, "serial speed", 1200, 4000000, read_only=True),
    "accept_bare_labels": Spec(True, "accept the original firmware's label-only lines", read_only=True),
    "frame_id": Spec("openmv_optical_frame", "header frame id of the camera's results"),
    "image_width": Spec(320, "the firmware's frame width (QVGA)", 1, 4096),
    "image_height": Spec(240, "the firmware's frame height", 1, 4096),
    "poll_hz": Spec(100.0, "how often the serial port is read", 1.0, 1000.0, read_only=True),
    "publish_per_poll": Spec(3, "frames published per poll at most (3 x 100 Hz: 300 frames/s, more than 115200 "
                             "baud can carry); the rest wait in the backlog", 1, 1000),
    "backlog_frames": Spec(300, "frames kept while publishing catches up; beyond it the oldest are dropped "
                           "and counted", 1, 100000),
    "queue_depth": Spec(100, "depth of the result publishers' reliable queues", 1, 10000, read_only=True),
    "silent_after_s": Spec(3.0, "no valid frame for this long: the link is reported silent (s)", 0.1, 3600.0),
    "reconnect_max_s": Spec(5.0, "longest wait between reconnect attempts (s)", 0.5, 3600.0),
    "confidence_temperature": Spec(0.0, "temperature scaling of the camera's probabilities (0: the camera model's, "
                                   "from emotion_camera.json of moodstream_models; 1: none)", 0.0, 20.0,
                                   read_only=True),
    **ESTIMATOR_SPECS,
    **POLICY_SPECS,
}
DEFAULTS = defaults(SPECS)
#: How long /diagnostics warns after frames were dropped from the backlog (s).
DROP_WARNING_S = 10.0


class OpenMVNode(StageNode):
    """The camera's UART results as ``openmv/emotions`` / ``openmv/emotion``. configure builds the
    parser and publishers; activate opens the serial port (retrying); deactivate closes it."""

    stage = "openmv"

    def __init__(self, name: str = "openmv", **kwargs) -> None:
        super().__init__(name, SPECS, **kwargs)
        self.enforce_policy()  # the context rules (nothing leaves this node but topics)
        self.record_declared_policy()  # the node that produces emotions speaks for the policy
        self.watch_emotion_topics("openmv/")
        p = self.params
        self.consent = ConsentHost(self, self._on_consent, self.watcher) if p["policy.require_consent"] else None
        self.aggregator: Aggregator | None = None
        self.summary_pub = None
        self.parser = LineParser(accept_bare_labels=p["accept_bare_labels"])
        self.estimator = estimator_from_params(p, None, list(LABELS))
        self.temperature = p["confidence_temperature"] or self._camera_model_temperature()
        self.emotions_pub = self.emotion_pub = self.ticker = None
        self._serial: serial.Serial | None = None
        self._backoff = Backoff(maximum=p["reconnect_max_s"])
        self._retry_at = 0.0
        self._last_valid = 0.0
        self.reconnects = 0
        self.link_error = ""
        self.camera_error = ""
        self.camera_fps = 0.0
        self.camera_t_ms = -1
        # One read can hold dozens of frames (after a host stall): they wait here and are published
        # a few per poll, so that no subscriber's queue overflows unseen.
        self.backlog: deque = deque()
        self.published = 0
        self.backlog_dropped = 0
        self._dropped_at = -1e9

    def _camera_model_temperature(self) -> float:
        """The temperature fitted for the camera's model (``moodstream calibrate``), so that its
        confidences mean what the host model's do."""
        try:
            path = default_model_path().with_name("emotion_camera.tflite")
            return temperature_of(read_metadata(path), path)
        except ModelError as err:
            self.get_logger().warning(f"camera probabilities left uncalibrated: {err}")
            return 1.0

    def setup(self) -> None:
        p = self.params
        qos = record_qos(p["queue_depth"])
        if self.aggregate_only:
            self.aggregator = Aggregator(LABELS, p["policy.aggregate_window_s"], p["policy.aggregate_min_people"])
            self.summary_pub = self.create_stage_publisher(EmotionSummary, "openmv/emotions/summary", qos)
        else:
            # Stage publishers: in-process to the runner's console and counters (local_bus).
            self.emotions_pub = self.create_stage_publisher(EmotionArray, "openmv/emotions", qos)
            self.emotion_pub = self.create_stage_publisher(Emotion, "openmv/emotion", qos)

    def _on_consent(self, granted: bool) -> None:
        if not granted:  # stop reading, forget every track and what waited to be published
            self._close_port()
            self.backlog.clear()
            self.estimator.forget()
            if self.aggregator is not None:
                self.aggregator.forget()

    def _close_port(self) -> None:
        if self._serial is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                self._serial.close()
            self._serial = None

    def start(self) -> None:
        self._retry_at = 0.0
        self._backoff.reset()
        # On a thread of its own where the executor allows it: a 100 Hz ROS timer woke the executor
        # (and rebuilt its wait set) 100 times a second, 66 ms of CPU per second with no camera.
        self.ticker = self.start_ticking(self.params["poll_hz"], self.poll)

    def stop(self) -> None:
        if self.ticker is not None:
            self.ticker.stop()
            self.ticker = None
        self._close_port()
        if self.aggregator is not None:
            self._publish_summary(self.aggregator.flush())

    def teardown(self) -> None:
        for pub in (self.emotions_pub, self.emotion_pub, self.summary_pub):
            if pub is not None:
                pub.destroy()
        self.emotions_pub = self.emotion_pub = self.summary_pub = self.aggregator = None

    def _publish_summary(self, summary) -> None:
        if summary is not None and self.summary_pub is not None:
            self.summary_pub.publish(summary_to_msg(summary, self.params["frame_id"]))

    def on_parameters(self, names: set[str]) -> None:
        """Live changes: smoothing and tracking from the next frame on, the reconnect limit."""
        if names & set(ESTIMATOR_SPECS):
            reconfigure(self.estimator, self.params)
        self._backoff.maximum = self.params["reconnect_max_s"]

    # -- the link ---------------------------------------------------------------------------------
    @property
    def link_state(self) -> str:
        if self._serial is None:
            return "down"
        silent = time.monotonic() - self._last_valid > self.params["silent_after_s"]
        return "silent" if silent else "up"

    def _open(self) -> None:
        port = self.params["port"]
        try:
            self._serial = serial.Serial(port, self.params["baud"], timeout=0)
        except (serial.SerialException, OSError) as err:
            self._fail(f"cannot open {port}: {err}")
            return
        self.parser.reset_sequence()
        self._last_valid = time.monotonic()
        if self._backoff.attempts:
            self.reconnects += 1
            self.get_logger().info(f"{port} is back (reconnect {self.reconnects})")
        else:
            self.get_logger().info(f"reading the OpenMV camera on {port} at {self.params['baud']} baud")
        self._backoff.reset()
        self.link_error = ""

    def _fail(self, message: str) -> None:
        if self._serial is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                self._serial.close()
            self._serial = None
        delay = self._backoff.next_delay()
        self._retry_at = time.monotonic() + delay
        self.link_error = message
        self.get_logger().warning(f"{message}; retrying in {delay:.1f} s", throttle_duration_sec=10.0)

    def poll(self) -> None:
        if self.consent is not None and not self.consent.granted:
            return  # the port stays closed until consent is given
        if self._serial is None:
            if time.monotonic() >= self._retry_at:
                self._open()
            return
        try:
            data = self._serial.read(4096)
        except (serial.SerialException, OSError) as err:
            self._fail(f"lost {self.params['port']}: {err}")
            return
        if data:
            events = self.parser.feed(data)
            if events:
                self._last_valid = time.monotonic()
            self.backlog.extend(events)
            excess = len(self.backlog) - self.params["backlog_frames"]
            for _ in range(max(0, excess)):
                self.backlog.popleft()
            if excess > 0:
                self.backlog_dropped += excess
                self._dropped_at = time.monotonic()
        for _ in range(min(len(self.backlog), self.params["publish_per_poll"])):
            self.on_event(self.backlog.popleft())

    # -- frames to messages -----------------------------------------------------------------------
    def on_event(self, event) -> None:
        p = self.params
        if isinstance(event, CameraError):
            self.camera_error = event.message
            self.get_logger().error(f"the camera reports: {event.message}")
            return
        boxes, probs = [], []
        if isinstance(event, FacesFrame):
            self.camera_t_ms = event.t_ms
            self.camera_error = ""
            for face in event.faces:
                boxes.append(Box(*face.box))
                probs.append(face.probabilities)
        elif isinstance(event, BareLabel):
            # The original firmware sends neither box nor confidence: the whole frame, label certain.
            boxes.append(Box(0, 0, p["image_width"], p["image_height"]))
            probs.append([1.0 if label == event.label else 0.0 for label in LABELS])
        elif isinstance(event, Heartbeat):
            self.camera_t_ms, self.camera_fps = event.t_ms, event.fps
            self.camera_error = ""
        probabilities = np.asarray(probs, np.float32).reshape(-1, 6)
        if isinstance(event, FacesFrame):
            probabilities = apply_temperature(probabilities, self.temperature)
        result = self.estimator.update(boxes, [1.0] * len(boxes), probabilities)
        now = self.get_clock().now()
        if self.aggregator is not None:
            self._publish_summary(self.aggregator.add(now.nanoseconds * 1e-9, [f.track_id for f in result.faces],
                                                      [f.smoothed_label for f in result.faces]))
        else:
            header = Header(stamp=now.to_msg(), frame_id=p["frame_id"])
            array, primary = to_messages(result, header, list(LABELS), p["image_width"], p["image_height"],
                                         "openmv-int8")
            self.emotions_pub.publish(array)
            self.emotion_pub.publish(primary)
        self.published += 1

    def status(self) -> tuple[str, str, dict]:
        c = self.parser.counters
        values = {"link": self.link_state, "port": self.params["port"], "frames": c.frames,
                  "checksum_errors": c.checksum_errors, "malformed": c.malformed, "dropped_frames": c.dropped,
                  "duplicates": c.duplicates, "garbage_bytes": c.garbage_bytes, "bare_label_lines": c.bare_lines,
                  "reconnects": self.reconnects, "camera_fps": f"{self.camera_fps:.1f}",
                  "camera_time_ms": self.camera_t_ms, "published": self.published, "backlog": len(self.backlog),
                  "backlog_dropped": self.backlog_dropped}
        if self.aggregator is not None:
            values["output"] = "aggregate only (openmv/emotions/summary)"
        if (waiting := self.consent_status(values, "waiting for consent: the serial port is closed")) is not None:
            return waiting
        if self.link_error:
            return "error", self.link_error, values
        if self.camera_error:
            return "error", f"camera: {self.camera_error}", values
        if self.link_state == "silent":
            return "warn", "no valid frame from the camera", values
        if time.monotonic() - self._dropped_at < DROP_WARNING_S:
            return "warn", (f"{self.backlog_dropped} frames dropped since start: the host fell behind the camera "
                            "(raise backlog_frames or publish_per_poll)"), values
        return "ok", "receiving", values


def main(args: list[str] | None = None) -> None:
    run_node(OpenMVNode, args)
