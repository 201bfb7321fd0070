"""Detect node: faces in ``image_mono`` to ``faces`` (box, score and the 48x48 crop).

It reads ``image_mono`` (capture publishes it; a colour image works too, it is converted), so
that the frame it needs costs a third of a bgr8 one to move between processes; with a camera
driver, remap ``image_mono`` to the driver's image topic."""

from __future__ import annotations

import time

import cv2
from sensor_msgs.msg import Image, RegionOfInterest

from moodstream_common.consent import ConsentHost
from moodstream_common.image_conv import ImageFormatError, image_to_bgr, numpy_to_image
from moodstream_common.lifecycle import StageNode
from moodstream_common.parameters import HEALTH_SPECS, INPUT_SPECS, Spec, defaults
from moodstream_common.policy import POLICY_SPECS
from moodstream_common.preprocess import crop_face, to_gray
from moodstream_common.ros import (
    RESULT_QOS,
    ParameterError,
    health_config,
    input_qos,
    run_node,
    stamp_to_seconds,
    too_old,
)
from moodstream_interfaces.msg import DetectedFace, DetectedFaces

from .detectors import TRACKERS, DetectorError, RoiDetector, create_detector

SPECS = {
    "detector": Spec("haar", "face detector: haar (OpenCV's cascade) or mtcnn, or one you register"),
    "scale_factor": Spec(1.2, "Haar: how much the search window grows per step", 1.01, 2.0),
    "min_neighbors": Spec(4, "Haar: neighbouring hits a face needs", 0, 50),
    "min_size": Spec(48, "smallest face side, in pixels of the full frame", 8, 4096),
    "downscale": Spec(0.6, "detect on a frame this much smaller, boxes mapped back", 0.1, 1.0),
    "min_confidence": Spec(0.9, "detectors with a score (mtcnn): drop faces below it", 0.0, 1.0),
    "roi_refresh_frames": Spec(10, "full-frame search every N frames, known faces followed in between (1: always full)",
                               1, 1000),
    "tracker": Spec("template", "how known faces are followed between full searches: template (matching each "
                    "face's picture, a fraction of a millisecond) or detector (the detector in a window)",
                    choices=TRACKERS),
    "roi_background_refresh": Spec(True, "template tracker: run the periodic full search on a second thread while "
                                   "the known faces are followed, so that no frame waits for it"),
    "opencv_threads": Spec(1, "OpenCV's worker threads in this process (process-wide: every stage composed with "
                           "it; 0: OpenCV's default, one per core)", 0, 256),
    "max_faces": Spec(10, "keep the largest faces", 1, 100),
    "attach_crops": Spec(True, "put the 48x48 crop into each face, for a classifier in another process"),
    **INPUT_SPECS,
    **HEALTH_SPECS,
    "expected_rate_hz": Spec(30.0, HEALTH_SPECS["expected_rate_hz"].description, 0.0, 1000.0),
    "latency_budget_ms": Spec(50.0, HEALTH_SPECS["latency_budget_ms"].description, 0.0, 60000.0),
    **POLICY_SPECS,
}
DEFAULTS = defaults(SPECS)
#: Changing any of these rebuilds the detector.
DETECTOR_PARAMS = {"detector", "scale_factor", "min_neighbors", "min_size", "downscale", "min_confidence",
                   "roi_refresh_frames", "tracker", "roi_background_refresh"}


def apply_opencv_threads(threads: int) -> None:
    """OpenCV's pool size. One thread (the default) saved 0.6-0.7 ms of CPU per frame with one
    face here, the same with two, at the same latency: the pool wakes its other threads for every
    parallel call, mostly kernel time (docs/benchmarks.md). A search that runs in the frame's call
    (the first, or after a lost face) takes longer on one thread."""
    cv2.setNumThreads(threads if threads > 0 else -1)  # OpenCV: 0 means none, a negative value its default


def frame_of(msg: Image):
    """The message as a BGR (or gray) array."""
    return image_to_bgr(msg)


class DetectNode(StageNode):
    """``image_mono`` in, ``faces`` out. configure builds the detector; activate subscribes. With
    ``policy.require_consent`` it hosts the ``consent`` service (every camera pipeline runs it)."""

    stage = "detect"

    def __init__(self, name: str = "detect", **kwargs) -> None:
        super().__init__(name, SPECS, **kwargs)
        self.enforce_policy()
        self.health = health_config(self.params)
        self.detector: RoiDetector | None = None
        self.publisher = self.subscription = None
        self.consent = ConsentHost(self, self._on_consent, self.watcher) if self.params["policy.require_consent"] \
            else None

    def _on_consent(self, granted: bool) -> None:
        if not granted and self.detector is not None:
            self._close_detector()
            self.detector = self._build_detector()  # forget the faces it was following

    def setup(self) -> None:
        apply_opencv_threads(self.params["opencv_threads"])
        self.detector = self._build_detector()
        self.publisher = self.create_stage_publisher(DetectedFaces, "faces", RESULT_QOS)
        self.get_logger().info(f"detector {self.detector.name}, downscale {self.params['downscale']}")

    def start(self) -> None:
        self.subscription = self.create_stage_subscription(Image, "image_mono", self.on_image, input_qos(self.params))

    def stop(self) -> None:
        if self.subscription is not None:
            self.destroy_stage_subscription(self.subscription)
            self.subscription = None

    def teardown(self) -> None:
        if self.publisher is not None:
            self.publisher.destroy()
            self.publisher = None
        self._close_detector()

    def _build_detector(self) -> RoiDetector:
        p = self.params
        try:
            detector = create_detector(p["detector"], scale_factor=p["scale_factor"], min_neighbors=p["min_neighbors"],
                                       min_size=p["min_size"], downscale=p["downscale"],
                                       min_confidence=p["min_confidence"])
        except DetectorError as err:
            raise ParameterError(f"parameter {self.get_name()}.detector: {err}") from err
        return RoiDetector(detector, refresh_frames=p["roi_refresh_frames"], tracker=p["tracker"],
                           background_refresh=p["roi_background_refresh"])

    def _close_detector(self) -> None:
        if self.detector is not None:
            self.detector.close()
        self.detector = None

    def on_parameters(self, names: set[str]) -> None:
        """Live changes, from the next frame on."""
        if "opencv_threads" in names:
            apply_opencv_threads(self.params["opencv_threads"])
        if names & DETECTOR_PARAMS and self.detector is not None:
            self._close_detector()
            self.detector = self._build_detector()
        self.health = health_config(self.params)

    def detect(self, msg: Image) -> DetectedFaces:
        """Faces of one image message (also used directly by the in-process runner)."""
        frame = frame_of(msg)
        gray = to_gray(frame)
        detections = sorted(self.detector.detect(gray if self.detector.gray_input else frame),
                            key=lambda d: d.box.area, reverse=True)
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
        if self.consent is not None and not self.consent.granted:
            self.stats.drop("no consent")
            return
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

    def status(self) -> tuple[str, str, dict]:
        values = self.stats.summary()
        values["detector"] = self.detector.name if self.detector else self.params["detector"]
        if (waiting := self.consent_status(values)) is not None:
            return waiting
        level, why = self.stats.health(self.health, "detect", "images")
        return level, why or "detecting", values


def main(args: list[str] | None = None) -> None:
    run_node(DetectNode, args)
