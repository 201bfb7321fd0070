"""Parameter specifications: default, description, allowed values, and whether a change needs a
restart (ROS-free). The nodes turn them into ROS ``ParameterDescriptor`` s and check live
changes with them; the runner checks ``-p``, ``--params`` and its flags with the same ones, so
a bad value gets the same one-line answer everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Spec:
    default: Any
    description: str
    low: float | None = None  # inclusive bounds for numbers
    high: float | None = None
    choices: tuple[str, ...] = ()
    read_only: bool = False  # a change needs a restart (the node is rebuilt around it)

    def allowed(self) -> str:
        """What the parameter accepts, in words."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        number = "an integer" if isinstance(self.default, int) and not isinstance(self.default, bool) else "a number"
        if self.low is not None and self.high is not None:
            return f"{number} from {self.low:g} to {self.high:g}"
        if self.low is not None:
            return f"{number} of at least {self.low:g}"
        kind = type(self.default).__name__
        return {"bool": "true or false", "str": "a string", "int": "an integer", "float": "a number"}[kind]

    def check(self, value: Any) -> str:
        """Why ``value`` is refused, or "" when it is allowed."""
        if isinstance(self.default, bool):
            ok = isinstance(value, bool)
        elif isinstance(self.default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(self.default, float):
            ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        else:
            ok = isinstance(value, str)
        if ok and self.choices:
            ok = value in self.choices
        if ok and self.low is not None:
            ok = value >= self.low
        if ok and self.high is not None:
            ok = value <= self.high
        return "" if ok else f"must be {self.allowed()}, got {value!r}"


def defaults(specs: Mapping[str, Spec]) -> dict[str, Any]:
    return {name: spec.default for name, spec in specs.items()}


#: When a stage's diagnostics leave OK (see :class:`moodstream_common.stats.HealthConfig`).
HEALTH_SPECS = {
    "expected_rate_hz": Spec(0.0, "the input's expected rate; WARN below half of it (0: judge only a stall)",
                             0.0, 1000.0),
    "stall_warn_s": Spec(2.0, "WARN when no input arrives for this long (s)", 0.1, 3600.0),
    "stall_error_s": Spec(10.0, "ERROR when no input arrives for this long (s)", 0.1, 3600.0),
    "latency_budget_ms": Spec(0.0, "WARN when the stage's latency p95 exceeds it (ms; 0: no budget)", 0.0, 60000.0),
}
#: How a frame input is subscribed: the newest only by default, so that a busy stage never works
#: through a backlog of stale frames (image_tools' depth and reliability).
INPUT_SPECS = {
    "input_qos_depth": Spec(1, "frames the input queue keeps (1: the newest only)", 1, 100, read_only=True),
    "input_qos_reliability": Spec("best_effort", "the input subscription's reliability",
                                  choices=("best_effort", "reliable"), read_only=True),
    "max_frame_age_s": Spec(0.5, "frames older than this on arrival are dropped and counted (s; 0: never)",
                            0.0, 60.0),
}
