"""The managed-node life of MoodStream's stages (rclpy lifecycle nodes).

    unconfigured --configure--> inactive --activate--> active
                 <--cleanup---          <-deactivate-

- configure (:meth:`StageNode.setup`): check and load what the stage needs (the model, the
  source's settings, the detector), create its publishers;
- activate (:meth:`StageNode.start`): open the device, subscribe, start timers: frames flow;
- deactivate (:meth:`StageNode.stop`): unsubscribe, stop timers, release the camera: nothing is
  published (pause the camera for privacy or to save CPU without killing the process);
- cleanup / shutdown (:meth:`StageNode.teardown`): release everything configure made.

With ``autostart`` (the default) the executable, the launch file's nodes and the runner
configure and activate the stage themselves; with ``autostart:=false`` it waits for
``ros2 lifecycle set`` or a lifecycle manager. ``/diagnostics`` reports the state throughout.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from diagnostic_msgs.msg import DiagnosticStatus
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from . import local_bus
from .audit import AuditLog
from .frame_clock import FrameClock
from .local_bus import LocalBus, StagePublisher
from .parameters import Spec
from .policy import POLICY_SPECS, PolicyError, aggregate_only, check
from .ros import DiagnosticsPublisher, ParameterError, declare_parameters, diagnostic_status
from .stats import StageStats
from .watch import SEVERITY, PolicyWatcher

#: The topics that carry emotions, and those of them that follow a person (tracks, boxes).
EMOTION_TOPICS = ("emotions", "emotion", "emotion/image", "emotions/summary")
PER_PERSON_TOPICS = ("emotions", "emotion", "emotion/image")

LIFECYCLE_SPECS = {
    "autostart": Spec(True, "configure and activate at start (false: wait for ros2 lifecycle set or a manager)",
                      read_only=True),
}
SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE


class TimerTicker:
    """:class:`FrameClock`'s interface over a ROS timer (an executor without the stage lock, or
    simulated time)."""

    def __init__(self, node, rate_hz: float, tick: Callable[..., None],
                 acquire: Callable[[], Any] | None = None) -> None:
        self.node = node
        self.tick = tick if acquire is None else (lambda: tick(acquire()))
        self.timer = node.create_timer(1.0 / rate_hz, self.tick)

    def set_rate(self, rate_hz: float) -> None:
        self.node.destroy_timer(self.timer)
        self.timer = self.node.create_timer(1.0 / rate_hz, self.tick)

    def stop(self) -> None:
        if self.timer is not None:
            self.node.destroy_timer(self.timer)
            self.timer = None


class StageNode(LifecycleNode):
    """A pipeline stage as a lifecycle node. Subclasses implement setup, start, stop, teardown
    and :meth:`status`; ``stage`` names it in ``/diagnostics``."""

    stage = "stage"

    def __init__(self, name: str, specs: Mapping[str, Any], **kwargs) -> None:
        self._destroyed = False
        super().__init__(name, **kwargs)
        self.params = declare_parameters(self, {**specs, **LIFECYCLE_SPECS}, on_change=self.on_parameters)
        self.stats = StageStats()
        self.transition_error = ""
        self._transition_exception: Exception | None = None
        self.watcher: PolicyWatcher | None = None
        self._graph_timer = None
        self._watch_prefix = ""
        self.diagnostics = DiagnosticsPublisher(self)
        self.diagnostics.add(self._diagnostic)
        self._clock_error: BaseException | None = None
        self._clock_error_guard = None
        self._frame_clocks: list[FrameClock] = []

    # -- what a stage implements -------------------------------------------------------------------
    def setup(self) -> None:
        """configure: check and load, create publishers."""

    def start(self) -> None:
        """activate: open the device, subscribe, start timers."""

    def stop(self) -> None:
        """deactivate: unsubscribe, stop timers, release the device."""

    def teardown(self) -> None:
        """cleanup: release what setup made."""

    def status(self) -> tuple[str, str, dict]:
        """(level, message, values) while active."""
        return "ok", "", self.stats.summary()

    def on_parameters(self, names: set[str]) -> None:
        """Apply live parameter changes (see declare_parameters)."""

    def open_audit(self) -> AuditLog:
        return AuditLog(self.params["policy.audit_log"] or None, source=self.get_fully_qualified_name())

    def enforce_policy(self, egress=(), stored=()) -> None:
        """Refuse to start (ParameterError: exit status 2) what the declared policy forbids, and
        record the refusal in the audit log; else start watching (:attr:`watcher`)."""
        try:
            check(self.params, egress, stored)
        except PolicyError as err:
            try:
                self.open_audit().append("refused start", level="error", reason=str(err),
                                         policy={name: self.params[name] for name in POLICY_SPECS})
            except OSError as log_err:
                self.get_logger().error(f"could not record the refusal in the audit log: {log_err}")
            raise ParameterError(str(err)) from None
        self.watcher = PolicyWatcher(self.params, audit=self.open_audit)

    def record_declared_policy(self) -> None:
        """The policy in the audit log when the operator declared one (anything but the defaults),
        so that the log shows each change of policy from one start to the next."""
        declared = {name: self.params[name] for name in POLICY_SPECS if name != "policy.audit_log"}
        if any(value != POLICY_SPECS[name].default for name, value in declared.items()):
            self.watcher.record("policy", policy=declared)

    @property
    def aggregate_only(self) -> bool:
        return aggregate_only(self.params)

    def watch_emotion_topics(self, prefix: str = "", period_s: float = 2.0) -> None:
        """Check, every ``period_s``, who subscribes to the emotion topics (``prefix`` + each of
        :data:`EMOTION_TOPICS`, against ``policy.allowed_consumers``) and, in aggregate mode, who
        publishes per-person emotions."""
        self._watch_prefix = prefix
        self._graph_timer = self.create_timer(period_s, self.check_graph)

    def check_graph(self) -> None:
        own = LocalBus.of(self.context).nodes | {self.get_fully_qualified_name()}

        def names(infos) -> list[str]:
            return [f"{info.node_namespace.rstrip('/')}/{info.node_name}" for info in infos]

        topics = [self.resolve_topic_name(self._watch_prefix + topic) for topic in EMOTION_TOPICS]
        subscribers = {topic: names(self.get_subscriptions_info_by_topic(topic)) for topic in topics}
        for flag in self.watcher.check_subscribers(subscribers, own):
            self.get_logger().error(flag.message, throttle_duration_sec=30.0)
        if self.aggregate_only:
            per_person = [self.resolve_topic_name(self._watch_prefix + topic) for topic in PER_PERSON_TOPICS]
            publishers = {topic: names(self.get_publishers_info_by_topic(topic)) for topic in per_person}
            for flag in self.watcher.check_output(publishers):
                self.get_logger().error(flag.message, throttle_duration_sec=30.0)

    def consent_status(self, values: dict, waiting: str = "waiting for consent") -> tuple[str, str, dict] | None:
        """Under ``policy.require_consent`` (a ``consent`` attribute that is not None): records the
        consent in ``values``, and while it is withheld returns the stage's diagnostic (OK: waiting
        is not a fault). None otherwise."""
        consent = getattr(self, "consent", None)
        if consent is None:
            return None
        values["consent"] = consent.granted
        return None if consent.granted else ("ok", waiting, values)

    def start_ticking(self, rate_hz: float, tick: Callable[..., None],
                      acquire: Callable[[], Any] | None = None) -> FrameClock | TimerTicker:
        """``tick`` (``tick(acquire())`` with ``acquire``) ``rate_hz`` times a second, stopped with
        ``.stop()``, re-paced with ``.set_rate()``: on a thread of its own (:mod:`.frame_clock`),
        ``acquire`` outside the stage lock, when this process's executor runs every callback under
        that lock (:class:`.ros.StageExecutor`) and the node runs on wall time; else on a ROS timer.
        An error in either is raised in the executor."""
        bus = LocalBus.of(self.context)
        if not bus.serialised or self.get_parameter("use_sim_time").value:
            return TimerTicker(self, rate_hz, tick, acquire)
        if self._clock_error_guard is None:
            self._clock_error_guard = self.create_guard_condition(self._raise_clock_error)
        clock = FrameClock(rate_hz, tick, bus.lock, self._clock_failed, name=f"{self.get_name()}-frames",
                           acquire=acquire)
        self._frame_clocks = [c for c in self._frame_clocks if c.alive] + [clock]
        return clock.start()

    def join_frame_clocks(self, timeout: float) -> None:
        """Wait for the threads of the node's stopped frame clocks to end (never holding the stage
        lock). A process should not end with one of them inside a camera read or a publish:
        at exit Python stops such threads where they stand, locks of the libraries held."""
        for clock in self._frame_clocks:
            clock.join(timeout)

    def _clock_failed(self, error: BaseException) -> None:
        if not self.context.ok():  # stopping: a publish on a dead context is part of a normal stop
            return
        self._clock_error = error
        self._clock_error_guard.trigger()

    def _raise_clock_error(self) -> None:
        error, self._clock_error = self._clock_error, None
        if error is not None:
            raise error

    # -- stage-to-stage topics: in-process when the stages share a process (local_bus) -----------
    def create_stage_publisher(self, msg_type, topic: str, qos) -> StagePublisher:
        return StagePublisher(self, msg_type, topic, qos)

    def create_stage_subscription(self, msg_type, topic: str, callback, qos):
        """A DDS subscription, or the in-process one when this process shares the topic."""
        return local_bus.subscribe(self, msg_type, topic, callback, qos)

    def destroy_stage_subscription(self, subscription) -> None:
        local_bus.unsubscribe(self, subscription)

    # -- the state machine -------------------------------------------------------------------------
    @property
    def state(self) -> str:
        """unconfigured, inactive, active or finalized (or a transition's name, briefly)."""
        if self._destroyed:
            return "finalized"
        return self._state_machine.current_state[1]

    def _step(self, step: Callable[[], None], transition: str) -> TransitionCallbackReturn:
        try:
            step()
        except Exception as err:  # the transition fails with the reason; the node stays up
            self._transition_exception = err
            self.transition_error = f"{transition} failed: {err}"
            self.get_logger().error(self.transition_error)
            return FAILURE
        self._transition_exception, self.transition_error = None, ""
        return SUCCESS

    def _quietly(self, step: Callable[[], None]) -> None:
        try:
            step()
        except Exception as err:
            self.get_logger().debug(f"ignored while releasing: {type(err).__name__}: {err}")

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = self._step(self.setup, "configure")
        if result != SUCCESS:
            self._quietly(self.teardown)
        return result

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        def activate() -> None:
            self.stats.restart_clock()  # the stall clock starts now, not at start-up
            self.start()
        result = self._step(activate, "activate")
        if result != SUCCESS:
            self._quietly(self.stop)
            return result
        self.get_logger().info("active")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = self._step(self.stop, "deactivate")
        self.get_logger().info("inactive")
        return super().on_deactivate(state) if result == SUCCESS else result

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._step(self.teardown, "cleanup")

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release(state.label)
        return SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release("active")
        return SUCCESS  # back to unconfigured

    def _release(self, state: str) -> None:
        if state == "active":
            self._quietly(self.stop)
        if state in ("active", "inactive"):
            self._quietly(self.teardown)

    def bring_up(self) -> None:
        """configure, then activate; raises what made a transition fail (a ModelError, say)."""
        for trigger in (self.trigger_configure, self.trigger_activate):
            if trigger() != SUCCESS:
                raise self._transition_exception or RuntimeError(self.transition_error or "transition failed")

    def destroy_node(self) -> None:
        if self._destroyed:
            return
        self._release(self.state)
        super().destroy_node()
        self._destroyed = True
        # rclpy's state machine holds the rcl node, and rclpy's LifecycleNode sits in reference
        # cycles of its own bound methods: left alone, the node (and, with a process's last node,
        # its DDS participant and shared-memory segment) would go with whichever garbage
        # collection comes next, or at interpreter exit. Released here, it goes now.
        self._state_machine.destroy_when_not_in_use()

    def _diagnostic(self) -> DiagnosticStatus:
        state = self.state
        if state == "active":
            level, message, values = self.status()
        else:
            level, message, values = "ok", "", self.stats.summary()
            if self.transition_error:
                level, message = "error", self.transition_error
        values["lifecycle"] = state
        if self.watcher is not None and self.watcher.flags:
            values["policy_flags"] = ", ".join(sorted({f.code for f in self.watcher.flags}))
            if SEVERITY[self.watcher.level()] > SEVERITY[level]:
                level, message = self.watcher.level(), self.watcher.summary()
        return diagnostic_status(self, self.stage, level, message or state, values)
