"""Consent for ``policy.require_consent``: a ``consent`` service (std_srvs/SetBool) and the
state it sets, latched on ``consent/state`` (std_msgs/Bool, reliable, transient local: a late
subscriber, an indicator light or a screen, gets the current state at once).

One node of a graph hosts the service (:class:`ConsentHost`: the detect node, which every camera
pipeline runs, or the OpenMV host node); the others follow the latched state
(:class:`ConsentListener`: capture keeps the camera closed, classify processes nothing). Until
the first state arrives a listener counts as "no consent", so a stage never runs ahead of it.

    ros2 service call /consent std_srvs/srv/SetBool "{data: true}"    # the people in view agreed
    ros2 topic echo /consent/state
"""

from __future__ import annotations

from collections.abc import Callable

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Bool
from std_srvs.srv import SetBool

from .watch import PolicyWatcher

CONSENT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)


class ConsentHost:
    """The ``consent`` service and the latched ``consent/state``; calls ``on_change(granted)``."""

    def __init__(self, node: Node, on_change: Callable[[bool], None], watcher: PolicyWatcher | None = None) -> None:
        self.node, self.on_change, self.watcher = node, on_change, watcher
        self.granted = False
        self.publisher = node.create_publisher(Bool, "consent/state", CONSENT_QOS)
        self.service = node.create_service(SetBool, "consent", self._on_request)
        self.publisher.publish(Bool(data=False))
        node.get_logger().info(f"policy.require_consent: nothing is processed until consent is given "
                               f"(ros2 service call {self.service.srv_name} std_srvs/srv/SetBool \"{{data: true}}\")")

    def set(self, granted: bool, by: str) -> str:
        """Give or revoke consent; returns what happened, in words."""
        if granted == self.granted:
            return f"consent was already {'given' if granted else 'withheld'}"
        self.granted = granted
        self.publisher.publish(Bool(data=granted))
        what = "consent given: processing starts" if granted else \
            "consent revoked: processing stopped, per-person state forgotten"
        self.node.get_logger().info(f"{what} ({by})")
        if self.watcher is not None:
            self.watcher.record("consent given" if granted else "consent revoked", by=by)
        self.on_change(granted)
        return what

    def _on_request(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        response.message = self.set(bool(request.data), "the consent service")
        response.success = True
        return response

    def destroy(self) -> None:
        self.node.destroy_service(self.service)
        self.node.destroy_publisher(self.publisher)


class ConsentListener:
    """Follows ``consent/state``; calls ``on_change(granted)`` when it changes."""

    def __init__(self, node: Node, on_change: Callable[[bool], None]) -> None:
        self.node, self.on_change = node, on_change
        self.granted = False
        self.subscription = node.create_subscription(Bool, "consent/state", self._on_state, CONSENT_QOS)

    def _on_state(self, msg: Bool) -> None:
        if bool(msg.data) != self.granted:
            self.granted = bool(msg.data)
            self.on_change(self.granted)

    def destroy(self) -> None:
        self.node.destroy_subscription(self.subscription)
