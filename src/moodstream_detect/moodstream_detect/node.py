"""Detect node: faces in ``image_raw`` to ``faces`` (box, score and the 48x48 crop)."""

from __future__ import annotations

import time

from diagnostic_msgs.msg import DiagnosticStatus
from rclpy.node import Node
from sensor_msgs.msg import Image, RegionOfInterest

from moodstream_common.image_conv import ImageFormatError, image_to_bgr, numpy_to_image
from moodstream_common.preprocess import crop_face, to_gray
from moodstream_common.ros import (
    HEALTH_DEFAULTS,
    INPUT_DEFAULTS,
    RESULT_QOS,
    DiagnosticsPublisher,
    declare_parameters,
    diagnostic_status,
    health_config,
    input_qos,
    run_node,
    stamp_to_seconds,
    too_old,
)
from moodstream_common.stats import StageStats
from moodstream_interfaces.msg import DetectedFace, DetectedFaces

from .detectors import Detection, RoiDetector, create_detector

DEFAULTS = {
    "detector": "haar",
    "scale_factor": 1.2,
    "min_neighbors": 4,
    "min_size": 48,  # smallest face side, in pixels of the full frame
    "downscale": 0.6,  # detect on a frame this much smaller, map boxes back
    "min_confidence": 0.9,  # detectors with a score (mtcnn): drop faces below it
    "roi_refresh_frames": 5,  # full-frame search every N frames, around known faces in between; 1 = always full
    "max_faces": 10,  # keep the largest faces
    "attach_crops": True,  # put the 48x48 crop into each face, for a classifier in another process
    **INPUT_DEFAULTS,
    **HEALTH_DEFAULTS,
    "expected_rate_hz": 30.0,  # capture's default fps
    "latency_budget_ms": 50.0,
}


def frame_of(msg: Image):
    """The message as a BGR (or gray) array."""
    return image_to_bgr(msg)


class DetectNode(Node):
    def __init__(self, name: str = "detect", **kwargs) -> None:
        super().__init__(name, **kwargs)
        self.params = p = declare_parameters(self, DEFAULTS)
        self.detector = RoiDetector(
            create_detector(p["detector"], scale_factor=p["scale_factor"], min_neighbors=p["min_neighbors"],
                            min_size=p["min_size"], downscale=p["downscale"], min_confidence=p["min_confidence"]),
            refresh_frames=p["roi_refresh_frames"],
        )
        self.stats = StageStats()
        self.publisher = self.create_publisher(DetectedFaces, "faces", RESULT_QOS)
        self.health = health_config(p)
        self.subscription = self.create_subscription(Image, "image_raw", self.on_image, input_qos(p))
        self.diagnostics = DiagnosticsPublisher(self)
        self.diagnostics.add(self._diagnostic)
        self.get_logger().info(f"detector {self.detector.name}, downscale {p['downscale']}")

    def detect(self, msg: Image) -> DetectedFaces:
        """Faces of one image message (also used directly by the in-process runner)."""
        frame = frame_of(msg)
        gray = to_gray(frame)
        detections: list[Detection] = self.detector.detect(gray if self.detector.gray_input else frame)
        detections.sort(key=lambda d: d.box.area, reverse=True)
        out = DetectedFaces(header=msg.header, image_width=msg.width, image_height=msg.height,
                            detector=self.detector.name)
        for det in detections[: self.params["max_faces"]]:
            face = DetectedFace(
                roi=RegionOfInterest(x_offset=det.box.x, y_offset=det.box.y, width=det.box.width,
                                     height=det.box.height),
                score=float(det.score),
            )
            if self.params["attach_crops"]:
                face.crop = numpy_to_image(crop_face(gray, det.box), "mono8", msg.header)
            out.faces.append(face)
        return out

    def on_image(self, msg: Image) -> None:
        t0 = time.perf_counter()
        stale = too_old(self, msg.header.stamp, self.params["max_frame_age_s"])
        if stale:
            self.stats.drop(stale)
            return
        try:
            faces = self.detect(msg)
        except (ImageFormatError, ValueError) as err:
            reason = f"dropped a frame: {err}"
            self.stats.drop(reason)
            self.get_logger().warning(reason, throttle_duration_sec=5.0)
            return
        self.publisher.publish(faces)
        self.stats.add_latency("detect", time.perf_counter() - t0)
        self.stats.add_latency("since_capture", self.get_clock().now().nanoseconds * 1e-9
                               - stamp_to_seconds(msg.header.stamp))
        self.stats.tick()

    def _diagnostic(self) -> DiagnosticStatus:
        values = self.stats.summary()
        values["detector"] = self.detector.name
        level, why = self.stats.health(self.health, "detect", "images")
        return diagnostic_status(self, "detect", level, why or "detecting", values)


def main(args: list[str] | None = None) -> None:
    run_node(DetectNode, args)
