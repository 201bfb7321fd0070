"""emotion_reactor: a behaviour controller on ``emotion``, the template for your own.

    ros2 launch moodstream_examples reactor.launch.py
    ros2 run moodstream_examples emotion_reactor --ros-args -r emotion:=/front/emotion

Subscribes to ``emotion`` (``moodstream_interfaces/Emotion``, reliable, depth 10) and publishes
``utterance`` (``std_msgs/String``, for a speech node; an event, volatile) and ``led_color``
(``std_msgs/ColorRGBA``; a state, latched) when the smoothed emotion of the person in front of
the robot changes. It depends only on
``moodstream_interfaces``, ``rclpy`` and ``std_msgs``: copy it and change ``reactions.py``.
"""

from __future__ import annotations

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import ColorRGBA, String

from moodstream_interfaces.msg import Emotion

from .reactions import EmotionReactor, ReactorConfig

#: As MoodStream publishes ``emotion``: reliable, a short queue.
EMOTION_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)
#: The LED colour is a state: latched, so that an LED driver started later still gets the current one.
LED_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)


class EmotionReactorNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("emotion_reactor", **kwargs)
        defaults = ReactorConfig()
        config = ReactorConfig(
            max_age_s=self.declare_parameter(
                "max_age_s", defaults.max_age_s,
                ParameterDescriptor(description="ignore emotions whose frame is older than this (s)")).value,
            min_confidence=self.declare_parameter(
                "min_confidence", defaults.min_confidence,
                ParameterDescriptor(description="ignore smoothed emotions less certain than this")).value,
            min_interval_s=self.declare_parameter(
                "min_interval_s", defaults.min_interval_s,
                ParameterDescriptor(description="at most one reaction this often (s)")).value,
        )
        self.reactor = EmotionReactor(config)
        self.utterance_pub = self.create_publisher(String, "utterance", 10)
        self.led_pub = self.create_publisher(ColorRGBA, "led_color", LED_QOS)
        self.subscription = self.create_subscription(Emotion, "emotion", self.on_emotion, EMOTION_QOS)

    def on_emotion(self, msg: Emotion) -> None:
        stamp_s = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        now_s = self.get_clock().now().nanoseconds * 1e-9
        reaction = self.reactor.update(stamp_s, now_s, msg.face_present, msg.face.smoothed_label,
                                       msg.face.smoothed_confidence)
        if reaction is None:
            return
        r, g, b, a = reaction.color
        self.led_pub.publish(ColorRGBA(r=r, g=g, b=b, a=a))
        if reaction.utterance:
            self.utterance_pub.publish(String(data=reaction.utterance))
        self.get_logger().info(f"{self.reactor.current or 'nobody'}: {reaction.utterance!r}")


def main(args: list[str] | None = None) -> None:
    rclpy.init(args=args)
    node = EmotionReactorNode()
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        # Ctrl-C shuts the context down from another thread; a callback publishing at that moment
        # raises. That is a normal stop; anything while still running is a real error.
        if rclpy.ok():
            raise
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
