"""Small rclpy helpers shared by MoodStream's nodes: QoS, parameters, diagnostics, DDS set-up."""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Callable, Mapping
from typing import Any

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import (
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)

from .environment import prepare_environment
from .local_bus import LocalBus
from .parameters import Spec
from .stats import HealthConfig

#: Images: best effort, keep the newest few (the sensor-data profile of ROS 2).
IMAGE_QOS = qos_profile_sensor_data
#: Faces and emotions: reliable, a short queue so that a slow consumer sees recent frames.
RESULT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)


def record_qos(depth: int) -> QoSProfile:
    """Results for a consumer that must see every frame (the bridge, the runner's count): reliable,
    with a queue deep enough to absorb a burst while the consumer catches up."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.RELIABLE)

DIAG_LEVELS = {"ok": DiagnosticStatus.OK, "warn": DiagnosticStatus.WARN, "error": DiagnosticStatus.ERROR}


class ParameterError(ValueError):
    """A parameter value a node refuses: the message names the parameter and what it accepts."""


def descriptor(spec: Spec) -> ParameterDescriptor:
    """A ROS ParameterDescriptor with the description, range and read-only flag of ``spec``."""
    d = ParameterDescriptor(description=spec.description, read_only=spec.read_only,
                            additional_constraints=spec.allowed())
    if spec.low is not None and isinstance(spec.default, float):
        d.floating_point_range = [FloatingPointRange(
            from_value=float(spec.low), to_value=float(spec.high if spec.high is not None else sys.float_info.max),
            step=0.0)]
    elif spec.low is not None and isinstance(spec.default, int) and not isinstance(spec.default, bool):
        d.integer_range = [IntegerRange(from_value=int(spec.low),
                                        to_value=int(spec.high if spec.high is not None else 2**62), step=1)]
    return d


def declare_parameters(node: Node, specs: Mapping[str, Any],
                       on_change: Callable[[set[str]], None] | None = None) -> dict[str, Any]:
    """Declare every parameter (a :class:`Spec`, or a plain default) and return the values by name.

    Values given at start (a parameters file, ``-p``) are checked against the specs: a bad one
    raises :class:`ParameterError`. With ``on_change``, later ``ros2 param set`` calls are
    checked the same way, refused with the reason, and applied: the returned dict is updated and
    ``on_change(names)`` called; an error it raises refuses the change and restores the values.
    """
    overrides = getattr(node, "_parameter_overrides", {})
    for name, spec in specs.items():
        if not isinstance(spec, Spec):
            node.declare_parameter(name, spec)
            continue
        given = overrides.get(name)
        if given is not None:
            reason = spec.check(given.value)
            if reason:
                raise ParameterError(f"parameter {node.get_name()}.{name} {reason}")
        node.declare_parameter(name, spec.default, descriptor(spec))
    values = {name: node.get_parameter(name).value for name in specs}
    if on_change is not None:
        node.add_on_set_parameters_callback(lambda params: _apply(node, specs, values, params, on_change))
    return values


def _apply(node: Node, specs: Mapping[str, Any], values: dict[str, Any], params: list,
           on_change: Callable[[set[str]], None]) -> SetParametersResult:
    changes = {}
    for param in params:
        spec = specs.get(param.name)
        if spec is None:
            continue  # not one of ours (use_sim_time, ...)
        # ROS itself refuses read-only parameters (descriptor) before this callback runs.
        reason = spec.check(param.value) if isinstance(spec, Spec) else ""
        if reason:
            return SetParametersResult(successful=False, reason=f"{param.name} {reason}")
        changes[param.name] = param.value
    if not changes:
        return SetParametersResult(successful=True)
    before = dict(values)
    values.update(changes)
    try:
        on_change(set(changes))
    except ValueError as err:
        values.clear()
        values.update(before)
        return SetParametersResult(successful=False, reason=str(err))
    node.get_logger().info("parameters changed: " + ", ".join(f"{k}={v!r}" for k, v in changes.items()))
    return SetParametersResult(successful=True)


def stamp_to_seconds(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def health_config(params: Mapping[str, Any]) -> HealthConfig:
    return HealthConfig(float(params["expected_rate_hz"]), float(params["stall_warn_s"]),
                        float(params["stall_error_s"]), float(params["latency_budget_ms"]))


def input_qos(params: Mapping[str, Any]) -> QoSProfile:
    """The QoS of a stage's frame input from its ``input_qos_*`` parameters (checked by their specs)."""
    policies = {"best_effort": ReliabilityPolicy.BEST_EFFORT, "reliable": ReliabilityPolicy.RELIABLE}
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=params["input_qos_depth"],
                      reliability=policies[params["input_qos_reliability"]])


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


