"""Entry points of the node executables.

Importing a node's module (rclpy, the middleware's type support, OpenCV, TFLite) takes about a
second. Python's default handler would turn a Ctrl-C or a SIGTERM in that second into a
KeyboardInterrupt traceback and status -2. Here a stop signal during the imports is only
recorded; :func:`moodstream_common.ros.run_nodes` then stops before starting anything, with
status 0, as it does for a signal during the start.

Once the node's own clean-up is done (stores closed, the DDS participant gone, logs flushed),
the process ends at once with the node's status, without Python's interpreter finalisation: there
the garbage collector destroys what is left of rclpy, the middleware and OpenCV in no particular
order, and CI saw a node hang in it for good.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable


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
