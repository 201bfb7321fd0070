"""In-process delivery between stages composed in one process (rclpy has no intra-process
communication: every message, even to a node of the same process, is serialised and copied).

When capture, detect and classify run in one process (``pipeline_node``, the runner), the
process marks the topics that one of its stages publishes and another consumes as *local*
(:meth:`LocalBus.share`). A stage's subscription to a local topic then takes the publishing
stage's message object directly, in the same callback, with no serialisation and no copy; the
publisher still publishes through DDS, for anyone else, but only while someone else subscribes
(``get_subscription_count()`` counts only DDS subscriptions, and the local stage has none).
Everything else (emotions, diagnostics, parameters, lifecycle) stays on DDS.

Delivery is synchronous: a frame goes from capture through detect to classify in one call, the
way the naive loop does it, and a slow stage delays the next frame instead of queueing it (the
newest-frame behaviour of the separate processes' depth-1 input).

The bus also holds the process's *stage lock*: when the process's executor runs every callback
under it (:class:`moodstream_common.ros.StageExecutor`, :attr:`LocalBus.serialised`), a stage
may run work on a thread of its own under the same lock (the capture's frame clock) without
racing a parameter change or a lifecycle transition.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any

_BUSES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class StageLock:
    """The process's stage lock: reentrant, and fair to the threads waiting for it.

    Python's locks are not fair: a thread that releases one and takes it again at once (the frame
    clock, ticking back to back when the graph cannot keep its rate) almost always wins over a
    thread already waiting (the executor, with a parameter change or a service call), which then
    waits for as long as the clock stays behind. So the clock calls :meth:`let_waiters_in` before
    each tick: while anyone waits for the lock, it waits for them to have taken it."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._count_lock = threading.Lock()
        self._waiting = 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if self._lock.acquire(blocking=False):
            return True
        if not blocking:
            return False
        with self._count_lock:
            self._waiting += 1
        try:
            return self._lock.acquire(True, timeout)
        finally:
            with self._count_lock:
                self._waiting -= 1

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def let_waiters_in(self, longest: float = 0.1) -> None:
        """Wait (at most ``longest`` s) until no thread waits for the lock; call it without holding it."""
        deadline = time.monotonic() + longest
        while self._waiting and time.monotonic() < deadline:
            time.sleep(0.0002)


class LocalSubscription:
    """A stage's subscription to a local topic (the handle to pass back to unsubscribe)."""

    def __init__(self, bus: LocalBus, topic: str, callback: Callable[[Any], None]) -> None:
        self.bus, self.topic, self.callback = bus, topic, callback


class LocalBus:
    """The local topics of one rclpy context and their subscribers."""

    def __init__(self) -> None:
        self.topics: set[str] = set()
        self.nodes: set[str] = set()  # the nodes composed in this process (fully qualified)
        self._subscribers: dict[str, list[LocalSubscription]] = {}
        self.lock = StageLock()
        self.serialised = False  # True once an executor runs this context's callbacks under lock

    @classmethod
    def of(cls, context) -> LocalBus:
        bus = _BUSES.get(context)
        if bus is None:
            bus = _BUSES[context] = cls()
        return bus

    def share(self, topics: Iterable[str]) -> None:
        """Fully qualified topic names (``/ns/faces``) to deliver in-process from now on."""
        self.topics.update(topics)

    def is_local(self, topic: str) -> bool:
        return topic in self.topics

    def subscribe(self, topic: str, callback: Callable[[Any], None]) -> LocalSubscription:
        sub = LocalSubscription(self, topic, callback)
        self._subscribers.setdefault(topic, []).append(sub)
        return sub

    def unsubscribe(self, sub: LocalSubscription) -> None:
        subs = self._subscribers.get(sub.topic, [])
        if sub in subs:
            subs.remove(sub)

    def subscribers(self, topic: str) -> int:
        return len(self._subscribers.get(topic, ()))

    def deliver(self, topic: str, msg: Any) -> None:
        """Hand ``msg`` to every local subscriber of ``topic``."""
        for sub in list(self._subscribers.get(topic, ())):  # a callback may unsubscribe
            sub.callback(msg)


class StagePublisher:
    """A publisher that hands its messages to local subscribers first, then to DDS while anyone
    there subscribes."""

    def __init__(self, node, msg_type, topic: str, qos) -> None:
        self.dds = node.create_publisher(msg_type, topic, qos)
        self.topic = self.dds.topic_name
        self.bus = LocalBus.of(node.context)
        self.node = node

    def publish(self, msg) -> None:
        self.bus.deliver(self.topic, msg)
        if self.dds.get_subscription_count():
            self.dds.publish(msg)

    def get_subscription_count(self) -> int:
        return self.dds.get_subscription_count() + self.bus.subscribers(self.topic)

    def destroy(self) -> None:
        self.node.destroy_publisher(self.dds)


#: The results a classify (or OpenMV host) stage publishes with stage publishers, which a process
#: composing their consumers (the runner's console and counters) may share.
RESULT_TOPICS = ("emotion", "emotions", "emotions/summary")


def subscribe(node, msg_type, topic: str, callback, qos):
    """A subscription of ``node`` to ``topic``: in-process when its process shares the topic, else
    through DDS (the handle to pass to :func:`unsubscribe`)."""
    bus = LocalBus.of(node.context)
    resolved = node.resolve_topic_name(topic)
    if bus.is_local(resolved):
        return bus.subscribe(resolved, callback)
    return node.create_subscription(msg_type, topic, callback, qos)


def unsubscribe(node, subscription) -> None:
    if isinstance(subscription, LocalSubscription):
        subscription.bus.unsubscribe(subscription)
    else:
        node.destroy_subscription(subscription)


def share_stage_topics(nodes) -> list[str]:
    """Mark as local each stage-to-stage topic that one of ``nodes`` publishes and another reads
    (capture's ``image_mono`` to detect, detect's ``faces`` to classify), when both resolve it to
    the same name; returns the topics shared."""
    if not nodes:
        return []
    LocalBus.of(nodes[0].context).nodes.update(node.get_fully_qualified_name() for node in nodes)
    by_stage = {getattr(node, "stage", ""): node for node in nodes}
    shared = []
    for producer, consumer, topic in (("capture", "detect", "image_mono"), ("detect", "classify", "faces")):
        a, b = by_stage.get(producer), by_stage.get(consumer)
        if a is not None and b is not None and a.resolve_topic_name(topic) == b.resolve_topic_name(topic):
            shared.append(a.resolve_topic_name(topic))
    if shared:
        LocalBus.of(nodes[0].context).share(shared)
    return shared