class _LockedCallback:
    """An executor's ready callback that runs holding ``lock`` (everything else is the callback's)."""

    def __init__(self, handler, lock) -> None:
        self._handler, self._lock = handler, lock

    def __call__(self):
        with self._lock:
            return self._handler()

    def __getattr__(self, name: str):
        return getattr(self._handler, name)


class StageExecutor(SingleThreadedExecutor):
    """rclpy's single-threaded executor, running each callback under the stage lock of its
    context (:attr:`LocalBus.lock`). Its stages may then run frames on a thread of their own
    between callbacks (:mod:`.frame_clock`) instead of waking the executor for each frame: a
    wake-up rebuilds the wait set from every service, timer and event handler of every node, about
    1.7 ms of CPU for the three composed stages. Create it before bringing the stages up."""

    def __init__(self, *, context=None) -> None:
        from rclpy.utilities import get_default_context

        super().__init__(context=context)
        bus = LocalBus.of(context or get_default_context())
        bus.serialised = True
        self.lock = bus.lock

    def wait_for_ready_callbacks(self, *args, **kwargs):
        handler, entity, node = super().wait_for_ready_callbacks(*args, **kwargs)
        return _LockedCallback(handler, self.lock), entity, node


def align_timers(nodes) -> None:
    """Restart every timer of ``nodes`` at the same instant. The stages' periodic work
    (diagnostics each second, the policy watcher, the annotation check) then falls due together,
    and the executor rebuilds its wait set once for all of it instead of once per timer: with
    periods of 0.5, 1 and 2 s, two wake-ups a second instead of five or six."""
    for node in nodes:
        for timer in list(node.timers):
            timer.reset()


class _StartupInterrupt:
    """The process's SIGINT and SIGTERM handler, installed before ``rclpy.init()`` so that rclpy's
    own handler (which shuts the context down) chains to it.

    While the stages start (a model loading, a camera opening), the first signal raises
    KeyboardInterrupt to cut that short; later ones do nothing, so that a second Ctrl-C cannot
    land in the middle of handling the first. Once the stages spin, it does nothing: rclpy has
    shut the context down and the executor ends with ExternalShutdownException where it waits. A
    KeyboardInterrupt raised there instead could land in the middle of any bytecode, such as
    half-way through rclpy building a Task, whose ``__del__`` then prints a traceback.
    """

    def __init__(self) -> None:
        self.starting = True
        self.raised = False
        # a signal while the executable imported its modules (moodstream_common.executables)
        self.requested_earlier = getattr(signal.getsignal(signal.SIGINT), "requested", False) or getattr(
            signal.getsignal(signal.SIGTERM), "requested", False)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self)

    def __call__(self, signum, frame) -> None:
        if self.starting and not self.raised:
            self.raised = True
            raise KeyboardInterrupt


def _ignore_stop_signals() -> None:
    """Once a node is stopping, a second SIGINT or SIGTERM must not cut its clean-up short.

    Ctrl-C in a terminal signals ``ros2 launch`` and every node at once, and launch then sends
    each node SIGINT again; rclpy handles the first, and when it shuts down it hands the signals
    back to Python, whose KeyboardInterrupt would end the process with status -2 mid clean-up.
    """
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


def finish_rclpy(context=None) -> None:
    """Shut an rclpy context (the default one unless given) down completely and release it, once
    its nodes are destroyed and its executor shut down.

    After a signal, rclpy's signal thread has already shut rcl's context down, and
    ``rclpy.try_shutdown()`` then skips the rest: rclpy's logging is never finalised (the log
    file's last lines) and the context, with its DDS participant, is left to the garbage collector
    at interpreter exit. CI saw a node hang there, collecting (ros2/rclpy#456 reports such hangs
    with Fast DDS). Here the clean-up happens now, and the context is released; its participant
    goes with the last Python object that holds it, at the next garbage collection
    (:mod:`.executables` runs one before the process ends).
    """
    from rclpy.signals import uninstall_signal_handlers
    from rclpy.utilities import get_default_context

    default = get_default_context()
    context = context or default
    with contextlib.suppress(Exception):  # already shut down through rclpy: its clean-up is done
        context.shutdown()
    if context is default:  # as rclpy.shutdown() does
        with contextlib.suppress(Exception):
            uninstall_signal_handlers()
    context.destroy()


