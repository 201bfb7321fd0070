"""Console relay: logs one line per change of the primary face's emotion (topic ``emotion``)."""

from __future__ import annotations

from collections.abc import Callable

from rclpy.node import Node

from moodstream_common.ros import RESULT_QOS, run_node, stamp_to_seconds
from moodstream_interfaces.msg import Emotion

from .changes import ChangeReporter


class ConsoleNode(Node):
    def __init__(self, name: str = "console", sink: Callable[[str], None] | None = None, **kwargs) -> None:
        super().__init__(name, **kwargs)
        self.reporter = ChangeReporter()
        self._sink = sink or self.get_logger().info
        self.subscription = self.create_subscription(Emotion, "emotion", self.on_emotion, RESULT_QOS)

    def on_emotion(self, msg: Emotion) -> None:
        line = self.reporter.update(msg.face_present, msg.face.track_id, msg.face.smoothed_label,
                                    msg.face.smoothed_confidence, stamp_to_seconds(msg.header.stamp),
                                    msg.faces_in_view)
        if line:
            self._sink(line)


def main(args: list[str] | None = None) -> None:
    run_node(ConsoleNode, args)
