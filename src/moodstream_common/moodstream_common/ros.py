"""Small rclpy helpers shared by MoodStream's nodes: QoS, parameters, diagnostics, DDS set-up."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Mapping
from typing import Any

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from rclpy.qos import (
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)

from .environment import prepare_environment

#: Images: best effort, keep the newest few (the sensor-data profile of ROS 2).
IMAGE_QOS = qos_profile_sensor_data
#: Faces and emotions: reliable, a short queue so that a slow consumer sees recent frames.
RESULT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)

DIAG_LEVELS = {"ok": DiagnosticStatus.OK, "warn": DiagnosticStatus.WARN, "error": DiagnosticStatus.ERROR}


def declare_parameters(node: Node, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Declare every parameter in ``defaults`` and return their current values by name."""
    for name, value in defaults.items():
        node.declare_parameter(name, value)
    return {name: node.get_parameter(name).value for name in defaults}


def stamp_to_seconds(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def diagnostic_status(node: Node, name: str, level: str, message: str, values: Mapping[str, str]) -> DiagnosticStatus:
    return DiagnosticStatus(
        level=DIAG_LEVELS[level],
        name=f"{node.get_fully_qualified_name()}: {name}",
        message=message,
        hardware_id=node.get_namespace(),
        values=[KeyValue(key=k, value=str(v)) for k, v in values.items()],
    )


class DiagnosticsPublisher:
    """Publishes one node's statuses on ``/diagnostics`` once a second."""

    def __init__(self, node: Node, period_s: float = 1.0) -> None:
        self._node = node
        self._pub = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._providers: list = []
        self._timer = node.create_timer(period_s, self.publish)

    def add(self, provider) -> None:
        """``provider()`` returns a DiagnosticStatus."""
        self._providers.append(provider)

    def publish(self) -> None:
        msg = DiagnosticArray()
        msg.header.stamp = self._node.get_clock().now().to_msg()
        msg.status = [provider() for provider in self._providers]
        self._pub.publish(msg)


def _ignore_stop_signals() -> None:
    """Once a node is stopping, a second SIGINT or SIGTERM must not cut its clean-up short.

    Ctrl-C in a terminal signals ``ros2 launch`` and every node at once, and launch then sends
    each node SIGINT again; rclpy handles the first, and when it shuts down it hands the signals
    back to Python, whose KeyboardInterrupt would end the process with status -2 mid clean-up.
    """
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


def run_node(factory, args: list[str] | None = None) -> None:
    """Entry point of a node executable: start, spin until shut down, clean up.

    A node that cannot start (missing model, bad parameter) logs one clear line and exits with
    status 1 instead of a traceback, so that a supervisor does not see a crash loop. A signal
    shuts the context down from another thread while a callback may still be running, so errors
    raised after shutdown began (a publish on a dead context, a handle already gone) are part of a
    normal stop and give status 0; an error while the node is still running gives status 1.
    SIGINT and SIGTERM, once or repeated, stop the node with status 0 after its clean-up.
    """
    import traceback

    import rclpy
    from rclpy.executors import ExternalShutdownException

    logger = rclpy.logging.get_logger("moodstream")
    prepare_environment()
    rclpy.init(args=args)
    try:
        node = factory()
    except KeyboardInterrupt:  # stopped while starting (loading the model, opening the camera)
        _ignore_stop_signals()
        rclpy.try_shutdown()
        return
    except Exception as err:
        _ignore_stop_signals()
        if not rclpy.ok():  # a signal shut the context down under the constructor
            return
        logger.fatal(f"{type(err).__name__}: {err}")
        rclpy.try_shutdown()
        raise SystemExit(1) from None
    failed = False
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as err:
        if rclpy.ok():
            failed = True
            logger.fatal(f"{node.get_name()} stopped on an error: {traceback.format_exc()}")
        else:
            logger.debug(f"ignored while shutting down: {type(err).__name__}: {err}")
    finally:
        _ignore_stop_signals()
        try:
            node.destroy_node()
        except (Exception, KeyboardInterrupt) as err:
            logger.debug(f"ignored while destroying the node: {type(err).__name__}: {err}")
        with contextlib.suppress(KeyboardInterrupt):
            rclpy.try_shutdown()
        _ignore_stop_signals()  # rclpy's shutdown puts Python's handlers back
    if failed:
        raise SystemExit(1)
