"""The declared policy's start rules (issue 15, item 2)."""

from __future__ import annotations

import pytest

from moodstream_common.policy import POLICY_SPECS, PolicyError, check


def policy(**values) -> dict:
    base = {name: spec.default for name, spec in POLICY_SPECS.items()}
    base.update({f"policy.{k}": v for k, v in values.items()})
    return base


@pytest.mark.parametrize("context", ["workplace", "education"])
def test_workplaces_and_schools_are_refused_unless_medical_or_safety(context):
    with pytest.raises(PolicyError, match=r"Article 5\(1\)\(f\)"):
        check(policy(context=context))
    check(policy(context=context, medical_or_safety=True))  # the Act's exception


def test_public_spaces_need_aggregate_output_which_is_not_built_yet():
    with pytest.raises(PolicyError, match="only aggregate output"):
        check(policy(context="public", purpose="footfall mood statistics"))


def test_a_purpose_is_required_once_emotions_leave_or_are_kept():
    check(policy())  # nothing leaves, nothing is kept: no purpose needed
    with pytest.raises(PolicyError, match=r"mqtts://broker:8883.*policy.purpose is empty"):
        check(policy(), egress=["mqtts://broker:8883"])
    with pytest.raises(PolicyError, match="history.db"):
        check(policy(purpose="   "), stored=["/var/lib/history.db"])
    check(policy(purpose="the robot slows down for upset visitors"), egress=["mqtts://broker:8883"])
    for context in ("home", "clinic", "lab", "other", "unspecified"):
        check(policy(context=context, purpose="x"), egress=["mqtt://localhost"])
