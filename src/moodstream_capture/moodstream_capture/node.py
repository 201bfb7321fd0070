"""Capture node: frames from a webcam, video file, image folder or the synthetic scene on
``image_raw`` (colour) and ``image_mono`` (mono8, what the detector reads), each published only
while someone subscribes to it, as image_transport does: a 640x480 bgr8 frame costs about a
millisecond to serialise whether or not anyone listens."""

from __future__ import annotations

import threading
import time
from typing import NamedTuple

import numpy as np
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from moodstream_common.backoff import Backoff
from moodstream_common.consent import ConsentListener
from moodstream_common.environment import LARGEST_FRAME_FOR_DEFAULT_PROFILE, large_frame_advice
from moodstream_common.image_conv import numpy_to_image
from moodstream_common.lifecycle import StageNode
from moodstream_common.local_bus import LocalBus
from moodstream_common.parameters import HEALTH_SPECS, Spec, defaults
from moodstream_common.policy import POLICY_SPECS
from moodstream_common.preprocess import to_gray
from moodstream_common.ros import IMAGE_QOS, health_config, run_node

from .calibration import Calibration, load_calibration
from .sources import SOURCE_KINDS, FrameSource, SourceError, make_source


class Grabbed(NamedTuple):
    """A frame as read, before it is published."""

    frame: np.ndarray
    stamp: Time  # when the source gave it
    started: float  # perf_counter when reading began
    gray: np.ndarray | None  # its gray version, when image_mono had subscribers at the last frame


SPECS = {
    "source": Spec("synthetic", "where frames come from", choices=SOURCE_KINDS, read_only=True),
    "device": Spec("0", "webcam index or device path", read_only=True),
    "path": Spec("", "video file or image folder", read_only=True),
    "width": Spec(640, "capture width (pixels)", 16, 8192, read_only=True),
    "height": Spec(480, "capture height (pixels)", 16, 8192, read_only=True),
    "fps": Spec(30.0, "frames per second (above what the graph keeps up with: as fast as it goes)", 0.1, 1000.0),
    "loop": Spec(True, "replay a video or image folder", read_only=True),
    "frame_id": Spec("camera_optical_frame", "header frame id (REP-103: z forward, x right, y down)"),
    "camera_info_file": Spec("", "camera_calibration_parsers YAML (path or file:// URL): publish camera_info",
                             read_only=True),
    "synthetic_faces": Spec(1, "faces in the synthetic scene", 1, 2, read_only=True),
    "seed": Spec(0, "the synthetic scene's seed", 0, 2**31 - 1, read_only=True),
    "max_frames": Spec(0, "stop after this many frames (0: never)", 0, 2**31 - 1),
    "reconnect_max_s": Spec(10.0, "longest wait between reconnect attempts (s)", 0.5, 3600.0),
    **HEALTH_SPECS,  # expected_rate_hz 0: the fps parameter
    **POLICY_SPECS,
}
DEFAULTS = defaults(SPECS)


