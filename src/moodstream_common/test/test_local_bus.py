"""In-process delivery between stages of one process (real rclpy, one context)."""

from __future__ import annotations

import time

import pytest
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile
from std_msgs.msg import String

from moodstream_common.local_bus import LocalBus, LocalSubscription, StagePublisher


@pytest.fixture
def context():
    ctx = Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.try_shutdown(context=ctx)


def test_a_shared_topic_is_delivered_in_process_and_to_dds_only_when_someone_listens(context):
    producer = Node("producer", namespace="/ns", context=context)
    consumer = Node("consumer", namespace="/ns", context=context)
    bus = LocalBus.of(context)
    assert LocalBus.of(context) is bus
    publisher = StagePublisher(producer, String, "faces", QoSProfile(depth=10))
    assert publisher.topic == "/ns/faces" and not bus.is_local("/ns/faces")
    bus.share(["/ns/faces"])
    got: list = []
    local = bus.subscribe("/ns/faces", got.append)
    assert isinstance(local, LocalSubscription) and publisher.get_subscription_count() == 1
    message = String(data="one")
    publisher.publish(message)
    assert got == [message] and got[0] is message  # the same object: no copy, no serialisation
    assert publisher.dds.get_subscription_count() == 0  # nobody on DDS: nothing was serialised

    remote: list = []
    outside = Node("outside", context=context)
    outside.create_subscription(String, "/ns/faces", remote.append, QoSProfile(depth=10))
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(outside)
    deadline = time.monotonic() + 10
    while publisher.dds.get_subscription_count() == 0 and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
    publisher.publish(String(data="two"))
    while not remote and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
    assert [m.data for m in remote] == ["two"] and [m.data for m in got] == ["one", "two"]

    bus.unsubscribe(local)
    publisher.publish(String(data="three"))
    assert [m.data for m in got] == ["one", "two"]
    publisher.destroy()
    executor.shutdown()
    for node in (producer, consumer, outside):
        node.destroy_node()
