"""Classify node: ``faces`` to ``emotions`` (every face), ``emotion`` (primary face) and
``emotion/image``; with ``policy.aggregate_only`` (or ``policy.context: public``) to
``emotions/summary`` alone: counts and shares over a window, nothing that follows a person."""

from __future__ import annotations

import time
from collections import OrderedDict
from pathlib import Path

from sensor_msgs.msg import Image

from moodstream_common.aggregate import Aggregator
from moodstream_common.consent import ConsentListener
from moodstream_common.image_conv import ImageFormatError, image_to_bgr, image_to_numpy, numpy_to_image
from moodstream_common.lifecycle import StageNode
from moodstream_common.parameters import HEALTH_SPECS, INPUT_SPECS, Spec, defaults
from moodstream_common.policy import POLICY_SPECS
from moodstream_common.preprocess import Box
from moodstream_common.ros import (
    IMAGE_QOS,
    RESULT_QOS,
    health_config,
    input_qos,
    run_node,
    stamp_to_seconds,
    too_old,
)
from moodstream_interfaces.msg import DetectedFaces, Emotion, EmotionArray, EmotionSummary

from .annotate import annotate
from .convert import summary_to_msg, to_messages
from .estimator import ESTIMATOR_SPECS, FrameResult, estimator_from_params, reconfigure
from .model import RUNTIMES, EmotionModel, default_model_path

SPECS = {
    "model_path": Spec("", "the model file (empty: models/emotion.tflite of moodstream_models)", read_only=True),
    "runtime": Spec("auto", "auto (TFLite where it imports, else onnxruntime on the .onnx beside the model)",
                    choices=RUNTIMES, read_only=True),
    "labels_path": Spec("", "the labels file (empty: the .json beside the model)", read_only=True),
    "num_threads": Spec(1, "inference threads", 1, 64, read_only=True),
    **ESTIMATOR_SPECS,
    "annotate": Spec("auto", "emotion/image: auto (while someone subscribes), always, never",
                     choices=("auto", "always", "never")),
    "frame_buffer": Spec(15, "source frames kept to draw emotion/image", 1, 300),
    **INPUT_SPECS,
    "input_qos_reliability": Spec("reliable", INPUT_SPECS["input_qos_reliability"].description,
                                  choices=("best_effort", "reliable"), read_only=True),
    **HEALTH_SPECS,
    "expected_rate_hz": Spec(30.0, HEALTH_SPECS["expected_rate_hz"].description, 0.0, 1000.0),
    "latency_budget_ms": Spec(30.0, HEALTH_SPECS["latency_budget_ms"].description, 0.0, 60000.0),
    **POLICY_SPECS,
}
DEFAULTS = defaults(SPECS)
#: Faces that arrive within this long of a revocation were in flight, not a breach (s).
CONSENT_GRACE_S = 1.0


