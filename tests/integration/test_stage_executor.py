"""The stage executor and the capture's frame clock, with real rclpy in one process: every
callback runs under the stage lock, the capture's frames come from its own thread beside that
executor (and from a ROS timer beside any other), live rate changes apply, deactivation stops them."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

from moodstream_capture.node import CaptureNode
from moodstream_common.frame_clock import FrameClock
from moodstream_common.lifecycle import TimerTicker
from moodstream_common.local_bus import LocalBus
from moodstream_common.ros import IMAGE_QOS, StageExecutor, align_timers

pytestmark = [pytest.mark.ros]


@pytest.fixture
def context():
    ctx = Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.try_shutdown(context=ctx)


def spin_until(executor, condition, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not condition():
        executor.spin_once(timeout_sec=0.05)
    return condition()


def test_every_callback_runs_under_the_stage_lock(context):
    executor = StageExecutor(context=context)
    node = Node("locked", context=context)
    free_during_callback: list[bool] = []

    def on_timer() -> None:  # another thread must not get the lock while a callback runs
        probe = threading.Thread(target=lambda: free_during_callback.append(executor.lock.acquire(blocking=False)))
        probe.start()
        probe.join()

    node.create_timer(0.01, on_timer)
    executor.add_node(node)
    try:
        assert spin_until(executor, lambda: len(free_during_callback) >= 3)
        assert not any(free_during_callback)
        assert LocalBus.of(context).serialised and executor.lock is LocalBus.of(context).lock
    finally:
        executor.shutdown()
        node.destroy_node()


def test_capture_frames_come_from_its_clock_beside_a_stage_executor(context):
    executor = StageExecutor(context=context)
    capture = CaptureNode(context=context, parameter_overrides=[Parameter("fps", value=50.0)])
    viewer = Node("viewer", context=context)
    frames: list[Image] = []
    viewer.create_subscription(Image, "image_raw", frames.append, IMAGE_QOS)
    try:
        with executor.lock:
            capture.bring_up()
        assert isinstance(capture.ticker, FrameClock) and capture.ticker.running
        executor.add_node(capture)
        executor.add_node(viewer)
        assert spin_until(executor, lambda: len(frames) >= 10), "no frames from the frame clock"
        result = capture.set_parameters([Parameter("fps", value=10.0)])[0]  # the callback `ros2 param set` reaches
        assert result.successful and abs(capture.ticker.period - 0.1) < 1e-9
        ticker = capture.ticker
        with executor.lock:
            assert capture.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert capture.ticker is None and not ticker.running and capture.state == "inactive"
        spin_until(executor, lambda: False, timeout=0.3)  # what was in flight arrives
        count = len(frames)
        spin_until(executor, lambda: False, timeout=0.5)
        assert len(frames) == count, "frames after deactivation"
    finally:
        with executor.lock:
            capture.destroy_node()
        viewer.destroy_node()
        executor.shutdown()


class StalledCamera:
    """A camera whose read blocks until the test lets it go: a USB camera that stalls (V4L2 gives
    up after 10 s) or delivers fewer frames than asked for. The FrameSource protocol."""

    description = "stalled camera"

    def __init__(self) -> None:
        self.reading, self.go_on, self.closed = threading.Event(), threading.Event(), False

    def open(self) -> None:
        self.closed = False

    def read(self):
        self.reading.set()
        self.go_on.wait(30)
        self.reading.clear()
        return np.zeros((48, 64, 3), np.uint8)

    def close(self) -> None:
        self.closed = True


def test_a_stalled_camera_holds_up_no_other_callback(context):
    executor = StageExecutor(context=context)
    capture = CaptureNode(context=context, parameter_overrides=[Parameter("fps", value=30.0)])
    viewer = Node("viewer", context=context)
    frames: list[Image] = []
    diagnostics: list[DiagnosticArray] = []
    viewer.create_subscription(Image, "image_raw", frames.append, IMAGE_QOS)
    viewer.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 10)
    camera = StalledCamera()
    try:
        with executor.lock:
            capture.trigger_configure()
            capture._source = camera  # in place of the synthetic source it was configured with
            capture.trigger_activate()
        executor.add_node(capture)
        executor.add_node(viewer)
        assert camera.reading.wait(10)
        # The read blocks outside the stage lock: the executor's callbacks go on meanwhile.
        assert executor.lock.acquire(timeout=5), "the stage lock is held while the camera reads"
        executor.lock.release()
        seen = len(diagnostics)
        assert spin_until(executor, lambda: len(diagnostics) > seen, timeout=5), "no diagnostics during the stall"
        assert camera.reading.is_set() and not frames

        camera.go_on.set()  # the camera comes back
        assert spin_until(executor, lambda: len(frames) >= 3)
        camera.go_on.clear()
        assert camera.reading.wait(10)

        # Deactivated while a read is under way: the camera closes once the read returns, and
        # what that read gave is not published.
        done = threading.Event()

        def deactivate() -> None:
            with executor.lock:
                capture.trigger_deactivate()
            done.set()

        stopper = threading.Thread(target=deactivate)
        stopper.start()
        assert not done.wait(0.3) and not camera.closed  # waits for the read
        count = len(frames)
        camera.go_on.set()
        stopper.join(10)
        assert done.is_set() and camera.closed and capture.state == "inactive"
        spin_until(executor, lambda: False, timeout=0.5)
        assert len(frames) == count, "a frame read before deactivation was published after it"
    finally:
        camera.go_on.set()
        with executor.lock:
            capture.destroy_node()
        viewer.destroy_node()
        executor.shutdown()


def test_a_read_that_begins_after_deactivation_does_not_reopen_the_camera(context):
    # A read-ahead (or a clock) thread that reaches the source just after a deactivation closed it
    # must not open it again: the camera would stay held by an inactive node.
    executor = StageExecutor(context=context)
    capture = CaptureNode(context=context, parameter_overrides=[Parameter("fps", value=30.0)])
    camera = StalledCamera()
    camera.go_on.set()
    opened = []
    camera.open = lambda: opened.append(True)  # type: ignore[method-assign]
    try:
        with executor.lock:
            capture.trigger_configure()
            capture._source = camera
            capture.trigger_activate()
        assert spin_until(executor, lambda: opened, timeout=10)
        with executor.lock:
            capture.trigger_deactivate()
        assert camera.closed
        count = len(opened)
        assert capture.grab() is None  # as a thread that was already on its way would call it
        assert len(opened) == count and camera.closed
    finally:
        with executor.lock:
            capture.destroy_node()
        executor.shutdown()


@pytest.mark.parametrize("viewer_in_this_process", [False, True])
def test_frames_too_large_for_the_default_shared_memory_segment_are_reported_once(context, monkeypatch,
                                                                                   viewer_in_this_process):
    from moodstream_common.environment import dds_profile

    monkeypatch.setenv("FASTDDS_DEFAULT_PROFILES_FILE", str(dds_profile("capture")))  # what the launch file sets
    executor = StageExecutor(context=context)
    capture = CaptureNode(context=context, parameter_overrides=[
        Parameter("fps", value=30.0), Parameter("width", value=1920), Parameter("height", value=1080)])
    viewer = Node("big_viewer", context=context)
    frames: list[Image] = []
    viewer.create_subscription(Image, "image_raw", frames.append, IMAGE_QOS)
    if viewer_in_this_process:  # composed with capture: the frames never touch shared memory
        LocalBus.of(context).nodes.add(viewer.get_fully_qualified_name())
    warnings: list[str] = []
    logger = capture.get_logger()
    monkeypatch.setattr(capture, "get_logger", lambda: type("Logger", (), {
        "warning": lambda self, msg, **kw: warnings.append(msg),
        "info": lambda self, msg, **kw: logger.info(msg),
        "error": lambda self, msg, **kw: logger.error(msg)})())
    try:
        with executor.lock:
            capture.trigger_configure()
            capture.trigger_activate()
        executor.add_node(capture)
        executor.add_node(viewer)
        assert spin_until(executor, lambda: len(frames) >= 5)
        spin_until(executor, lambda: False, timeout=1.5)  # more frames: the advice is given once
        if viewer_in_this_process:
            assert warnings == []
        else:
            assert len(warnings) == 1 and "6.2 MB" in warnings[0] and "fastdds_large_images.xml" in warnings[0]
    finally:
        with executor.lock:
            capture.destroy_node()
        viewer.destroy_node()
        executor.shutdown()


def test_capture_keeps_a_ros_timer_beside_any_other_executor(context):
    executor = SingleThreadedExecutor(context=context)
    capture = CaptureNode(context=context, parameter_overrides=[Parameter("fps", value=50.0)])
    viewer = Node("viewer", context=context)
    frames: list[Image] = []
    viewer.create_subscription(Image, "image_raw", frames.append, IMAGE_QOS)
    try:
        capture.bring_up()
        assert isinstance(capture.ticker, TimerTicker) and capture.ticker.timer is not None
        executor.add_node(capture)
        executor.add_node(viewer)
        assert spin_until(executor, lambda: len(frames) >= 5), "no frames from the timer"  # read, then publish
    finally:
        capture.destroy_node()
        viewer.destroy_node()
        executor.shutdown()


def test_detect_sets_opencv_threads_for_its_process(context):
    import cv2

    from moodstream_detect.node import DetectNode

    before = cv2.getNumThreads()
    cv2.setNumThreads(-1)
    default = cv2.getNumThreads()
    detect = DetectNode(context=context, parameter_overrides=[Parameter("opencv_threads", value=1)])
    try:
        detect.bring_up()
        assert cv2.getNumThreads() == 1
        assert detect.set_parameters([Parameter("opencv_threads", value=3)])[0].successful
        assert cv2.getNumThreads() == 3
        assert detect.set_parameters([Parameter("opencv_threads", value=0)])[0].successful
        assert cv2.getNumThreads() == default
    finally:
        detect.destroy_node()
        cv2.setNumThreads(before)


def test_aligned_timers_fall_due_together(context):
    """Timers of several nodes, started at different moments, are restarted at one instant, so
    one wake-up of the executor serves them all."""
    first, second = Node("first", context=context), Node("second", context=context)
    try:
        a = first.create_timer(1.0, lambda: None)
        time.sleep(0.3)
        b = second.create_timer(1.0, lambda: None)
        assert abs(a.time_until_next_call() - b.time_until_next_call()) > 0.2e9
        align_timers([first, second])
        assert abs(a.time_until_next_call() - b.time_until_next_call()) < 0.05e9
    finally:
        first.destroy_node()
        second.destroy_node()
