"""Entry points of the node executables.

Importing a node's module (rclpy, the middleware's type support, OpenCV, TFLite) takes about a
second. Python's default handler would turn a Ctrl-C or a SIGTERM in that second into a
KeyboardInterrupt traceback and status -2. Here a stop signal during the imports is only
recorded; :func:`moodstream_common.ros.run_nodes` then stops before starting anything, with
status 0, as it does for a signal during the start.

Once the node's own clean-up is done (stores closed, rclpy shut down, logs flushed), the garbage
collector destroys what is left of rclpy and the middleware (the context, its DDS participant,
its shared-memory segments in /dev/shm) while the interpreter and its threads still run, and the
process then ends with the node's status, without Python's interpreter finalisation. In
finalisation the collector does the same work with the modules half torn down and the daemon
threads frozen wherever they stood, and CI saw a node hang there for good. (rclpy's
``LifecycleNode`` sits in reference cycles of its own bound methods, and its state machine holds
the rcl node, so ``destroy_node()`` leaves the node, and with the last one the DDS participant, to
the collector. MoodStream's stages release the state machine in their ``destroy_node()``, so this
collection finds little left; it stays for what else a node may leave in a cycle.) Should the
collection itself hang, faulthandler prints every thread's stack after
``MOODSTREAM_EXIT_WATCHDOG_S`` seconds (default 4: the collection takes about 25 ms, and
``ros2 launch`` escalates to SIGTERM 5 s after its SIGINT, then to SIGKILL, which prints nothing)
and ends the process with status 1.
"""

from __future__ import annotations

import faulthandler
import gc
import importlib
import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable

DEFAULT_EXIT_WATCHDOG_S = 4.0


def exit_watchdog_seconds() -> float:
    """How long the final collection may take (``MOODSTREAM_EXIT_WATCHDOG_S``, else the default)."""
    try:
        seconds = float(os.environ.get("MOODSTREAM_EXIT_WATCHDOG_S", DEFAULT_EXIT_WATCHDOG_S))
    except ValueError:
        return DEFAULT_EXIT_WATCHDOG_S
    return seconds if 0 < seconds <= 3600 else DEFAULT_EXIT_WATCHDOG_S


class ImportTimeStop:
    """SIGINT and SIGTERM handler while the node's modules import: it records the stop, raises nothing."""

    def __init__(self) -> None:
        self.requested = False
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self)

    def __call__(self, signum, frame) -> None:
        self.requested = True


def exit_status(stop: SystemExit) -> int:
    """The status Python gives a process that ends with ``stop`` (a message goes to stderr)."""
    if stop.code is None:
        return 0
    if isinstance(stop.code, int):
        return stop.code
    print(stop.code, file=sys.stderr)
    return 1


def _executable(module: str) -> Callable[[], None]:
    def main() -> None:
        ImportTimeStop()
        try:
            importlib.import_module(module).main()
            status = 0
        except SystemExit as stop:
            status = exit_status(stop)
        except BaseException:
            traceback.print_exc()
            status = 1
        logging.shutdown()
        faulthandler.dump_traceback_later(exit_watchdog_seconds(), exit=True)
        gc.collect()  # without it the segments in /dev/shm would outlive the process (tested)
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(status)

    main.__doc__ = f"The node executable of {module}."
    return main


capture_node = _executable("moodstream_capture.node")
detect_node = _executable("moodstream_detect.node")
classify_node = _executable("moodstream_classify.node")
bridge_node = _executable("moodstream_bridge.bridge_node")
console_node = _executable("moodstream_bridge.console_node")
openmv_node = _executable("moodstream_openmv.node")
pipeline_node = _executable("moodstream.pipeline_node")