def run_node(factory, args: list[str] | None = None) -> None:
    """Entry point of a node executable: start, spin until shut down, clean up (see :func:`run_nodes`)."""
    run_nodes([factory], args)


def run_nodes(factories, args: list[str] | None = None, compose: Callable[[list], None] | None = None) -> None:
    """Entry point of an executable of one or more nodes: start, spin until shut down, clean up.

    ``compose``, given the nodes once they exist and before they are brought up, may connect
    them in-process (:mod:`.local_bus`).

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
    stop_signals = _StartupInterrupt()
    nodes: list = []
    executor: StageExecutor | None = None
    startup_error: Exception | None = None
    interrupted = initialized = False
    # The one KeyboardInterrupt a signal may raise while starting lands inside the outer try,
    # wherever it lands: in rclpy.init, a constructor, or the handling of a constructor's error
    # (a signal shuts the context down under a constructor, which then fails on it).
    try:
        try:
            if stop_signals.requested_earlier:
                raise KeyboardInterrupt
            rclpy.init(args=args)
            initialized = True
            executor = StageExecutor()  # before the stages come up: a capture stage asks for its frame clock
            nodes.extend(factory() for factory in factories)
            if compose is not None:
                compose(nodes)
            with executor.lock:  # no frame before every stage is up
                for node in nodes:
                    if getattr(node, "params", {}).get("autostart") and hasattr(node, "bring_up"):
                        node.bring_up()  # a lifecycle stage: configure and activate, unless a manager will
                align_timers(nodes)
        except Exception as err:
            startup_error = err
        stop_signals.starting = False
    except KeyboardInterrupt:  # stopped while starting (loading the model, opening the camera)
        interrupted = True
    if interrupted or startup_error is not None:
        _ignore_stop_signals()
        # a signal may have shut the context down under a constructor, which then failed on it
        stopped = interrupted or (initialized and not rclpy.ok())
        err = startup_error
        if not stopped:
            logger.fatal(str(err) if isinstance(err, ParameterError) else f"{type(err).__name__}: {err}")
        for node in reversed(nodes):  # a camera already opened is released
            with contextlib.suppress(Exception):
                node.destroy_node()
        if executor is not None:
            with contextlib.suppress(Exception):
                executor.shutdown(timeout_sec=0)
        finish_rclpy()
        _ignore_stop_signals()
        if stopped:
            return
        raise SystemExit(2 if isinstance(err, ParameterError) else 1) from None
    failed = False
    for node in nodes:
        executor.add_node(node)
    try:
        if not rclpy.ok():  # a signal came between the last stage starting and the line above
            raise ExternalShutdownException
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as err:
        if rclpy.ok():
            failed = True
            logger.fatal(f"{', '.join(n.get_name() for n in nodes)} stopped on an error: {traceback.format_exc()}")
        else:
            logger.debug(f"ignored while shutting down: {type(err).__name__}: {err}")
    finally:
        _ignore_stop_signals()
        with executor.lock:  # not in the middle of a frame
            for node in reversed(nodes):  # the consumers first, so that no stage publishes into a dead one
                try:
                    node.destroy_node()
                except (Exception, KeyboardInterrupt) as err:
                    logger.debug(f"ignored while destroying the node: {type(err).__name__}: {err}")
        for node in nodes:  # out of the lock, which a frame clock may be waiting for
            if hasattr(node, "join_frame_clocks"):
                node.join_frame_clocks(timeout=2.0)
        with contextlib.suppress(Exception, KeyboardInterrupt):
            executor.shutdown(timeout_sec=1.0)
        with contextlib.suppress(KeyboardInterrupt):
            finish_rclpy()
        _ignore_stop_signals()  # rclpy's shutdown puts Python's handlers back
    if failed:
        raise SystemExit(1)
