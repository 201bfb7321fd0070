"""The hash-chained audit log: every change to the file shows."""

from __future__ import annotations

import json
import multiprocessing
import stat

from moodstream_common.audit import AuditLog, read, verify


def _append_many(path: str, source: str, count: int) -> None:
    log = AuditLog(path, source=source)
    for i in range(count):
        log.append("tick", n=i)


def test_a_chain_that_holds_and_every_kind_of_tampering_that_shows(tmp_path):
    path = tmp_path / "state" / "audit.jsonl"
    log = AuditLog(path, source="bridge")
    for event in ("start", "egress", "stop"):
        log.append(event, url="mqtt://broker:1883")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    check = verify(path)
    assert check.ok and check.entries == 3 and [e["seq"] for e in read(path)] == [1, 2, 3]

    lines = path.read_text().splitlines()
    changed = json.loads(lines[1])
    changed["details"]["url"] = "mqtts://broker:8883"  # someone makes the record look better
    path.write_text("\n".join([lines[0], json.dumps(changed), lines[2]]) + "\n")
    assert not verify(path).ok and "entry 2 (seq 2) was changed" in verify(path).problem

    path.write_text("\n".join([lines[0], lines[2]]) + "\n")  # an entry removed
    assert "does not follow" in verify(path).problem and verify(path).entries == 1
    path.write_text("\n".join([lines[1], lines[0], lines[2]]) + "\n")  # reordered
    assert not verify(path).ok
    path.write_text(lines[0] + "\nnot json\n")
    assert "line 2 is not JSON" in verify(path).problem


def test_appends_from_several_processes_keep_one_chain(tmp_path):
    path = tmp_path / "audit.jsonl"
    procs = [multiprocessing.Process(target=_append_many, args=(str(path), f"p{i}", 40)) for i in range(3)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(30)
    check = verify(path)
    assert check.ok and check.entries == 120, check
