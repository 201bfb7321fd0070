"""The declared policy of a MoodStream deployment and the rules checked before it starts
(ROS-free, so that other systems can use it).

Every node that handles emotions declares ``policy.purpose``, ``policy.context`` and
``policy.medical_or_safety``, with the same names in the YAML (``policy: {purpose: ...}``) and the
runner (``-p policy.purpose=...``). A start that breaks a rule is refused (the nodes exit with
status 2) and recorded in the audit log:

- ``workplace`` or ``education`` without ``medical_or_safety``: the EU AI Act prohibits emotion
  recognition there (:data:`ARTICLE_5_1_F`);
- ``public``: only aggregate output (counts and shares, no person's series) is acceptable, which
  this version cannot produce yet, so it does not start;
- emotions that leave the process (MQTT, InfluxDB) or are stored (the history) without a stated
  ``purpose``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .parameters import Spec

CONTEXTS = ("unspecified", "home", "clinic", "lab", "public", "workplace", "education", "other")
ARTICLE_5_1_F = ("the EU AI Act (Regulation (EU) 2024/1689), Article 5(1)(f), prohibits emotion recognition in "
                 "workplaces and education institutions except for medical or safety reasons (in force since "
                 "2 February 2025)")

POLICY_SPECS = {
    "policy.purpose": Spec("", "what the emotions are used for; required when they leave the process or are stored",
                           read_only=True),
    "policy.context": Spec("unspecified", "where the system is used: " + ", ".join(CONTEXTS), choices=CONTEXTS,
                           read_only=True),
    "policy.medical_or_safety": Spec(False, "the use serves medical or safety reasons (the AI Act's exception)",
                                     read_only=True),
}


class PolicyError(ValueError):
    """A start that the declared policy does not allow; the message says why and what to change."""


def check(policy: Mapping, egress: Sequence[str] = (), stored: Sequence[str] = ()) -> None:
    """Raise :class:`PolicyError` if the policy (``policy.*`` values) forbids this start."""
    context = policy.get("policy.context", "unspecified")
    if context in ("workplace", "education") and not policy.get("policy.medical_or_safety", False):
        raise PolicyError(f"policy.context is {context!r}: {ARTICLE_5_1_F}. MoodStream does not start there; "
                            "if the use is for medical or safety reasons, set policy.medical_or_safety to true")
    if context == "public":
        raise PolicyError("policy.context is 'public': only aggregate output (counts and shares, no person's "
                            "series) is acceptable there, and this version cannot restrict its output to that yet")
    if (egress or stored) and not str(policy.get("policy.purpose", "")).strip():
        where = ", ".join([*egress, *stored])
        raise PolicyError(f"emotions leave this process or are stored ({where}) but policy.purpose is empty: "
                            "say what they are used for (-p policy.purpose='...' or policy: {purpose: ...})")
