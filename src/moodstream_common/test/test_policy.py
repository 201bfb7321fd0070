"""The declared policy's start rules (issue 15, item 2), the watcher's flags (item 4) and the
aggregate output (item 2, aggregate_only)."""

from __future__ import annotations

import pytest

from moodstream_common.aggregate import Aggregator
from moodstream_common.audit import AuditLog, read, verify
from moodstream_common.policy import POLICY_SPECS, PolicyError, aggregate_only, allowed_consumers, check
from moodstream_common.watch import PolicyWatcher, consumer_allowed, plaintext_off_loopback


def policy(**values) -> dict:
    base = {name: spec.default for name, spec in POLICY_SPECS.items()}
    base.update({f"policy.{k}": v for k, v in values.items()})
    return base


@pytest.mark.parametrize("context", ["workplace", "education"])
def test_workplaces_and_schools_are_refused_unless_medical_or_safety(context):
    with pytest.raises(PolicyError, match=r"Article 5\(1\)\(f\)"):
        check(policy(context=context))
    check(policy(context=context, medical_or_safety=True))  # the Act's exception


def test_public_spaces_force_aggregate_output():
    check(policy(context="public", purpose="footfall mood statistics"))
    assert aggregate_only(policy(context="public", aggregate_only=False))
    assert aggregate_only(policy(aggregate_only=True))
    assert not aggregate_only(policy(context="home"))


def test_a_purpose_is_required_once_emotions_leave_or_are_kept():
    check(policy())  # nothing leaves, nothing is kept: no purpose needed
    with pytest.raises(PolicyError, match=r"mqtts://broker:8883.*policy.purpose is empty"):
        check(policy(), egress=["mqtts://broker:8883"])
    with pytest.raises(PolicyError, match="history.db"):
        check(policy(purpose="   "), stored=["/var/lib/history.db"])
    check(policy(purpose="the robot slows down for upset visitors"), egress=["mqtts://broker:8883"])
    for context in ("home", "clinic", "lab", "other", "unspecified"):
        check(policy(context=context, purpose="x"), egress=["mqtt://localhost"])


def test_allowed_consumers_match_bare_or_fully_qualified_names():
    listed = allowed_consumers(policy(allowed_consumers=" bridge, /robot1/behaviour ,"))
    assert listed == ["bridge", "/robot1/behaviour"]
    assert consumer_allowed("/robot1/bridge", ["bridge"])
    assert consumer_allowed("/robot1/behaviour", ["/robot1/behaviour"])
    assert not consumer_allowed("/robot2/behaviour", ["/robot1/behaviour"])
    assert not consumer_allowed("/robot1/snoop", ["bridge"])
    assert not consumer_allowed("/bridge_copy", ["bridge"])


def test_an_unknown_subscriber_is_flagged_audited_and_cleared(tmp_path):
    log = tmp_path / "audit.jsonl"
    watcher = PolicyWatcher(policy(allowed_consumers="bridge"), audit=lambda: AuditLog(log, source="test"))
    assert watcher.check_subscribers({"/emotions": ["/bridge"]}) == []
    assert not log.exists()  # nothing to record: the log is not even created
    flags = watcher.check_subscribers({"/emotions": ["/bridge", "/snoop"], "/emotion": ["/snoop"]})
    assert [(f.code, f.level, f.subject) for f in flags] == [
        ("unknown_subscriber", "error", "/emotions <- /snoop"), ("unknown_subscriber", "error", "/emotion <- /snoop")]
    assert watcher.level() == "error" and "/snoop subscribes to /emotions" in watcher.summary()
    watcher.check_subscribers({"/emotions": ["/bridge", "/snoop"], "/emotion": ["/snoop"]})  # no new entry
    watcher.check_subscribers({"/emotions": ["/bridge"]})
    assert watcher.flags == [] and watcher.level() == "ok"
    events = [(e["event"], e["level"]) for e in read(log)]
    assert events == [("flag: unknown_subscriber", "error")] * 2 + [("cleared: unknown_subscriber", "info")] * 2
    assert verify(log).ok


def test_any_subscriber_is_fine_without_a_list_and_own_nodes_are_exempt():
    assert PolicyWatcher(policy()).check_subscribers({"/emotions": ["/anyone"]}) == []
    watcher = PolicyWatcher(policy(allowed_consumers="bridge"))
    assert watcher.check_subscribers({"/emotions": ["/runner"]}, own={"/runner"}) == []


def test_per_person_output_is_flagged_in_aggregate_mode_only():
    publishers = {"/emotions": ["/openmv"]}
    assert PolicyWatcher(policy()).check_output(publishers) == []
    flags = PolicyWatcher(policy(context="public", purpose="x")).check_output(publishers)
    assert [f.code for f in flags] == ["per_person_output"] and "/openmv publishes" in flags[0].message


def test_egress_storage_and_consent_flags():
    watcher = PolicyWatcher(policy(retention_days=7.0, require_consent=True))
    assert plaintext_off_loopback("mqtt://broker.lan:1883") and not plaintext_off_loopback("mqtt://127.0.0.1:1883")
    assert not plaintext_off_loopback("mqtts://broker.lan:8883") and not plaintext_off_loopback("http://localhost:8086")
    assert [f.code for f in watcher.check_egress(["mqtt://10.0.0.5:1883", "mqtts://10.0.0.5:8883"])] == [
        "egress_without_tls"]
    assert watcher.check_storage({"/h.db": 7.0}) == []
    assert [f.subject for f in watcher.check_storage({"/h.db": 30.0})] == ["/h.db"]
    assert watcher.check_consent(processing=True, consent=True) == []
    assert [f.code for f in watcher.check_consent(processing=True, consent=False)] == ["processing_without_consent"]
    assert PolicyWatcher(policy()).check_consent(processing=True, consent=False) == []  # consent not required
    assert {f.code for f in watcher.flags} == {"egress_without_tls", "retention_beyond_policy",
                                               "processing_without_consent"}


def test_the_aggregator_reports_windows_without_anyone_in_them():
    agg = Aggregator(["happy", "sad"], window_s=10.0, min_people=2)
    assert agg.add(0.0, [1], ["happy"]) is None
    assert agg.add(5.0, [1, 2], ["happy", "sad"]) is None
    assert agg.add(6.0, [], []) is None
    summary = agg.add(10.0, [3], ["sad"])  # starts the next window
    assert (summary.start, summary.end, summary.frames, summary.face_observations, summary.people,
            summary.max_faces_in_view, summary.suppressed) == (0.0, 6.0, 3, 3, 2, 2, False)
    assert summary.counts == (2, 1) and summary.shares == pytest.approx((2 / 3, 1 / 3))
    lonely = agg.flush()  # one person in the window: a share would be that person's series
    assert lonely.suppressed and lonely.people == 1 and lonely.counts == (0, 0) and lonely.shares == (0.0, 0.0)
    assert agg.flush() is None
    agg.add(20.0, [4], ["happy"])
    agg.forget()  # consent revoked
    assert agg.flush() is None
    with pytest.raises(ValueError):
        Aggregator(["happy"], window_s=0.0, min_people=1)