class ClassifyNode(StageNode):
    """``faces`` in, ``emotions`` / ``emotion`` (and ``emotion/image``) out, or ``emotions/summary``
    in aggregate mode. configure loads the model; activate subscribes. It watches who subscribes
    to the emotion topics (``policy.allowed_consumers``)."""

    stage = "classify"

    def __init__(self, name: str = "classify", **kwargs) -> None:
        super().__init__(name, SPECS, **kwargs)
        self.enforce_policy()  # the context rules (nothing leaves this node but topics)
        self.record_declared_policy()  # the node that produces emotions speaks for the policy
        self.watch_emotion_topics()
        self.consent = ConsentListener(self, self._on_consent) if self.params["policy.require_consent"] else None
        self._consent_changed_at = time.monotonic()
        self.aggregator: Aggregator | None = None
        self.summary_pub = None
        self.health = health_config(self.params)
        self.model: EmotionModel | None = None
        self.estimator = None
        self.model_id = ""
        self.emotions_pub = self.emotion_pub = self.image_pub = None
        self.subscription = self._image_sub = self._annotation_timer = None
        self._frames: OrderedDict[tuple[int, int], Image] = OrderedDict()
        # Results whose source frame has not arrived yet (composed with capture, faces come in-process
        # before the colour frame comes through DDS).
        self._pending: OrderedDict[tuple[int, int], tuple[DetectedFaces, FrameResult]] = OrderedDict()
        self._frame_id = ""

    def setup(self) -> None:
        p = self.params
        model_path = Path(p["model_path"]) if p["model_path"] else default_model_path()
        self.model = EmotionModel(model_path, p["labels_path"] or None, p["num_threads"], p["runtime"])
        self.estimator = estimator_from_params(p, self.model)
        self.model_id = f"{self.model.name}@{self.model.version}"
        if self.aggregate_only:  # no per-person topic exists at all
            self.aggregator = Aggregator(self.model.labels, p["policy.aggregate_window_s"],
                                         p["policy.aggregate_min_people"])
            self.summary_pub = self.create_stage_publisher(EmotionSummary, "emotions/summary", RESULT_QOS)
            self.get_logger().info(f"aggregate only: emotions/summary every {p['policy.aggregate_window_s']:g} s, "
                                   f"shares when {p['policy.aggregate_min_people']} or more people were in view")
        else:
            # Stage publishers: in-process to the runner's console and counters (local_bus).
            self.emotions_pub = self.create_stage_publisher(EmotionArray, "emotions", RESULT_QOS)
            self.emotion_pub = self.create_stage_publisher(Emotion, "emotion", RESULT_QOS)
            self.image_pub = self.create_publisher(Image, "emotion/image", IMAGE_QOS)
        self.get_logger().info(f"model {self.model.path} ({self.model_id}) on runtime {self.model.runtime}, "
                               f"labels {', '.join(self.model.labels)}")

    def start(self) -> None:
        self.subscription = self.create_stage_subscription(DetectedFaces, "faces", self.on_faces,
                                                           input_qos(self.params))
        if self.image_pub is not None:
            self._update_image_subscription()
            self._annotation_timer = self.create_timer(0.5, self._update_image_subscription)

    def stop(self) -> None:
        if self.subscription is not None:
            self.destroy_stage_subscription(self.subscription)
        if self._image_sub is not None:
            self.destroy_subscription(self._image_sub)
        if self._annotation_timer is not None:
            self.destroy_timer(self._annotation_timer)
        self.subscription = self._image_sub = self._annotation_timer = None
        self._frames.clear()
        self._pending.clear()
        self._publish_summary(self.aggregator.flush() if self.aggregator is not None else None)

    def teardown(self) -> None:
        for pub in (self.emotions_pub, self.emotion_pub, self.summary_pub):
            if pub is not None:
                pub.destroy()
        if self.image_pub is not None:
            self.destroy_publisher(self.image_pub)
        self.emotions_pub = self.emotion_pub = self.image_pub = self.summary_pub = None
        self.model = self.estimator = self.aggregator = None

    def _on_consent(self, granted: bool) -> None:
        self._consent_changed_at = time.monotonic()
        self.watcher.check_consent(processing=False, consent=granted)
        if not granted and self.estimator is not None:  # forget every track and its smoothed history
            self.estimator.forget()
            self._frames.clear()
            self._pending.clear()
            if self.aggregator is not None:
                self.aggregator.forget()

    def _publish_summary(self, summary) -> None:
        if summary is not None and self.summary_pub is not None:
            self.summary_pub.publish(summary_to_msg(summary, self._frame_id))

    def on_parameters(self, names: set[str]) -> None:
        """Live changes, from the next frame on (tracks and their ids are kept)."""
        if names & set(ESTIMATOR_SPECS) and self.estimator is not None:
            reconfigure(self.estimator, self.params)
        if "annotate" in names and self.subscription is not None and self.image_pub is not None:
            self._update_image_subscription()
        while len(self._frames) > self.params["frame_buffer"]:
            self._frames.popitem(last=False)
        self.health = health_config(self.params)

    # -- annotated image: subscribe to the source frames only while someone watches ----------------
    def _wants_annotation(self) -> bool:
        mode = self.params["annotate"]
        return mode == "always" or (mode == "auto" and self.image_pub.get_subscription_count() > 0)

    def _update_image_subscription(self) -> None:
        wanted = self._wants_annotation()
        if wanted and self._image_sub is None:
            self._image_sub = self.create_subscription(Image, "image_raw", self._on_frame, IMAGE_QOS)
        elif not wanted and self._image_sub is not None:
            self.destroy_subscription(self._image_sub)
            self._image_sub = None
            self._frames.clear()
            self._pending.clear()

    def _on_frame(self, msg: Image) -> None:
        stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        waiting = self._pending.pop(stamp, None)
        if waiting is not None:
            self._draw(msg, *waiting)
            return
        self._frames[stamp] = msg
        while len(self._frames) > self.params["frame_buffer"]:
            self._frames.popitem(last=False)

    def _publish_annotated(self, faces: DetectedFaces, result: FrameResult) -> None:
        stamp = (faces.header.stamp.sec, faces.header.stamp.nanosec)
        frame = self._frames.pop(stamp, None)
        if frame is None:
            self._pending[stamp] = (faces, result)
            while len(self._pending) > self.params["frame_buffer"]:
                self._pending.popitem(last=False)
            return
        self._draw(frame, faces, result)

    def _draw(self, frame: Image, faces: DetectedFaces, result: FrameResult) -> None:
        try:
            image = image_to_bgr(frame)
        except ImageFormatError:
            return
        self.image_pub.publish(numpy_to_image(annotate(image, result), "bgr8", faces.header))

    # -- classification ---------------------------------------------------------------------------
    def classify(self, msg: DetectedFaces) -> FrameResult:
        boxes, scores, crops = [], [], []
        for face in msg.faces:
            if face.crop.width == 0:
                raise ValueError("a face arrived without its crop: set attach_crops to true in the detect node")
            boxes.append(Box(face.roi.x_offset, face.roi.y_offset, face.roi.width, face.roi.height))
            scores.append(face.score)
            crops.append(image_to_numpy(face.crop, use_cv_bridge=False))  # our own mono8 crop
        return self.estimator.process(boxes, scores, crops)

    def on_faces(self, msg: DetectedFaces) -> None:
        if self.consent is not None and not self.consent.granted:
            # Faces well after consent was withheld (not the last ones in flight at a revocation):
            # a stage upstream does not follow the policy.
            if time.monotonic() - self._consent_changed_at > CONSENT_GRACE_S:
                for flag in self.watcher.check_consent(processing=True, consent=False):
                    self.get_logger().error(flag.message, throttle_duration_sec=30.0)
            self.stats.drop("no consent")
            return
        t0 = time.perf_counter()
        stale = too_old(self, msg.header.stamp, self.params["max_frame_age_s"])
        if stale:
            self.stats.drop(stale)
            return
        try:
            result = self.classify(msg)
        except (ImageFormatError, ValueError) as err:
            reason = f"dropped a frame: {err}"
            self.stats.drop(reason)
            self.get_logger().warning(reason, throttle_duration_sec=5.0)
            return
        if self.aggregator is not None:
            self._frame_id = msg.header.frame_id
            self._publish_summary(self.aggregator.add(stamp_to_seconds(msg.header.stamp),
                                                      [f.track_id for f in result.faces],
                                                      [f.smoothed_label for f in result.faces]))
        else:  # per-person messages exist only outside aggregate mode
            array, primary = to_messages(result, msg.header, self.model.labels, msg.image_width, msg.image_height,
                                         self.model_id)
            self.emotions_pub.publish(array)
            self.emotion_pub.publish(primary)
        now = self.get_clock().now().nanoseconds * 1e-9
        self.stats.add_latency("classify", time.perf_counter() - t0)
        self.stats.add_latency("frame_to_emotion", now - stamp_to_seconds(msg.header.stamp))
        self.stats.tick()
        if self._image_sub is not None:
            self._publish_annotated(msg, result)

    def status(self) -> tuple[str, str, dict]:
        values = self.stats.summary()
        values["model"] = self.model_id
        values["runtime"] = self.model.runtime
        values["model_path"] = str(self.model.path)
        if self.aggregator is not None:
            values["output"] = "aggregate only (emotions/summary)"
        if (waiting := self.consent_status(values)) is not None:
            return waiting
        level, why = self.stats.health(self.health, "classify", "faces")
        return level, why or "classifying", values


def main(args: list[str] | None = None) -> None:
    run_node(ClassifyNode, args)
