"""The embedded runner: MoodStream's node classes in one process, one executor.

Nodes in one process and one executor hand messages to each other inside that process (no
network hop); with ``image_topic`` the graph instead reads a camera driver's topic from
other processes. rclpy from PyPI is enough: no ROS install, no ``ros2 launch``.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import rclpy
from rclpy.context import Context
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

from moodstream_bridge.bridge_node import BridgeNode
from moodstream_bridge.console_node import ConsoleNode
from moodstream_capture.node import CaptureNode
from moodstream_classify.node import ClassifyNode
from moodstream_common import local_bus
from moodstream_common.environment import prepare_environment
from moodstream_common.image_conv import image_to_numpy
from moodstream_common.lifecycle import StageNode
from moodstream_common.local_bus import RESULT_TOPICS, LocalBus, share_stage_topics
from moodstream_common.ros import IMAGE_QOS, RESULT_QOS, StageExecutor, align_timers, finish_rclpy, record_qos
from moodstream_detect.node import DetectNode
from moodstream_interfaces.msg import Emotion, EmotionArray, EmotionSummary
from moodstream_openmv.node import OpenMVNode

from .params import Overrides


@dataclass
class RunSummary:
    frames: int = 0
    frames_with_faces: int = 0
    faces: int = 0
    track_ids: set[int] = field(default_factory=set)
    primary_labels: Counter = field(default_factory=Counter)
    summaries: int = 0  # aggregate windows (policy.aggregate_only)
    seconds: float = 0.0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class Observer(Node):
    """Watches the pipeline's outputs for the runner: counts, and the annotated frames."""

    def __init__(self, want_images: bool, on_image: Callable[[np.ndarray], None] | None, **kwargs) -> None:
        super().__init__("runner", **kwargs)
        self.summary = RunSummary()
        self.best_image: np.ndarray | None = None
        self._faces_by_stamp: dict[tuple[int, int], int] = {}
        self._best_faces = 0
        self._on_image = on_image
        # Every frame counts in the summary: in-process from the stage that publishes the results
        # (Pipeline shares their topics), else through DDS with the same deep queue as the bridge's.
        self._result_subscriptions = [
            local_bus.subscribe(self, EmotionArray, "emotions", self._on_emotions, record_qos(100)),
            local_bus.subscribe(self, Emotion, "emotion", self._on_emotion, RESULT_QOS),
            local_bus.subscribe(self, EmotionSummary, "emotions/summary", self._on_summary, record_qos(100)),
        ]
        if want_images:
            self.create_subscription(Image, "emotion/image", self._on_annotated, IMAGE_QOS)

    def destroy_node(self) -> None:
        for subscription in self._result_subscriptions:
            local_bus.unsubscribe(self, subscription)
        super().destroy_node()

    def _on_emotions(self, msg: EmotionArray) -> None:
        s = self.summary
        s.frames += 1
        s.faces += len(msg.faces)
        s.frames_with_faces += bool(msg.faces)
        s.track_ids.update(f.track_id for f in msg.faces)
        self._faces_by_stamp[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = len(msg.faces)
        if len(self._faces_by_stamp) > 100:
            self._faces_by_stamp.pop(next(iter(self._faces_by_stamp)))

    def _on_emotion(self, msg: Emotion) -> None:
        if msg.face_present:
            self.summary.primary_labels[msg.face.smoothed_label] += 1

    def _on_summary(self, msg: EmotionSummary) -> None:
        self.summary.summaries += 1

    def _on_annotated(self, msg: Image) -> None:
        image = image_to_numpy(msg)
        faces = self._faces_by_stamp.get((msg.header.stamp.sec, msg.header.stamp.nanosec), 0)
        if faces >= max(1, self._best_faces):  # keep the latest frame with the most faces
            self._best_faces, self.best_image = faces, image.copy()
        if self._on_image is not None:
            self._on_image(image)


class Pipeline:
    """capture -> detect -> classify -> console (+ observer), built from per-node parameters; or the
    OpenMV host node in place of the three stages."""

    def __init__(
        self,
        overrides: Overrides,
        *,
        image_topic: str | None = None,
        openmv: bool = False,
        bridge: bool = False,
        namespace: str = "",
        console_sink: Callable[[str], None] | None = None,
        want_images: bool = False,
        on_image: Callable[[np.ndarray], None] | None = None,
        consent: bool = False,
    ) -> None:
        prepare_environment()
        self.context = Context()
        rclpy.init(context=self.context)
        self.nodes: list[Node] = []
        self.executor: StageExecutor | None = None
        try:
            common = {"context": self.context, "namespace": namespace}
            # A camera driver's topic stands in for both of capture's (detect converts colour to gray).
            remap = {"cli_args": ["--ros-args", "-r", f"image_raw:={image_topic}", "-r",
                                  f"image_mono:={image_topic}"]} if image_topic else {}

            def params(node: str) -> list[Parameter]:
                return [Parameter(k, value=v) for k, v in overrides.get(node, {}).items()]

            self.capture = self.detect = self.classify = self.openmv = None
            if openmv:  # the camera detects and classifies; its host node publishes emotions/emotion
                self.openmv = self._add(OpenMVNode(parameter_overrides=params("openmv"), cli_args=[
                    "--ros-args", "-r", "openmv/emotions:=emotions", "-r", "openmv/emotion:=emotion",
                    "-r", "openmv/emotions/summary:=emotions/summary"], **common))
            else:
                if image_topic is None:
                    self.capture = self._add(CaptureNode(parameter_overrides=params("capture"), **common))
                self.detect = self._add(DetectNode(parameter_overrides=params("detect"), **common, **remap))
                self.classify = self._add(ClassifyNode(parameter_overrides=params("classify"), **common, **remap))
            # The results go to the console and the observer in-process, never waking the executor
            # (each wake-up rebuilds its wait set from every node's entities, 1.5 ms of a frame);
            # the bridge, like any outside subscriber, still gets them through DDS.
            producer, prefix = (self.openmv, "openmv/") if openmv else (self.classify, "")
            LocalBus.of(self.context).share(producer.resolve_topic_name(prefix + topic) for topic in RESULT_TOPICS)
            self.console = self._add(ConsoleNode(sink=console_sink, parameter_overrides=params("console"), **common))
            self.bridge = self._add(BridgeNode(parameter_overrides=params("bridge"), **common)) if bridge else None
            self.observer = self._add(Observer(want_images, on_image, **common))
            share_stage_topics(self.nodes)  # frames and faces go from stage to stage in-process
            # Before the stages come up: the capture stage runs its frame clock beside this executor.
            self.executor = StageExecutor(context=self.context)
            with self.executor.lock:
                for node in self.nodes:  # the lifecycle stages: configure and activate, as the launch file's do
                    if isinstance(node, StageNode) and node.params["autostart"]:
                        node.bring_up()
                if consent:
                    self.give_consent("the runner's --consent")
                align_timers(self.nodes)
            for node in self.nodes:
                self.executor.add_node(node)
        except BaseException:
            self.close()
            raise

    @property
    def consent_host(self):
        """The node hosting the consent service (policy.require_consent), or None."""
        for node in (self.detect, self.openmv):
            if node is not None and node.consent is not None:
                return node.consent
        return None

    def give_consent(self, by: str) -> None:
        if self.consent_host is not None:
            self.consent_host.set(True, by)

    def _add(self, node: Node) -> Node:
        self.nodes.append(node)
        return node

    def run(self, duration: float | None = None, should_stop: Callable[[], bool] = lambda: False) -> RunSummary:
        """Spin until ``duration`` seconds pass, the source ends, or ``should_stop()``."""
        start = time.monotonic()
        finished_at = None
        while self.context.ok() and not should_stop():
            now = time.monotonic()
            if duration is not None and now - start >= duration:
                break
            if self.capture is not None and self.capture.finished:
                finished_at = finished_at or now
                if now - finished_at > 0.5:  # let the last frames through the graph
                    break
            self.executor.spin_once(timeout_sec=0.05)
        self.observer.summary.seconds = time.monotonic() - start
        return self.observer.summary

    def close(self) -> None:
        with self.executor.lock if self.executor is not None else contextlib.nullcontext():
            for node in self.nodes:
                node.destroy_node()
        for node in self.nodes:  # out of the lock, which a frame clock may be waiting for
            if isinstance(node, StageNode):
                node.join_frame_clocks(timeout=2.0)
        self.nodes.clear()
        if self.executor is not None:
            self.executor.shutdown()
        finish_rclpy(self.context)
