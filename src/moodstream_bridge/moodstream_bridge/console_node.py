"""Console relay: logs one line per change of the primary face's emotion (topic ``emotion``), and
one per aggregate window (``emotions/summary``, in aggregate mode)."""

from __future__ import annotations

from collections.abc import Callable

from diagnostic_msgs.msg import DiagnosticStatus
from rclpy.node import Node

from moodstream_common import local_bus
from moodstream_common.parameters import HEALTH_SPECS, defaults
from moodstream_common.ros import (
    RESULT_QOS,
    DiagnosticsPublisher,
    declare_parameters,
    diagnostic_status,
    health_config,
    run_node,
    stamp_to_seconds,
)
from moodstream_common.stats import StageStats
from moodstream_interfaces.msg import Emotion, EmotionSummary

from .changes import ChangeReporter, summary_line

SPECS = {**HEALTH_SPECS}
DEFAULTS = defaults(SPECS)


class ConsoleNode(Node):
    def __init__(self, name: str = "console", sink: Callable[[str], None] | None = None, **kwargs) -> None:
        super().__init__(name, **kwargs)
        self.params = declare_parameters(self, SPECS, on_change=self._on_parameters)
        self.health = health_config(self.params)
        self.reporter = ChangeReporter()
        self.stats = StageStats()
        self.lines = 0
        self._sink = sink or self.get_logger().info
        # In-process where the runner composes it with classify (local_bus), else through DDS.
        self.subscription = local_bus.subscribe(self, Emotion, "emotion", self.on_emotion, RESULT_QOS)
        self.summary_subscription = local_bus.subscribe(self, EmotionSummary, "emotions/summary", self.on_summary,
                                                        RESULT_QOS)
        self.diagnostics = DiagnosticsPublisher(self)
        self.diagnostics.add(self._diagnostic)

    def destroy_node(self) -> None:
        for subscription in (self.subscription, self.summary_subscription):
            local_bus.unsubscribe(self, subscription)
        super().destroy_node()

    def _on_parameters(self, names: set[str]) -> None:
        self.health = health_config(self.params)

    def on_emotion(self, msg: Emotion) -> None:
        self.stats.tick()
        line = self.reporter.update(msg.face_present, msg.face.track_id, msg.face.smoothed_label,
                                    msg.face.smoothed_confidence, stamp_to_seconds(msg.header.stamp),
                                    msg.faces_in_view)
        if line:
            self.lines += 1
            self._sink(line)

    def on_summary(self, msg: EmotionSummary) -> None:
        self.stats.tick()
        self.lines += 1
        self._sink(summary_line(stamp_to_seconds(msg.window_start), stamp_to_seconds(msg.header.stamp), msg.frames,
                                msg.people, msg.suppressed, list(msg.labels), list(msg.shares)))

    def _diagnostic(self) -> DiagnosticStatus:
        values = {**self.stats.summary(), "lines": self.lines}
        level, why = self.stats.health(self.health, None, "emotions")
        return diagnostic_status(self, "console", level, why or "reporting emotion changes", values)


def main(args: list[str] | None = None) -> None:
    run_node(ConsoleNode, args)
