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
from .stats import HealthConfig

#: Images: best effort, keep the newest few (the sensor-data profile of ROS 2).
IMAGE_QOS = qos_profile_sensor_data
#: Faces and emotions: reliable, a short queue so that a slow consumer sees recent frames.
RESULT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)

#: When a stage's diagnostics leave OK (see :class:`moodstream_common.stats.HealthConfig`).
HEALTH_DEFAULTS = {
    "expected_rate_hz": 0.0,  # the input's rate; 0: judge only a stall
    "stall_warn_s": 2.0,  # WARN when no input arrives for this long
    "stall_error_s": 10.0,  # ERROR when no input arrives for this long
    "latency_budget_ms": 0.0,  # WARN when the stage's latency p95 exceeds it; 0: no budget
}
#: How an image (or faces) input is subscribed: the newest only, by default, so that a slow
#: stage never works through a backlog of stale frames (image_tools' names: depth, reliability).
INPUT_DEFAULTS = {
    "input_qos_depth": 1,
    "input_qos_reliability": "best_effort",  # best_effort | reliable
    "max_frame_age_s": 0.5,  # frames older than this on arrival are dropped and counted; 0: never
}

DIAG_LEVELS = {"ok": DiagnosticStatus.OK, "warn": DiagnosticStatus.WARN, "error": DiagnosticStatus.ERROR}


def declare_parameters(node: Node, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Declare every parameter in ``defaults`` and return their current values by name."""
    for name, value in defaults.items():
        node.declare_parameter(name, value)
    return {name: node.get_parameter(name).value for name in defaults}


def stamp_to_seconds(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def health_config(params: Mapping[str, Any]) -> HealthConfig:
    return HealthConfig(float(params["expected_rate_hz"]), float(params["stall_warn_s"]),
                        float(params["stall_error_s"]), float(params["latency_budget_ms"]))


def input_qos(params: Mapping[str, Any]) -> QoSProfile:
    """The QoS of a stage's frame input from its ``input_qos_*`` parameters."""
    reliability = params["input_qos_reliability"]
    policies = {"best_effort": ReliabilityPolicy.BEST_EFFORT, "reliable": ReliabilityPolicy.RELIABLE}
    if reliability not in policies:
        raise ValueError(f"parameter input_qos_reliability must be best_effort or reliable, got {reliability!r}")
    if int(params["input_qos_depth"]) < 1:
        raise ValueError(f"parameter input_qos_depth must be at least 1, got {params['input_qos_depth']}")
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=int(params["input_qos_depth"]),
                      reliability=policies[reliability])


def frame_age_s(node: Node, stamp: Time) -> float | None:
    """How old a frame is by its header stamp, or None for an unset stamp."""
    if stamp.sec == 0 and stamp.nanosec == 0:
        return None
    return node.get_clock().now().nanoseconds * 1e-9 - stamp_to_seconds(stamp)


def too_old(node: Node, stamp: Time, max_age_s: float) -> str:
    """Why a frame is too old to process ("" when it is not, or the check is off)."""
    age = frame_age_s(node, stamp)
    if max_age_s <= 0 or age is None or age <= max_age_s:
        return ""
    return f"dropped a frame {age:.2f} s old (max_frame_age_s {max_age_s:g})"


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
