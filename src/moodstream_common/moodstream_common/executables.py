"""Entry points of the node executables.

Importing a node's module (rclpy, the middleware's type support, OpenCV, TFLite) takes about a
second. Python's default handler would turn a Ctrl-C or a SIGTERM in that second into a
KeyboardInterrupt traceback and status -2. Here a stop signal during the imports is only
recorded; :func:`moodstream_common.ros.run_nodes` then stops before starting anything, with
status 0, as it does for a signal during the start.
"""

from __future__ import annotations

import importlib
import signal
from collections.abc import Callable


class ImportTimeStop:
    """SIGINT and SIGTERM handler while the node's modules import: it records the stop, raises nothing."""

    def __init__(self) -> None:
        self.requested = False
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self)

    def __call__(self, signum, frame) -> None:
        self.requested = True


def _executable(module: str) -> Callable[[], None]:
    def main() -> None:
        ImportTimeStop()
        importlib.import_module(module).main()

    main.__doc__ = f"The node executable of {module}."
    return main


capture_node = _executable("moodstream_capture.node")
detect_node = _executable("moodstream_detect.node")
classify_node = _executable("moodstream_classify.node")
bridge_node = _executable("moodstream_bridge.bridge_node")
console_node = _executable("moodstream_bridge.console_node")
openmv_node = _executable("moodstream_openmv.node")
pipeline_node = _executable("moodstream.pipeline_node")