class CaptureNode(StageNode):
    """Publishes ``image_raw`` (sensor_msgs/Image, sensor-data QoS) at ``fps``. configure checks
    the source's settings and the calibration; activate opens the camera; deactivate releases it."""

    stage = "capture"

    def __init__(self, name: str = "capture", **kwargs) -> None:
        super().__init__(name, SPECS, **kwargs)
        p = self.params
        self.enforce_policy()
        # With policy.require_consent the camera stays closed until consent/state says yes.
        self.consent = ConsentListener(self, self._on_consent) if p["policy.require_consent"] else None
        self.publisher = self.mono_publisher = self.info_publisher = self.ticker = None
        self.calibration: Calibration | None = None
        self._calibration_warning = ""
        self.health = health_config({**p, "expected_rate_hz": p["expected_rate_hz"] or p["fps"]})
        self.finished = False
        self._last_error = ""
        self._backoff = Backoff(maximum=float(p["reconnect_max_s"]))
        self._retry_at = 0.0
        self._source: FrameSource | None = None
        self._opened = False
        # Held while the source opens, reads or closes: reads run outside the stage lock (a camera
        # may block for a frame period, or seconds when it stalls), closing waits for them.
        self._source_lock = threading.Lock()
        self._capturing = False  # between start() and stop(): a read may (re)open the source
        self._frame_size_checked, self._next_size_check = False, 0.0
        # Whether image_mono had subscribers at the last frame: then the next frame is made gray as
        # it is read, beside the previous frame's processing when the clock reads ahead.
        self._gray_wanted = True

    def setup(self) -> None:
        p = self.params
        self._source = make_source(
            p["source"], device=str(p["device"]), path=p["path"], width=p["width"], height=p["height"],
            fps=p["fps"], loop=p["loop"], synthetic_faces=p["synthetic_faces"], seed=p["seed"],
        )
        if p["camera_info_file"]:
            self.calibration = load_calibration(p["camera_info_file"])
            self.info_publisher = self.create_publisher(CameraInfo, "camera_info", IMAGE_QOS)
        self.publisher = self.create_publisher(Image, "image_raw", IMAGE_QOS)
        self.mono_publisher = self.create_stage_publisher(Image, "image_mono", IMAGE_QOS)

    def start(self) -> None:
        self.finished, self._last_error, self._retry_at = False, "", 0.0
        self._backoff.reset()
        self._capturing = True
        # A frame every 1/fps s, on a thread of its own where the executor allows it; the source
        # is read outside the stage lock, so a slow or stalled camera holds up no other callback.
        self.ticker = self.start_ticking(self.params["fps"], self.publish_frame, acquire=self.grab)

    def stop(self) -> None:
        self._capturing = False  # a read that begins from now on opens nothing
        if self.ticker is not None:
            self.ticker.stop()
            self.ticker = None
        with self._source_lock:  # after a read under way
            if self._source is not None and self._opened:
                self._source.close()  # the camera is free for others while inactive
                self.get_logger().info(f"released {self._source.description}")
            self._opened = False

    def teardown(self) -> None:
        for pub in (self.publisher, self.info_publisher):
            if pub is not None:
                self.destroy_publisher(pub)
        if self.mono_publisher is not None:
            self.mono_publisher.destroy()
        self.publisher = self.mono_publisher = self.info_publisher = None
        with self._source_lock:
            self._source = None
        self.calibration = None

    def on_parameters(self, names: set[str]) -> None:
        """Live changes, from the next frame on."""
        p = self.params
        if "fps" in names and self.ticker is not None:
            self.ticker.set_rate(p["fps"])
        self._backoff.maximum = p["reconnect_max_s"]
        self.health = health_config({**p, "expected_rate_hz": p["expected_rate_hz"] or p["fps"]})

    def _on_consent(self, granted: bool) -> None:
        if granted:
            self.stats.restart_clock()
            self.get_logger().info("consent given: the camera opens")
        else:
            with self._source_lock:
                if self._source is not None and self._opened:
                    self._source.close()
                    self._opened = False
                    self.get_logger().info(f"consent revoked: {self._source.description} closed")

    @property
    def waiting_for_consent(self) -> bool:
        return self.consent is not None and not self.consent.granted

    def _fail(self, message: str) -> None:
        """The source failed: say so, and retry it after a growing delay."""
        self._last_error = message
        self.stats.errors += 1
        delay = self._backoff.next_delay()
        self._retry_at = time.monotonic() + delay
        self.get_logger().error(f"{message}; retrying in {delay:.1f} s (attempt {self._backoff.attempts})")

    def grab(self) -> Grabbed | None:
        """The source's next frame; None when there is none (finished, waiting for consent, waiting
        to reopen, failed). (Re)opens the source when due. Runs outside the stage lock, so it
        touches only the source, its error state and the frame."""
        with self._source_lock:
            if not self._capturing or self.finished or self._source is None or self.waiting_for_consent:
                return None
            if not self._opened:
                if time.monotonic() < self._retry_at:
                    return None
                try:
                    self._source.open()
                except SourceError as err:
                    self._fail(str(err))
                    return None
                self._opened = True
                if self._backoff.attempts:
                    self.get_logger().info(f"{self._source.description} is back")
                else:
                    self.get_logger().info(f"capturing from {self._source.description}")
                self._backoff.reset()
                self._last_error = ""
            try:
                t0 = time.perf_counter()
                frame = self._source.read()
                grabbed = self.get_clock().now()  # the frame's time: when the source gave it, before conversion
            except SourceError as err:
                self._source.close()
                self._opened = False
                self._fail(str(err))
                return None
            if frame is None:
                self.get_logger().info(f"end of {self._source.description}")
                self.finished = True
                return None
            # Still under the source lock, which stop() waits for: no thread of this node is in
            # OpenCV once the node has stopped (a daemon thread there at interpreter exit aborts it).
            return Grabbed(frame, grabbed, t0, to_gray(frame) if self._gray_wanted else None)

    def publish_frame(self, grabbed: Grabbed | None) -> None:
        """Publish a frame from :meth:`grab` (under the stage lock), unless the stage stopped or
        consent was revoked while it was read."""
        if grabbed is None or self.publisher is None or self.waiting_for_consent:
            return
        frame = grabbed.frame
        header = Header(stamp=grabbed.stamp.to_msg(), frame_id=self.params["frame_id"])
        if self.publisher.get_subscription_count():
            self.publisher.publish(numpy_to_image(frame, header=header))
            self._check_frame_size(frame.nbytes, self.publisher)
        self._gray_wanted = self.mono_publisher.get_subscription_count() > 0
        if self._gray_wanted:
            gray = grabbed.gray if grabbed.gray is not None else to_gray(frame)
            self.mono_publisher.publish(numpy_to_image(gray, "mono8", header))
            self._check_frame_size(gray.nbytes, self.mono_publisher.dds)
        if self.info_publisher is not None:
            self.info_publisher.publish(self._camera_info(header, frame.shape[1], frame.shape[0]))
        self.stats.add_latency("capture", time.perf_counter() - grabbed.started)
        self.stats.tick()
        if self.params["max_frames"] and self.stats.processed >= self.params["max_frames"]:
            self.finished = True

    def _check_frame_size(self, nbytes: int, publisher) -> None:
        """Once: say so when frames too large for the default Fast DDS profile's segment go to a
        subscriber in another process (checked at most once a second)."""
        now = time.monotonic()
        if self._frame_size_checked or nbytes <= LARGEST_FRAME_FOR_DEFAULT_PROFILE or now < self._next_size_check:
            return
        self._next_size_check = now + 1.0
        here = LocalBus.of(self.context).nodes
        elsewhere = [info for info in self.get_subscriptions_info_by_topic(publisher.topic_name)
                     if f"{info.node_namespace.rstrip('/')}/{info.node_name}" not in here]
        if elsewhere:
            self._frame_size_checked = True
            advice = large_frame_advice(nbytes)
            if advice:
                self.get_logger().warning(advice)

    def _camera_info(self, header: Header, width: int, height: int) -> CameraInfo:
        c = self.calibration
        if (c.width, c.height) != (width, height) and not self._calibration_warning:
            self._calibration_warning = (f"the calibration in {self.params['camera_info_file']} is for "
                                         f"{c.width}x{c.height} images, the camera gives {width}x{height}")
            self.get_logger().warning(self._calibration_warning)
        return CameraInfo(header=header, width=c.width, height=c.height, distortion_model=c.distortion_model,
                          d=list(c.d), k=list(c.k), r=list(c.r), p=list(c.p))

    def status(self) -> tuple[str, str, dict]:
        values = self.stats.summary()
        values["source"] = self._source.description if self._source else self.params["source"]
        if self.calibration is not None:
            values["calibration"] = self.calibration.camera_name or self.params["camera_info_file"]
        if self._last_error:
            return "error", self._last_error, values
        if self._calibration_warning:
            return "warn", self._calibration_warning, values
        if self.finished:
            return "ok", "source finished", values
        if self.waiting_for_consent:
            return "ok", "waiting for consent: the camera is closed", values
        level, why = self.stats.health(self.health, "capture", "frames from the source")
        return level, why or "capturing", values


def main(args: list[str] | None = None) -> None:
    run_node(CaptureNode, args)
