"""The declared policy of a MoodStream deployment and the rules checked before it starts
(ROS-free, so that other systems can use it).

Every node declares the ``policy.*`` parameters below, with the same names in the YAML's ``/**``
section (``policy: {purpose: ...}``) and the runner (``-p policy.purpose=...``). A start that
breaks a rule is refused (the nodes exit with status 2) and recorded in the audit log:

- ``workplace`` or ``education`` without ``medical_or_safety``: the EU AI Act prohibits emotion
  recognition there (:data:`ARTICLE_5_1_F`);
- emotions that leave the process (MQTT, InfluxDB) or are stored (the history) without a stated
  ``purpose``.

``public`` forces ``aggregate_only`` (:func:`aggregate_only`): counts and shares over a window
of at least ``aggregate_min_people`` people leave the classifier, never a track, a box or a
person's series. What the running system does is watched against the same policy by
:mod:`moodstream_common.watch`.
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
    "policy.context": Spec("unspecified", "where the system is used: " + ", ".join(CONTEXTS)
                           + " (public forces aggregate_only)", choices=CONTEXTS, read_only=True),
    "policy.medical_or_safety": Spec(False, "the use serves medical or safety reasons (the AI Act's exception)",
                                     read_only=True),
    "policy.require_consent": Spec(False, "process nothing, camera closed, until consent is given (the consent "
                                   "service, std_srvs/SetBool; the runner's --consent)", read_only=True),
    "policy.aggregate_only": Spec(False, "only counts and shares leave the classifier (emotions/summary): no track "
                                  "ids, boxes or per-person series", read_only=True),
    "policy.aggregate_window_s": Spec(60.0, "aggregate_only: the window each summary covers (s)", 1.0, 86400.0,
                                      read_only=True),
    "policy.aggregate_min_people": Spec(3, "aggregate_only: a window with fewer people in it reports no shares",
                                        1, 1000, read_only=True),
    "policy.allowed_consumers": Spec("", "nodes allowed to subscribe to emotion topics, comma-separated "
                                     "(empty: any); others are flagged", read_only=True),
    "policy.retention_days": Spec(30.0, "the longest the policy allows emotion data to be kept (days); a longer "
                                  "retention is flagged and cut to this", 0.01, 36500.0, read_only=True),
    "policy.audit_log": Spec("", "the hash-chained audit log (empty: $XDG_STATE_HOME/moodstream/audit.jsonl; "
                             "`moodstream audit` reads it)", read_only=True),
}


class PolicyError(ValueError):
    """A start that the declared policy does not allow; the message says why and what to change."""


def aggregate_only(policy: Mapping) -> bool:
    """Whether only aggregates may leave the classifier: asked for, or forced by ``public``."""
    return bool(policy.get("policy.aggregate_only", False)) or policy.get("policy.context") == "public"


def allowed_consumers(policy: Mapping) -> list[str]:
    """``policy.allowed_consumers`` as node names (empty: any consumer)."""
    return [name.strip() for name in str(policy.get("policy.allowed_consumers", "")).split(",") if name.strip()]


def check(policy: Mapping, egress: Sequence[str] = (), stored: Sequence[str] = ()) -> None:
    """Raise :class:`PolicyError` if the policy (``policy.*`` values) forbids this start."""
    context = policy.get("policy.context", "unspecified")
    if context in ("workplace", "education") and not policy.get("policy.medical_or_safety", False):
        raise PolicyError(f"policy.context is {context!r}: {ARTICLE_5_1_F}. MoodStream does not start there; "
                            "if the use is for medical or safety reasons, set policy.medical_or_safety to true")
    if (egress or stored) and not str(policy.get("policy.purpose", "")).strip():
        where = ", ".join([*egress, *stored])
        raise PolicyError(f"emotions leave this process or are stored ({where}) but policy.purpose is empty: "
                            "say what they are used for (-p policy.purpose='...' or policy: {purpose: ...})")
